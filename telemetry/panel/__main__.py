"""``python -m telemetry.panel [streamlit options]``: serve the panel with Streamlit.

Settings come from the environment (see :mod:`telemetry.panel.settings`); Streamlit's own options
pass through, e.g. ``--server.port 8501 --server.address 0.0.0.0``.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")

# Streamlit's defaults suit a developer's laptop; a panel is a service: no browser to open, no
# usage statistics sent out, no file watcher on the installed package.
DEFAULTS = [
    "--server.headless=true",
    "--browser.gatherUsageStats=false",
    "--server.fileWatcherType=none",
    "--client.toolbarMode=viewer",
]


def main(argv: list[str] | None = None) -> int:
    from streamlit.web import cli  # the optional "panel" extra

    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["streamlit", "run", str(APP), *DEFAULTS, *args]
    try:
        cli.main()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
