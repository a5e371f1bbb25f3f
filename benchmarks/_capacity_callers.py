"""The capacity benchmark's own callers of the shop's gateway (``POST /orders``), and its pure
helpers: closed-loop callers (each sends its next order when the last one is answered: the
saturation method of ``benchmarks/overload.py``), an open-loop generator (orders sent on a fixed
schedule whatever the shop does, latency counted from the scheduled time), and the figures and
goals computed from what they saw. ``capacity.py`` is the entry point."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

ORDER = {"user": "bench", "items": [{"sku": "sku-mug", "quantity": 1}]}
TIMEOUT_MS = 2000  # the load generator's deadline (services/config/loadgen.yaml)
USERS = 50


@dataclass
class Calls:
    """What callers saw: latency (seconds) of each answered call, by outcome."""

    seconds: float = 0.0
    ok: list[float] = field(default_factory=list)
    """Answered without a server error (not 5xx, not 429)."""
    shed: int = 0
    """429: refused by a limit."""
    failed: int = 0
    """5xx, timeouts and connection errors."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, status: int, latency: float) -> None:
        with self.lock:
            if status == 429:
                self.shed += 1
            elif 0 < status < 500:
                self.ok.append(latency)
            else:
                self.failed += 1

    @property
    def goodput(self) -> float:
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def figures(
    *, c: float | None, capacity: float, goodput: float, p99: float | None, unloaded_p99: float | None
) -> dict[str, Any]:
    """The benchmark's four figures and whether each goal is met: C within +-15% of the
    independently measured capacity; at 2x with the limit, goodput >= 90% of capacity and the
    admitted p99 <= 2x the unloaded p99."""
    c_error = None if c is None or capacity <= 0 else c / capacity - 1
    share = goodput / capacity if capacity > 0 else None
    ratio = None if p99 is None or not unloaded_p99 else p99 / unloaded_p99
    return {
        "c_vs_capacity": c_error,
        "goodput_share": share,
        "p99_ratio": ratio,
        "goals": {
            "c_within_15pct": c_error is not None and abs(c_error) <= 0.15,
            "goodput_ge_90pct": share is not None and share >= 0.9,
            "p99_le_2x": ratio is not None and ratio <= 2.0,
        },
    }


def place_order(url: str, user: str) -> int:
    """One order through the gateway: the HTTP status (0: no answer within the deadline)."""
    body = json.dumps({**ORDER, "user": user}).encode()
    request = urllib.request.Request(
        f"{url}/orders",
        data=body,
        method="POST",
        headers={"content-type": "application/json", "x-user": user,
                 "x-request-timeout-ms": str(TIMEOUT_MS)},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_MS / 1000 + 1) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def closed_loop(url: str, callers: int, seconds: float, warmup: float = 0.0) -> Calls:
    """``callers`` threads each sending an order as soon as the last is answered, for ``warmup``
    (not counted) then ``seconds``."""
    calls = Calls(seconds=seconds)
    began = time.monotonic()
    counting, ends = began + warmup, began + warmup + seconds

    def caller(index: int) -> None:
        n = 0
        while (start := time.monotonic()) < ends:
            status = place_order(url, f"bench-{(index * 7 + n) % USERS}")
            n += 1
            if start >= counting and time.monotonic() <= ends:
                calls.add(status, time.monotonic() - start)

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + warmup + TIMEOUT_MS / 1000 + 5)
    return calls


def open_loop(url: str, rate: float, seconds: float, workers: int = 96) -> Calls:
    """Orders sent at ``rate`` per second on a fixed schedule for ``seconds``; each latency is
    counted from its scheduled time (a late send is the generator's queueing, counted too)."""
    calls = Calls(seconds=seconds)
    began = time.monotonic()
    total = int(rate * seconds)

    def send(due: float, n: int) -> None:
        status = place_order(url, f"bench-{n % USERS}")
        calls.add(status, time.monotonic() - due)

    with ThreadPoolExecutor(workers) as pool:
        for n in range(total):
            due = began + n / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(send, due, n)
    return calls
