"""Serve a registry over HTTP. prometheus-client negotiates OpenMetrics from the scraper's Accept
header, which is the only format that carries exemplars."""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

_log = logging.getLogger("telemetry")


class MetricsServer:
    """A running ``/metrics`` endpoint; ``port`` is the bound port (useful when asked for 0)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer | None:
    """Start the endpoint; if the port cannot be bound, log why and carry on without it."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        _log.error("metrics endpoint %s:%s not started: %s; the service runs on", host, port, exc)
        return None
    return MetricsServer(server, thread)
