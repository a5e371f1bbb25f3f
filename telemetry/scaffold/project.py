"""``telemetry new`` and ``telemetry regen``: from .proto files to a project on disk.

Everything that can refuse the input (the name, the directory, protoc, the model, the handler
modules) runs before the first byte is written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telemetry._version import VERSION
from telemetry.scaffold import protos
from telemetry.scaffold.errors import ScaffoldError
from telemetry.scaffold.model import Model, build_model
from telemetry.scaffold.names import check_project_name
from telemetry.scaffold.render import API_NAMES, Options, Planned, Renderer
from telemetry.scaffold.writer import Report, apply

ANSWERS = ".telemetry-scaffold.json"
"""What a project was made from (name, flavour, protos, the RPCs seen): ``telemetry regen`` reads it."""
STUB_HEADER = (
    b"# telemetry new: mypy --strict would refuse protoc's bare generics here.\n# mypy: ignore-errors\n"
)
PROTOS = "protos"
"""The project's copy of its .proto files, which ``telemetry regen`` compiles."""


@dataclass(frozen=True)
class Answers:
    name: str
    aio: bool
    protos: tuple[str, ...]
    rpcs: tuple[str, ...]

    @classmethod
    def read(cls, project: Path) -> Answers | None:
        path = project / ANSWERS
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            answers = cls(data["name"], data["aio"], tuple(data["protos"]), tuple(data["rpcs"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScaffoldError(f"{path}: not the file telemetry new wrote ({exc!r})") from exc
        answers.check(path)
        return answers

    def check(self, path: Path) -> None:
        """A project's answers are read from its directory: checked as hostile input (a cloned
        repository's name could point outside the project, its protos at protoc options)."""
        if not isinstance(self.name, str) or not isinstance(self.aio, bool):
            raise ScaffoldError(f"{path}: 'name' must be a string and 'aio' true or false")
        if not all(isinstance(item, str) for item in (*self.protos, *self.rpcs)):
            raise ScaffoldError(f"{path}: 'protos' and 'rpcs' must be lists of strings")
        check_project_name(self.name)
        for name in self.protos:
            protos.checked_proto_name(name)

    def text(self) -> str:
        data = {"generator": "telemetry new", "telemetry": VERSION, "name": self.name, "aio": self.aio,
                "protos": list(self.protos), "rpcs": list(self.rpcs)}  # fmt: skip
        return json.dumps(data, indent=2) + "\n"


def new_project(
    name: str,
    proto_files: Sequence[Path],
    out: Path,
    *,
    includes: Sequence[Path] = (),
    aio: bool = False,
    force: bool = False,
) -> Report:
    """Make the project ``out/name`` from ``proto_files`` (each under one of ``includes``; by
    default their own directories). An existing non-empty directory needs ``force``; the user's
    files in it are kept (see :mod:`telemetry.scaffold.writer`)."""
    check_project_name(name)
    project = out / name
    if project.exists() and not project.is_dir():
        raise ScaffoldError(f"{project} exists and is not a directory")
    if project.is_dir() and any(project.iterdir()) and not force:
        raise ScaffoldError(
            f"{project} exists and is not empty: choose another name or --out, or pass --force to "
            "write into it (generated files are rewritten; handlers and settings are kept)"
        )
    previous = Answers.read(project)
    if previous is not None and (previous.name, previous.aio) != (name, aio):
        flavour = "--aio" if previous.aio else "sync"
        raise ScaffoldError(
            f"{project} holds the project {previous.name!r} ({flavour}): it cannot become another"
        )
    roots = list(includes) or sorted({p.resolve().parent for p in proto_files})
    compiled = protos.compile_descriptors(proto_files, roots)
    return _generate(project, name, aio, compiled, previous, copy_protos=True)


def regenerate(project: Path, proto_files: Sequence[Path] = (), includes: Sequence[Path] = ()) -> Report:
    """Bring ``project`` up to date with its protos (``protos/``, or ``proto_files`` copied there):
    the stubs and ``_generated/`` rewritten, a stub added to the handlers for each new RPC."""
    previous = Answers.read(project)
    if previous is None:
        raise ScaffoldError(f"{project}: no {ANSWERS}, so not a project made by telemetry new")
    if proto_files:
        roots = list(includes) or sorted({p.resolve().parent for p in proto_files})
        compiled = protos.compile_descriptors(proto_files, roots)
    else:
        root = project / PROTOS
        compiled = protos.compile_descriptors([root / name for name in previous.protos], [root])
    return _generate(
        project, previous.name, previous.aio, compiled, previous, copy_protos=bool(proto_files)
    )


def _generate(
    project: Path,
    name: str,
    aio: bool,
    compiled: protos.Compiled,
    previous: Answers | None,
    *,
    copy_protos: bool,
) -> Report:
    model = build_model(compiled, API_NAMES)
    if name in model.stub_packages():
        raise ScaffoldError(
            f"{name!r} is not a valid name here: the project's package would shadow the generated "
            f"module {name!r}"
        )
    with tempfile.TemporaryDirectory(prefix="telemetry-new-") as tmp:
        proto_root = project / PROTOS
        copies: list[Planned] = []
        if copy_protos:
            proto_root = Path(tmp) / PROTOS
            for file, source in compiled.sources.items():
                (proto_root / file).parent.mkdir(parents=True, exist_ok=True)
                (proto_root / file).write_bytes(source.read_bytes())
                copies.append(Planned(f"{PROTOS}/{file}", source.read_bytes(), "generated"))
        stubs = _stubs(proto_root, model, Path(tmp) / "stubs")
    renderer = Renderer(model, _options(project, name, aio, stubs))
    answers = Answers(name, aio, model.targets, model.full_methods)
    plan = [*renderer.plan(), *stubs, *copies, Planned(ANSWERS, answers.text(), "generated")]
    report = apply(project, plan, renderer.stub, None if previous is None else previous.rpcs)
    if previous is not None:
        gone = sorted({m.split("/")[0] for m in previous.rpcs} - {s.full_name for s in model.services})
        report.warnings += [
            f"service {s} is no longer in the protos: nothing routes to its handlers" for s in gone
        ]
    if compiled.warnings:
        report.warnings.append(f"protoc: {compiled.warnings}")
    return report


def _stubs(proto_root: Path, model: Model, out: Path) -> list[Planned]:
    """protoc's Python stubs of every local file, as generated files of the project."""
    protos.write_stubs(proto_root, model.local_files, out)
    return [
        Planned(path.relative_to(out).as_posix(), _checked_as_is(path), "generated")
        for path in sorted(out.rglob("*"))
        if path.is_file()
    ]


def _checked_as_is(path: Path) -> bytes:
    """A stub's bytes; protoc's ``.pyi`` leaves some generics bare (``Mapping``), which mypy
    --strict refuses in the project, so mypy is told to take it as it is."""
    data = path.read_bytes()
    return STUB_HEADER + data if path.name.endswith("_pb2.pyi") else data


def _options(project: Path, name: str, aio: bool, stubs: Sequence[Planned]) -> Options:
    context, compose_file = _compose_paths(project)
    return Options(name, aio, context, compose_file, _versions(stubs))


def _versions(stubs: Sequence[Planned]) -> dict[str, Any]:
    """The grpcio and protobuf versions the stubs were made for (they refuse older ones at import)."""
    found = {"grpc_version": "1.66.0", "protobuf_version": "5.27.2"}
    for stub in stubs:
        text = stub.content.decode() if isinstance(stub.content, bytes) else stub.content
        for line in text.splitlines()[:20]:
            if line.startswith("GRPC_GENERATED_VERSION = "):
                found["grpc_version"] = line.partition("=")[2].strip().strip("'\"")
            elif line.startswith("# Protobuf Python Version: "):
                found["protobuf_version"] = line.partition(":")[2].strip()
    major = int(found["protobuf_version"].split(".")[0])
    return {**found, "protobuf_major": major, "telemetry_version": VERSION}


def _compose_paths(project: Path) -> tuple[str, str]:
    """The build context and this project's compose.yaml as seen from the nearest directory above
    the project with a docker-compose.yml (the stack's root, whose compose file comes first and
    anchors relative paths); absolute paths when there is none."""
    path = project.resolve()
    for parent in path.parents:
        if (parent / "docker-compose.yml").is_file():
            relative = path.relative_to(parent).as_posix()
            return f"./{relative}", f"{relative}/compose.yaml"
    return str(path), f"{path}/compose.yaml"
