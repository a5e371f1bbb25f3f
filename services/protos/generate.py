"""Regenerate the checked-in stubs after editing demoshop.proto:

    python -m services.protos.generate

They are checked in so the services run without grpcio-tools; tests/stack/test_protos_current.py
fails when they no longer match the .proto.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "services/protos/demoshop.proto"


def generate(out_dir: Path = ROOT) -> None:
    from grpc_tools import protoc  # dev dependency: grpcio-tools

    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(["grpc_tools.protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_dir}",
                        f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", PROTO])  # fmt: skip
    if code != 0:
        raise RuntimeError(f"protoc failed ({code}) for {PROTO}")


if __name__ == "__main__":
    generate()
