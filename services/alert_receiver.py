"""Alertmanager's webhook receiver for the demo: where the stack's alerts end up, readable as JSON.

    python -m services.alert_receiver --listen 127.0.0.1:9466

``POST /webhook`` records one Alertmanager notification (its JSON body, as sent); ``GET /alerts``
returns the recorded ones, oldest first, each as ``{"received_at": <unix seconds>, "payload": ...}``;
``GET /healthz`` answers ``ok``; every other path is 404. Bounded, since anyone on the network the
port is on can post: a body over ``--max-body`` bytes is refused with 413 (unread), and the oldest
notifications are dropped beyond ``--max-entries`` or ``--max-bytes`` in all.

It lives in ``services/`` beside ``scrape_targets``: a part of the demo that the native launcher
and compose both run (from the demo image), not a test double; tests and the panel read it.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 256 * 1024  # one notification: Alertmanager sends a few KB per group
MAX_ENTRIES = 200
MAX_BYTES = 4 * 1024 * 1024


class Notifications:
    """The received payloads, oldest first, kept within ``max_entries`` and ``max_bytes``."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._entries: deque[tuple[float, bytes]] = deque()
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def add(self, body: bytes, received_at: float | None = None) -> None:
        with self._lock:
            self._entries.append((time.time() if received_at is None else received_at, body))
            self._bytes += len(body)
            while self._entries and (
                len(self._entries) > self._max_entries or self._bytes > self._max_bytes
            ):
                self._bytes -= len(self._entries.popleft()[1])

    def as_json(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._entries)
        return [{"received_at": at, "payload": json.loads(body)} for at, body in entries]


class AlertHandler(BaseHTTPRequestHandler):
    """The receiver's HTTP side; :func:`make_handler` binds it to a store and a body limit."""

    store: Notifications
    max_body = MAX_BODY

    def do_GET(self) -> None:
        if self.path == "/alerts":
            self._answer(200, json.dumps(self.store.as_json()).encode(), "application/json")
        elif self.path == "/healthz":
            self._answer(200, b"ok\n")
        else:
            self._answer(404, b"not found\n")

    def do_POST(self) -> None:
        if self.path != "/webhook":
            self._answer(404, b"not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(411, b"Content-Length required\n")
            return
        if length < 0 or length > self.max_body:
            self.close_connection = True  # the body stays unread: this connection is done
            self._answer(413, f"body over {self.max_body} bytes\n".encode())
            return
        body = self.rfile.read(length)
        try:
            json.loads(body)
        except ValueError:
            self._answer(400, b"not JSON\n")
            return
        self.store.add(body)
        self._answer(200, b"ok\n")

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per poll of /alerts would drown the log


def make_handler(store: Notifications, max_body: int = MAX_BODY) -> type[AlertHandler]:
    return type("BoundAlertHandler", (AlertHandler,), {"store": store, "max_body": max_body})


def serve(
    host: str, port: int, *, max_body: int = MAX_BODY, max_entries: int = MAX_ENTRIES,
    max_bytes: int = MAX_BYTES,
) -> ThreadingHTTPServer:  # fmt: skip
    """A server bound to ``host:port`` (0: any free port), not yet serving: call serve_forever."""
    store = Notifications(max_entries, max_bytes)
    return ThreadingHTTPServer((host, port), make_handler(store, max_body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--listen", default="0.0.0.0:9466", help="host:port")
    parser.add_argument("--max-body", type=int, default=MAX_BODY)
    parser.add_argument("--max-entries", type=int, default=MAX_ENTRIES)
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = serve(host, int(port), max_body=args.max_body, max_entries=args.max_entries,
                   max_bytes=args.max_bytes)  # fmt: skip
    print(f"alert receiver on http://{args.listen}/webhook (GET /alerts)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
