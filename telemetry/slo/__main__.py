"""``python -m telemetry.slo rules FILE``: the Prometheus rules of an SLO file, on stdout.

Exit status 0 with the rules; 2 with the error (naming the field) on stderr when the file is
invalid, as argparse does for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from telemetry.slo.model import SloError, load_slos
from telemetry.slo.rules import render_rules


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m telemetry.slo",
        description="SLOs to Prometheus recording rules and burn-rate alerts.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rules = commands.add_parser("rules", help="print the rules YAML of an SLO file")
    rules.add_argument("file", help="the SLO file, e.g. slo/slos.yml")
    args = parser.parse_args(argv)
    try:
        slos = load_slos(Path(args.file))
    except SloError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_rules(slos, args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
