"""The checked-in demo stubs match services/protos/demoshop.proto (regenerate with
``python -m services.protos.generate``). Version stamps are ignored: a newer grpcio-tools on CI
writes a different stamp for the same schema."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from services.protos.generate import ROOT, generate

GENERATED = ("demoshop_pb2.py", "demoshop_pb2.pyi", "demoshop_pb2_grpc.py")
STAMPS = re.compile(
    r"^(# Protobuf Python Version:.*|GRPC_GENERATED_VERSION = .*|\s+\d+,\s*$)", re.MULTILINE
)


@pytest.fixture(scope="module")
def fresh() -> Path:
    out = Path(tempfile.mkdtemp(prefix="demoshop-stubs-"))
    generate(out)
    return out / "services" / "protos"


@pytest.mark.parametrize("name", GENERATED)
def test_checked_in_stub_is_current(fresh: Path, name: str) -> None:
    checked_in = (ROOT / "services" / "protos" / name).read_text()
    regenerated = (fresh / name).read_text()
    assert STAMPS.sub("", checked_in) == STAMPS.sub("", regenerated), (
        f"services/protos/{name} is stale: run python -m services.protos.generate"
    )
