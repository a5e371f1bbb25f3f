"""``python -m telemetry``: the ``telemetry`` command (telemetry.cli)."""

import sys

from telemetry.cli import main

sys.exit(main())
