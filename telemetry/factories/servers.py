"""Instrumented gRPC servers: each registered method handler is wrapped once with the concern
chain (cheaper per call than grpc's interceptor path); the caller's interceptors run before it."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio

from telemetry.governance.engine import Governance
from telemetry.rpc._server_common import wrap_registrations
from telemetry.rpc.admission import PollerAdmission
from telemetry.rpc.aio_server import AioServerInterceptor
from telemetry.rpc.executor import QueueTimedExecutor
from telemetry.rpc.server import ServerInterceptor

__all__ = ["build_aio_server", "build_server"]


def build_server(
    chain: ServerInterceptor,
    governance: Governance | None,
    *,
    max_workers: int,
    interceptors: Sequence[Any],
    options: Sequence[tuple[str, Any]],
    maximum_concurrent_rpcs: int | None,
) -> grpc.Server:
    """With ``governance``, the adaptive limiter also refuses in grpc's poller thread, before a
    worker is taken (telemetry.rpc.admission)."""
    admission = PollerAdmission(governance) if governance is not None else None
    # Governance stamps each call as it is queued, for queue-delay shedding (CoDel).
    pool = QueueTimedExecutor if governance is not None else ThreadPoolExecutor
    server = grpc.server(
        pool(max_workers=max_workers, thread_name_prefix="grpc-handler"),
        interceptors=([admission, *interceptors] if admission else list(interceptors)) or None,
        options=list(options),
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    if admission is not None:
        admission.attach(server)
    return wrap_registrations(server, chain)


def build_aio_server(
    chain: AioServerInterceptor,
    *,
    interceptors: Sequence[Any],
    options: Sequence[tuple[str, Any]],
    maximum_concurrent_rpcs: int | None,
) -> grpc.aio.Server:
    server = grpc.aio.server(
        interceptors=list(interceptors) or None,
        options=list(options),
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    return wrap_registrations(server, chain)
