"""Shared fixtures: generated stubs, one logging configuration, and real loopback services."""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.logging import pipeline
from telemetry.testing import SpanCapture, capture_logs
from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.protoc import compile_protos

ROOT = Path(__file__).resolve().parent
compile_protos(ROOT / "protos", Path(tempfile.mkdtemp(prefix="telemetry-test-protos-")))

import echo_pb2_grpc  # noqa: E402
from echo_service import AioEcho, SyncEcho  # noqa: E402
from helpers import make_config  # noqa: E402

# Logs go to a buffer (CI output stays readable); tests read them through capture_logs().
pipeline.configure(service_name="tests", level="info", stream=io.StringIO())


@dataclass
class Service:
    name: str
    tel: telemetry.Telemetry
    spans: SpanCapture
    target: str = ""
    server: Any = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


@pytest.fixture
def handles() -> Iterator[list[telemetry.Telemetry]]:
    """Telemetry handles a test makes (append them): shut down after it, spans flushed."""
    made: list[telemetry.Telemetry] = []
    yield made
    for tel in made:
        tel.shutdown(timeout=2.0)


@pytest.fixture
def logs() -> Iterator[Any]:
    with capture_logs() as capture:
        yield capture


@pytest.fixture
def sync_service() -> Iterator[Callable[..., Service]]:
    """Start sync Echo services on loopback: ``sync_service("a")``."""
    started: list[Service] = []

    def start(name: str, governance: Any = None, servicer: Any = None, **overrides: Any) -> Service:
        spans = SpanCapture()
        registry = CollectorRegistry()
        tel = telemetry.Telemetry(
            make_config(name, **overrides),
            registry=registry,
            span_processors=[spans.processor],
            governance=governance,
        )
        server = tel.server(max_workers=8)
        echo_pb2_grpc.add_EchoServicer_to_server(servicer or SyncEcho(tel), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        service = Service(name, tel, spans, f"127.0.0.1:{port}", server, registry)
        started.append(service)
        return service

    yield start
    for service in started:
        service.server.stop(grace=None).wait(5)
        service.tel.shutdown()


@pytest.fixture
async def aio_service() -> AsyncIterator[Callable[..., Any]]:
    """Start grpc.aio Echo services on loopback: ``await aio_service("a")``."""
    started: list[Service] = []

    async def start(
        name: str, governance: Any = None, servicer: Any = None, **overrides: Any
    ) -> Service:
        spans = SpanCapture()
        registry = CollectorRegistry()
        tel = telemetry.Telemetry(
            make_config(name, **overrides),
            registry=registry,
            span_processors=[spans.processor],
            governance=governance,
        )
        server = tel.aio_server()
        echo_pb2_grpc.add_EchoServicer_to_server(servicer or AioEcho(tel), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        service = Service(name, tel, spans, f"127.0.0.1:{port}", server, registry)
        started.append(service)
        return service

    yield start
    for service in started:
        await service.server.stop(None)
        service.tel.shutdown()


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    """A throwaway etcd for one test (modules with their own ``etcd`` fixture override it)."""
    with EtcdServer() as server:
        yield server


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    c = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,), timeout=1.0))
    yield c
    c.close()
