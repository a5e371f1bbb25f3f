"""Bad input to `telemetry new` and `telemetry regen`: one clear line on stderr (protoc's own
message, with file and line, for a .proto that does not compile), a non-zero exit, and nothing
written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scaffold_projects import DEMOSHOP, ROOT, catalog

from telemetry.cli import EXIT_REFUSED, main

BROKEN = 'syntax = "proto3";\npackage x;\nmessage A {\n  int32 x = 1\n}\n'
NO_SERVICE = 'syntax = "proto3";\npackage x;\nmessage A { int32 x = 1; }\nservice Empty {}\n'
MISSING_IMPORT = (
    'syntax = "proto3";\nimport "gone.proto";\nservice S { rpc M(A) returns (A); }\nmessage A {}\n'
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> str:
    """Run the command, which must be refused with nothing written under ``out``; its stderr."""
    before = snapshot(out)
    assert main(list(argv)) == EXIT_REFUSED
    assert snapshot(out) == before
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BROKEN, 'bad.proto:5:1: Expected ";"'),
        (MISSING_IMPORT, 'bad.proto:2:1: Import "gone.proto" was not found'),
        (NO_SERVICE, "no service with an rpc"),
    ],
)
def test_a_proto_that_cannot_make_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    (tmp_path / "bad.proto").write_text(text)
    err = refused(
        capsys, tmp_path, "new", "shop", "--proto", str(tmp_path / "bad.proto"), "--out", str(tmp_path)
    )
    assert err.startswith("telemetry new: ")
    assert expected in err


@pytest.mark.parametrize("name", ["9shop", "shop-x", "class", "json"])
def test_a_name_that_is_no_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    err = refused(capsys, tmp_path, "new", name, "--proto", str(DEMOSHOP), "--out", str(tmp_path))
    assert f"{name!r} is not a valid name" in err


def test_a_proto_that_is_missing_or_outside_the_include_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(
        capsys, tmp_path, "new", "shop", "--proto", str(tmp_path / "nope.proto"), "--out", str(tmp_path)
    )
    assert "nope.proto: no such file" in err
    argv = ["new", "shop", "--proto", str(DEMOSHOP), "-I", str(tmp_path), "--out", str(tmp_path)]
    assert "not under any include directory" in refused(capsys, tmp_path, *argv)


def test_a_non_empty_directory_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "notes.txt").write_text("mine")
    err = refused(capsys, tmp_path, "new", "shop", "--proto", str(DEMOSHOP), "--out", str(tmp_path))
    assert "exists and is not empty" in err and "--force" in err
    assert main(["new", "shop", "--proto", str(DEMOSHOP), "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "shop" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "shop" / "main.py").is_file()


def test_a_project_keeps_its_flavour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog(tmp_path)
    capsys.readouterr()
    argv = ["new", "catalog", "--aio", "--proto", str(DEMOSHOP), "--out", str(tmp_path), "--force"]
    assert "cannot become another" in refused(capsys, tmp_path, *argv)


def test_regen_needs_a_generated_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a project made by telemetry new" in refused(capsys, tmp_path, "regen", str(tmp_path))


def test_regen_refuses_a_handler_module_that_does_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog(tmp_path)
    project = tmp_path / "catalog"
    proto = project / "protos" / "acme" / "shop" / "v1" / "catalog.proto"
    proto.write_text(
        proto.read_text().replace(
            "service Admin {", "service Admin {\n  rpc Added(Money) returns (Money);"
        )
    )
    (project / "catalog" / "handlers" / "admin.py").write_text("class Admin(:\n")
    capsys.readouterr()
    err = refused(capsys, tmp_path, "regen", str(project))
    assert "catalog/handlers/admin.py:1: cannot add stubs to it, it does not parse" in err


def test_python_dash_m_telemetry_reports_on_stderr(tmp_path: Path) -> None:
    argv = ["new", "9shop", "--proto", str(DEMOSHOP), "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "telemetry", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (EXIT_REFUSED, "")
    assert "'9shop' is not a valid name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_proto_named_like_a_protoc_option_is_refused_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # protoc reads an argument starting with '-' as an option: --plugin=... would run a program.
    protos = tmp_path / "p"
    protos.mkdir()
    hostile = protos / "--dependency_out=pwned.proto"
    hostile.write_text('syntax = "proto3";\nservice S { rpc M(A) returns (A); }\nmessage A {}\n')
    err = refused(capsys, tmp_path, "new", "shop", "--proto", str(hostile), "--out", str(tmp_path))
    assert "not a usable .proto path" in err
    assert not (Path.cwd() / "pwned.proto").exists()


def test_regen_checks_the_answers_file_as_hostile_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog(tmp_path)
    project = tmp_path / "catalog"
    answers = project / ".telemetry-scaffold.json"
    good = json.loads(answers.read_text())
    cases: list[tuple[dict[str, object], str]] = [
        ({"name": "../../escaped"}, "is not a valid name"),
        ({"aio": "false"}, "'aio' true or false"),
        ({"protos": ["--plugin=protoc-gen-x=./run.proto"]}, "not a usable .proto path"),
        ({"protos": ["../outside.proto"]}, "not a usable .proto path"),
    ]
    capsys.readouterr()
    for change, expected in cases:
        answers.write_text(json.dumps({**good, **change}))
        assert expected in refused(capsys, tmp_path, "regen", str(project))
    assert not (tmp_path.parent / "escaped").exists()


def test_names_that_would_break_the_project_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The project's package may not shadow its own stubs (demoshop.proto makes demoshop_pb2).
    argv = ["new", "demoshop_pb2", "--proto", str(DEMOSHOP), "--out", str(tmp_path)]
    assert "would shadow the generated module" in refused(capsys, tmp_path, *argv)
    dunder = tmp_path / "dunder.proto"
    dunder.write_text('syntax = "proto3";\nservice S { rpc __init__(A) returns (A); }\nmessage A {}\n')
    argv = ["new", "shop", "--proto", str(dunder), "--out", str(tmp_path)]
    assert "the name is taken by the handlers' base" in refused(capsys, tmp_path, *argv)


def test_a_file_in_the_way_is_found_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "conf").write_text("a file where the config directory goes")
    argv = ["new", "shop", "--proto", str(DEMOSHOP), "--out", str(tmp_path), "--force"]
    assert "is in the way" in refused(capsys, tmp_path, *argv)
