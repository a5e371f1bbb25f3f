"""The protos `telemetry new` is tested with, and a project generator for the scaffold tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from telemetry.scaffold import Report, new_project

ROOT = Path(__file__).resolve().parents[1]
DEMOSHOP = ROOT / "services" / "protos" / "demoshop.proto"
CATALOG_ROOT = ROOT / "tests" / "protos" / "scaffold"
CATALOG = CATALOG_ROOT / "acme" / "shop" / "v1" / "catalog.proto"
"""Every RPC kind, two services, a local import, nested packages and messages, well-known types."""
STUB = "api.not_written(context)  # UNIMPLEMENTED until you write it"
"""The body of a sync handler's stub."""


def demoshop(out: Path, name: str = "shop", *, aio: bool = False) -> Report:
    return new_project(name, [DEMOSHOP], out, aio=aio)


def catalog(out: Path, name: str = "catalog", *, aio: bool = False) -> Report:
    return new_project(name, [CATALOG], out, includes=[CATALOG_ROOT], aio=aio)


def run_in(project: Path, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``command`` in ``project`` with this interpreter's tools. The package is on PYTHONPATH for
    mypy, which does not follow the import hook of an editable install."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def tool(name: str) -> str:
    """A console script of this interpreter's environment (ruff, mypy)."""
    return str(Path(sys.executable).with_name(name))
