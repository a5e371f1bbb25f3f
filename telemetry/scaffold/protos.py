"""Reading .proto files the way protoc does, through grpcio-tools, never with regular expressions.

protoc compiles the files to a ``FileDescriptorSet`` (``--include_imports``: every file with the
files it imports, dependencies first), which :mod:`telemetry.scaffold.model` turns into services and
RPCs; the same protoc writes the Python stubs. grpcio-tools ships the ``google/protobuf`` well-known
types' .proto files, so its include directory is always on the path, after the user's.

protoc runs in a child process so that its messages (``file.proto:12:5: "Foo" is not defined.``)
are captured and reported, not lost on the terminal: the C++ compiler writes them to file
descriptor 2 directly.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

from telemetry.scaffold.errors import ScaffoldError

WELL_KNOWN_PREFIX = "google/protobuf/"
"""Files under this name are the well-known types: protobuf's own Python package has their modules."""


@dataclass(frozen=True)
class Compiled:
    """What protoc made of the files asked for."""

    files: tuple[descriptor_pb2.FileDescriptorProto, ...]
    """Every file, imports included, each after the files it imports."""
    targets: tuple[str, ...]
    """The files asked for, named as protoc names them: relative to their include directory."""
    sources: Mapping[str, Path]
    """Every file that is not a well-known type (the ones a project copies): name -> path on disk."""
    warnings: str = ""
    """What protoc printed while succeeding (an unused import, say)."""


def grpc_tools_include() -> Path:
    """grpcio-tools' include directory: the well-known types' .proto files."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise ScaffoldError(
            "grpcio-tools is not installed: install this package with its scaffold extra "
            "(pip install -e '<this repository>[scaffold]'; README, Install in your own project)"
        ) from None
    return Path(protoc.__file__).parent / "_proto"


def compile_descriptors(protos: Sequence[Path], includes: Sequence[Path]) -> Compiled:
    """Compile ``protos`` (each under one of ``includes``) to descriptors; a file that does not
    compile is a :class:`ScaffoldError` carrying protoc's own message (file, line and column)."""
    roots = [Path(p).resolve() for p in includes]
    targets = tuple(_name_under(Path(proto), roots) for proto in protos)
    with tempfile.TemporaryDirectory(prefix="telemetry-new-") as tmp:
        out = Path(tmp) / "descriptors.bin"
        result = _protoc(
            [*(f"-I{root}" for root in roots), f"-I{grpc_tools_include()}", "--include_imports",
             f"--descriptor_set_out={out}", *targets]
        )  # fmt: skip
        if result.returncode != 0:
            raise ScaffoldError(
                f"protoc could not compile {', '.join(targets)}:\n{result.stderr.strip()}"
            )
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    compiled_names = {file.name for file in descriptors.file}
    if missing := [target for target in targets if target not in compiled_names]:
        raise ScaffoldError(f"protoc did not compile {', '.join(missing)} as asked")
    sources: dict[str, Path] = {}
    for file in descriptors.file:
        if not file.name.startswith(WELL_KNOWN_PREFIX):
            sources[file.name] = _found_under(file.name, roots)
    return Compiled(tuple(descriptors.file), targets, sources, result.stderr.strip())


def write_stubs(proto_root: Path, names: Sequence[str], out: Path) -> None:
    """The Python stubs of ``names`` (files under ``proto_root``): ``_pb2.py``, its ``.pyi`` and
    ``_pb2_grpc.py``, written under ``out`` at the paths their own imports expect."""
    out.mkdir(parents=True, exist_ok=True)
    result = _protoc(
        [f"-I{proto_root}", f"-I{grpc_tools_include()}", f"--python_out={out}", f"--pyi_out={out}",
         f"--grpc_python_out={out}", *names]
    )  # fmt: skip
    if result.returncode != 0:
        raise ScaffoldError(f"protoc could not write the stubs:\n{result.stderr.strip()}")


def _protoc(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _name_under(proto: Path, roots: Sequence[Path]) -> str:
    """``proto`` as protoc names it: its path relative to the first include directory holding it."""
    path = proto.resolve()
    if not path.is_file():
        raise ScaffoldError(f"{proto}: no such file")
    if path.suffix != ".proto":
        raise ScaffoldError(f"{proto}: not a .proto file")
    for root in roots:
        if path.is_relative_to(root):
            return checked_proto_name(path.relative_to(root).as_posix())
    shown = ", ".join(str(root) for root in roots)
    raise ScaffoldError(f"{proto}: not under any include directory ({shown}); add one with -I")


def checked_proto_name(name: str) -> str:
    """``name`` as a relative path protoc reads as a file: a part starting with ``-`` would be read
    as an option (``--plugin=...`` runs a program), and ``..`` or an absolute path leave the
    include directory."""
    parts = name.split("/")
    if name.startswith("/") or any(not part or part == ".." or part.startswith("-") for part in parts):
        raise ScaffoldError(
            f"{name!r}: not a usable .proto path (no part may be empty, '..' or start with '-')"
        )
    return name


def _found_under(name: str, roots: Sequence[Path]) -> Path:
    for root in roots:
        if (root / name).is_file():
            return root / name
    raise ScaffoldError(f"{name}: imported, but in none of the include directories")
