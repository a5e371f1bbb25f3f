"""What every demo service does the same way: telemetry from its settings, the standard health and
reflection services, registration in etcd, graceful shutdown, and simulated I/O as child spans.

Only the public API of ``telemetry`` is used here, as a user's service would.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import telemetry
from services import config

log = telemetry.get_logger("services")

Servicers = Callable[[Any, "Node"], Iterable[str]]
"""Adds a service's servicers to a server and returns their full names (``demoshop.v1.Order``)."""


class Node:
    """One service process: its settings and its telemetry handle."""

    def __init__(self, name: str, settings: dict[str, Any] | None = None) -> None:
        self.name = name
        self.settings = settings if settings is not None else config.load(name)
        governance = self.settings.get("governance") or {}
        etcd = self.settings.get("etcd") or None
        self.tel = telemetry.init(
            service_name=name,
            etcd=etcd,
            governance=governance,
            instance_id=self.settings.get("instance_id") or None,
        )
        self.rng = random.Random()

    @property
    def grace(self) -> float:
        """Seconds in-flight calls get to finish at shutdown."""
        return float(self.settings.get("grace_seconds", 5))

    @property
    def listen(self) -> str:
        return str(config.require(self.settings, "listen", str))

    def advertise(self, port: int) -> str:
        """The address others reach this instance at: ``advertise``, else the bound one."""
        explicit = self.settings.get("advertise")
        if explicit:
            return str(explicit)
        host = self.listen.rpartition(":")[0].strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"{host}:{port}"

    def register(self, port: int, grpc_services: list[str]) -> None:
        """In etcd, with the gRPC services served (the panel finds a service's callers by them)."""
        if self.tel.discovery is not None:
            self.tel.register(self.advertise(port), version=telemetry.__version__,
                              zone=str(self.settings.get("zone", "")),
                              metadata={"grpc_services": ",".join(grpc_services)} if grpc_services
                              else None)  # fmt: skip

    # -- simulated work, as child spans of the current call ------------------------------------

    def io_seconds(self, key: str) -> float:
        """A pause drawn from the ``[low, high]`` milliseconds range setting ``key``."""
        low, high = self.settings.get(key, [1, 3])
        return float(self.rng.uniform(low, high)) / 1000.0

    def simulated_io(self, span_name: str, key: str, **attributes: Any) -> None:
        with self.tel.tracer.start_as_current_span(span_name, attributes=attributes):
            time.sleep(self.io_seconds(key))

    async def simulated_io_async(self, span_name: str, key: str, **attributes: Any) -> None:
        with self.tel.tracer.start_as_current_span(span_name, attributes=attributes):
            await asyncio.sleep(self.io_seconds(key))


def _mount(
    node: Node, server: Any, add_servicers: Servicers, health_servicer: Any
) -> tuple[int, list[str]]:
    """Add the service's servicers, health and reflection to ``server`` and bind it; returns the
    port and the names whose health to set SERVING once started ("" is the whole server)."""
    names = list(add_servicers(server, node))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME, health.SERVICE_NAME], server)
    return server.add_insecure_port(node.listen), [*names, ""]


def _announce(node: Node, port: int, names: list[str]) -> None:
    node.register(port, [name for name in names if name])
    log.info("serving", service=node.name, listen=node.listen, port=port, metrics=node.tel.metrics_url)


def serve(name: str, add_servicers: Servicers) -> None:
    """Run a sync gRPC service until SIGTERM/SIGINT."""
    node = Node(name)
    server = node.tel.server(max_workers=int(node.settings.get("max_workers", 8)))
    servicer = health.HealthServicer()
    port, names = _mount(node, server, add_servicers, servicer)
    server.start()
    for service in names:
        servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    _announce(node, port, names)
    node.tel.serve(server, grace=node.grace)


def serve_aio(name: str, build: Callable[[Node], Awaitable[Servicers]]) -> None:
    """Run a grpc.aio service until SIGTERM/SIGINT; ``build`` makes its servicers on the loop."""

    async def main() -> None:
        node = Node(name)
        server = node.tel.aio_server()
        servicer = health.aio.HealthServicer()
        port, names = _mount(node, server, await build(node), servicer)
        await server.start()
        for service in names:
            await servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        _announce(node, port, names)
        await node.tel.serve_aio(server, grace=node.grace)

    asyncio.run(main())
