"""A small HTTP stand-in for Prometheus's query API, for the capacity test's tests: it answers from
the rate a load generator is actually running at, as a service of a given capacity would (flat p99
below 90% of capacity, then rising; goodput capped at the capacity; CPU per call 20 ms). The real
Prometheus and shop: tests/stack."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _value(query: str, offered: float, capacity: float) -> float:
    load = offered / capacity
    if "histogram_quantile" in query:
        return 0.01 if load < 0.9 else 0.01 * (1 + 30 * (load - 0.9))
    if 'grpc_code=~"' in query:  # the errors of the error ratio (grpc_code!~ selects the served)
        return 0.0
    if "process_cpu" in query:
        return min(offered, capacity) * 0.02
    return min(offered, capacity)


@contextmanager
def fake_prometheus(
    offered: Callable[[], float], capacity: float, alerts: list[dict[str, Any]] | None = None
) -> Iterator[str]:
    """Serve on a free loopback port; yields the base URL. ``offered``: the generator's rate now;
    ``alerts``: what ``/api/v1/alerts`` holds (Prometheus's JSON for each)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
            value = _value(query, offered(), capacity)
            if url.path.endswith("/alerts"):
                data: dict[str, Any] = {"alerts": alerts or []}
            elif url.path.endswith("query_range"):
                series = {"metric": {}, "values": [[time.time(), str(value)]]}
                data = {"resultType": "matrix", "result": [series]}
            else:
                data = {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]}
            body = json.dumps({"status": "success", "data": data})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
