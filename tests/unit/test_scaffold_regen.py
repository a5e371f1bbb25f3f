"""`telemetry regen` after a proto change: protoc's stubs and the generated modules follow the
protos, each new RPC gets a stub in its handler module, a new service a module of its own, and
every byte the user wrote stays where it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from scaffold_projects import STUB, catalog, run_in, tool

from telemetry.scaffold import regenerate

WRITTEN = """    ) -> api.Product:
        # written by hand: regen must keep this body as it is
        return api.Product(sku=request.sku.upper())
"""
HELPER = "\n    def helper(self) -> int:  # mine too\n        return 1\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    catalog(tmp_path)
    return tmp_path / "catalog"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def proto(project: Path) -> Path:
    return project / "protos" / "acme" / "shop" / "v1" / "catalog.proto"


def test_new_rpcs_and_services_keep_what_was_written(project: Path) -> None:
    handlers = project / "catalog" / "handlers" / "catalog.py"
    edit(handlers, f"    ) -> api.Product:\n        {STUB}\n", WRITTEN)
    handlers.write_text(handlers.read_text() + HELPER)
    written = handlers.read_text()
    edit(
        proto(project),
        "  rpc Quote(",
        "  rpc Discontinue(stream GetProductRequest) returns (Money);\n  rpc Quote(",
    )
    proto(project).write_text(
        proto(project).read_text() + "\nservice Audit {\n  rpc Log(Money) returns (Money);\n}\n"
    )

    report = regenerate(project)

    assert report.appended == {"catalog/handlers/catalog.py": ("Discontinue",)}
    assert handlers.read_text().startswith(written)
    assert "async" not in handlers.read_text() and "def Discontinue(" in handlers.read_text()
    assert "catalog/handlers/audit.py" in report.created
    assert {
        "catalog/_generated/api.py",
        "catalog/_generated/routes.py",
        "acme/shop/v1/catalog_pb2.py",
    } <= set(report.updated)
    assert (
        "catalog.handlers.audit.Audit(runtime)"
        in (project / "catalog" / "_generated" / "routes.py").read_text()
    )
    # the user's settings file is theirs: new RPCs fall under its "*" rule
    assert "conf/dev.yaml" in report.kept
    for check in (["check", "."], ["format", "--check", "."]):
        result = run_in(project, tool("ruff"), *check)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_run_changes_nothing(project: Path) -> None:
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    report = regenerate(project)
    assert (report.created, report.updated, report.appended) == ([], [], {})
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before


def test_a_stub_the_user_deleted_stays_deleted(project: Path) -> None:
    handlers = project / "catalog" / "handlers" / "admin.py"
    text = handlers.read_text()
    handlers.write_text(text[: text.index("    def Ping(")].rstrip() + "\n    pass\n")
    assert regenerate(project).appended == {}
    assert "def Ping(" not in handlers.read_text()


def test_a_removed_rpc_is_reported_and_its_method_kept(project: Path) -> None:
    edit(proto(project), "  rpc Quote(GetProductRequest) returns (Money);\n", "")
    report = regenerate(project)
    assert "def Quote(" in (project / "catalog" / "handlers" / "catalog.py").read_text()
    assert any("Catalog.Quote is no longer in the proto" in w for w in report.warnings)
    assert "Quote" not in (project / "catalog" / "_generated" / "api.py").read_text()


def test_regen_from_a_proto_elsewhere_copies_it_in(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ping.proto").write_text(
        'syntax = "proto3";\npackage ping.v1;\n'
        "service Pinger { rpc Ping(P) returns (P); }\nmessage P {}\n"
    )
    report = regenerate(project, [elsewhere / "ping.proto"])
    assert (project / "protos" / "ping.proto").is_file() and (project / "ping_pb2.py").is_file()
    assert "catalog/handlers/pinger.py" in report.created
    assert any("service acme.shop.v1.Catalog is no longer in the protos" in w for w in report.warnings)
