"""One native demo stack for the end-to-end tests of this directory (started once, on free ports,
with spans sent to an in-process OTLP receiver)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from services.stack import NativeStack
from telemetry.testing import OtlpReceiver


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    workdir = tmp_path_factory.mktemp("native-stack")
    native = NativeStack(
        workdir, otlp_endpoint=otlp.grpc_endpoint, loadgen_rate=10.0, standard_ports=False
    )
    with native:
        yield native


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's own checker; these checks must not be skipped when it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: install Prometheus's tools "
            "(Debian: apt-get install prometheus); these checks must not be skipped"
        )
    return path
