"""Compile .proto files to Python modules at run time (tests, benchmarks, demo builds).

Generated code is tied to the grpcio-tools version that made it; compiling where it is used keeps it
matched to the installed grpcio.
"""

from __future__ import annotations

import sys
from pathlib import Path


def compile_protos(proto_dir: Path, out_dir: Path, *, add_to_path: bool = True) -> Path:
    from grpc_tools import protoc  # dev dependency: grpcio-tools

    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.glob("*.proto"))
    if not protos:
        raise FileNotFoundError(f"no .proto files in {proto_dir}")
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *protos,
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed ({code}) for {protos}")
    if add_to_path and str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    return out_dir
