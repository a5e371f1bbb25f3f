"""Projects made by `telemetry new` pass their own checks with no edit: ruff, ruff format, mypy
--strict and their own tests (every RPC called on a loopback server), made from the demo shop's
proto and from a proto with every RPC kind, imports, nested packages and well-known types, sync
and grpc.aio; and again after a handler is written and `telemetry regen` adds an RPC. A project
checks its settings at start, and its compose service joins the demo stack's compose file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from scaffold_projects import ROOT, STUB, catalog, demoshop, run_in, tool

from telemetry.scaffold import Report, regenerate

PROJECTS: dict[str, tuple[Callable[..., Report], bool]] = {
    "shop": (demoshop, False),
    "shop_aio": (demoshop, True),
    "catalog": (catalog, False),
    "catalog_aio": (catalog, True),
}
REGENERATED = "catalog_regen"
CHECKS = {
    "ruff": [tool("ruff"), "check", "."],
    "format": [tool("ruff"), "format", "--check", "."],
    "mypy": [tool("mypy")],
    "pytest": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
}


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("projects")
    for name, (make, aio) in PROJECTS.items():
        make(out, name, aio=aio)
    catalog(out, REGENERATED)
    _write_a_handler_and_add_an_rpc(out / REGENERATED)
    return {name: out / name for name in [*PROJECTS, REGENERATED]}


def _write_a_handler_and_add_an_rpc(project: Path) -> None:
    handlers = project / REGENERATED / "handlers" / "catalog.py"
    stub = f"    ) -> api.Product:\n        {STUB}\n"
    body = '    ) -> api.Product:\n        return api.Product(sku=request.sku or "none")\n'
    handlers.write_text(handlers.read_text().replace(stub, body, 1))
    proto = project / "protos" / "acme" / "shop" / "v1" / "catalog.proto"
    added = "  rpc Discontinue(stream GetProductRequest) returns (google.protobuf.Empty);\n  rpc Quote("
    proto.write_text(proto.read_text().replace("  rpc Quote(", added, 1))
    report = regenerate(project)
    assert report.appended == {f"{REGENERATED}/handlers/catalog.py": ("Discontinue",)}
    assert body in handlers.read_text()


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", [*PROJECTS, REGENERATED])
def test_a_project_passes_its_own_checks(projects: dict[str, Path], name: str, check: str) -> None:
    result = run_in(projects[name], *CHECKS[check])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_the_settings_are_checked_at_start(projects: dict[str, Path]) -> None:
    env = {**os.environ, "SHOP_METRICS_PORT": "99999"}
    result = subprocess.run(
        [sys.executable, "main.py", "--env", "prod"], cwd=projects["shop"], env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "SHOP_METRICS_PORT: expected a port, 0 to 65535, got 99999" in result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_the_compose_service_joins_the_demo_stack(projects: dict[str, Path]) -> None:
    compose = projects["shop"] / "compose.yaml"
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "-f", str(compose), "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "shop:" in result.stdout and "condition: service_healthy" in result.stdout
