"""The ``telemetry`` command (also ``python -m telemetry``).

    telemetry new NAME --proto PATH [-I DIR] [--aio] [--out DIR] [--force]
    telemetry regen [DIR] [--proto PATH [-I DIR]]

``new`` makes a governed, observable gRPC service from .proto files (see telemetry.scaffold and
docs/scaffold.md); ``regen`` brings such a project up to date after its protos changed. Bad input
is refused with one line on stderr and a non-zero exit, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_REFUSED = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemetry", description="Tools of the telemetry package.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a gRPC service project from .proto files")
    new.add_argument("name", help="the project's name: its directory and Python package (e.g. shop)")
    regen = commands.add_parser("regen", help="update a project made by `new` after its protos changed")
    regen.add_argument("project", nargs="?", type=Path, default=Path(), help="the project (default: .)")
    for command, required in ((new, True), (regen, False)):
        command.add_argument(
            "--proto", type=Path, action="append", required=required, default=[], metavar="PATH",
            help="a .proto file whose services to serve (repeatable)",
        )  # fmt: skip
        command.add_argument(
            "-I", "--proto-path", type=Path, action="append", default=[], metavar="DIR",
            help="where imports are found (repeatable; default: the protos' own directories)",
        )  # fmt: skip
    new.add_argument("--aio", action="store_true", help="a grpc.aio server (default: sync grpc)")
    new.add_argument("--out", type=Path, default=Path(), help="where to make NAME (default: .)")
    new.add_argument(
        "--force", action="store_true",
        help="write into a non-empty directory (generated files are rewritten, yours are kept)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from telemetry.scaffold import ScaffoldError, new_project, regenerate

    try:
        if args.command == "new":
            report = new_project(args.name, args.proto, args.out, includes=args.proto_path, aio=args.aio,
                                 force=args.force)  # fmt: skip
        else:
            report = regenerate(args.project, args.proto, args.proto_path)
    except ScaffoldError as exc:
        print(f"telemetry {args.command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(report.summary())
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
