"""The chaos benchmark's traffic: open-loop ``POST /orders`` senders (a send is never delayed by a
slow answer) of legitimate orders, or hostile ones with an oversized SKU, recording every request
by its send time. ``chaos.py`` is the entry point."""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from chaos_analysis import NO_ANSWER, SKIPPED, Record

from services.catalog import CATALOG

TIMEOUT_MS = 2000
MAX_IN_FLIGHT = 512
USERS = tuple(f"user-{n:03d}" for n in range(20))
HOSTILE_RATE = 20.0
HOSTILE_SKU_BYTES = 20 * 1024
HOSTILE_USER = "mallory"

Body = Callable[[random.Random], tuple[str, bytes]]  # rng -> (user, JSON body)


def legitimate_order(rng: random.Random) -> tuple[str, bytes]:
    skus = sorted(CATALOG)
    user = rng.choice(USERS)
    items = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(skus, rng.randint(1, 3))]
    return user, json.dumps({"user": user, "items": items}).encode()


_HOSTILE_BODY = json.dumps(
    {"user": HOSTILE_USER, "items": [{"sku": "sku-" + "x" * (HOSTILE_SKU_BYTES - 4), "quantity": 1}]}
).encode()


def hostile_order(_rng: random.Random) -> tuple[str, bytes]:
    return HOSTILE_USER, _HOSTILE_BODY


class OpenLoop:
    """Sends ``POST /orders`` at ``rate`` per second on a fixed schedule, whatever the answers do
    (one pool thread per request in flight, at most ``MAX_IN_FLIGHT``); records every request with
    its monotonic send time."""

    def __init__(self, url: str, rate: float, body: Body, seed: int) -> None:
        target = urlsplit(url)
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self._rate = rate
        self._body = body
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="chaos-load")
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._schedule, name="chaos-schedule", daemon=True)
        self.records: list[Record] = []  # sent: monotonic seconds, until shifted by the caller

    def start(self) -> OpenLoop:
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop sending; with ``wait``, until every request in flight has its answer (each is
        bounded by its socket timeout)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._pool.shutdown(wait=wait)

    def _schedule(self) -> None:
        interval, next_at = 1.0 / self._rate, time.monotonic()
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            next_at = max(next_at + interval, time.monotonic() - interval)  # late: not made up twice
            user, body = self._body(self._rng)
            if not self._in_flight.acquire(blocking=False):
                self._record(Record(time.monotonic(), 0.0, SKIPPED))
                continue
            try:
                self._pool.submit(self._send, user, body)
            except RuntimeError:  # the pool shut down under us: stopping
                self._in_flight.release()
                return

    def _send(self, user: str, body: bytes) -> None:
        headers = {"x-user": user, "x-request-timeout-ms": str(TIMEOUT_MS),
                   "content-type": "application/json"}  # fmt: skip
        sent = time.monotonic()
        status, degraded = NO_ANSWER, False
        connection = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_MS / 1000 + 1)
        try:
            connection.request("POST", "/orders", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            status = response.status
            if status == 201:
                with contextlib.suppress(ValueError, AttributeError):
                    degraded = bool(json.loads(payload).get("recommendations_degraded"))
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
            self._in_flight.release()
        self._record(Record(sent, time.monotonic() - sent, status, degraded))

    def _record(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def shifted(self, origin: float) -> list[Record]:
        """The records with send times relative to ``origin`` (monotonic), by send time."""
        with self._lock:
            records = list(self.records)
        return sorted(
            (Record(r.sent - origin, r.latency, r.status, r.degraded) for r in records),
            key=lambda r: r.sent,
        )
