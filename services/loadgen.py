"""loadgen: drives the gateway with a steady, realistic mix of requests (open loop: requests go out
on schedule whether or not earlier ones have answered, as real users do), and reports what it sent.

Mix (weights in services/config/loadgen.yaml): place an order, look one up, check stock, and a
share of invalid orders (400s). Separately a "scraper" user polls stock faster than its per-user
limit allows, so rate limiting is visible from the first minute. Every request is traced (its
``traceparent`` starts the trace the services continue) and counted:
``loadgen_requests_total{scenario,status}``, ``loadgen_request_duration_seconds{scenario}``.
"""

from __future__ import annotations

import collections
import http.client
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

import telemetry
from services import config
from services.catalog import CATALOG
from services.gateway import route_of

log = telemetry.get_logger("services.loadgen")

Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


class Scenarios:
    """What a request looks like, per scenario; remembers recent orders to look them up."""

    def __init__(self, rng: random.Random, users: int) -> None:
        self._rng = rng
        self._users = [f"user-{n:03d}" for n in range(users)]
        self._skus = sorted(CATALOG)
        self.recent_orders: collections.deque[str] = collections.deque(maxlen=500)

    def place_order(self) -> Request:
        items = [{"sku": sku, "quantity": self._rng.randint(1, 3)}
                 for sku in self._rng.sample(self._skus, self._rng.randint(1, 3))]  # fmt: skip
        user = self._rng.choice(self._users)
        return "POST", "/orders", orjson.dumps({"user": user, "items": items}), {"x-user": user}

    def get_order(self) -> Request:
        if not self.recent_orders:
            return self.place_order()
        order_id = self._rng.choice(self.recent_orders)
        return "GET", f"/orders/{order_id}", None, {"x-user": self._rng.choice(self._users)}

    def get_stock(self) -> Request:
        user = self._rng.choice(self._users)
        return "GET", f"/stock/{self._rng.choice(self._skus)}", None, {"x-user": user}

    def invalid_order(self) -> Request:
        body = self._rng.choice([{"items": [{"sku": "sku-mug"}]},  # no user
                                 {"user": "ada", "items": [{"sku": "sku-mug", "quantity": "two"}]},
                                 {"user": "ada", "items": []}])  # fmt: skip
        return "POST", "/orders", orjson.dumps(body), {"x-user": "ada"}

    def scraper(self) -> Request:
        return "GET", f"/stock/{self._rng.choice(self._skus)}", None, {"x-user": "scraper"}


class LoadGenerator:
    def __init__(self, tel: telemetry.Telemetry, settings: dict[str, Any]) -> None:
        self._tel = tel
        target = urlsplit(str(config.require(settings, "target", str)))
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self._rate = float(config.require(settings, "rate", (int, float)))
        self._scraper_rate = float(settings.get("scraper_rate", 0))
        self._timeout_ms = int(settings.get("timeout_ms", 2000))
        mix: dict[str, float] = config.require(settings, "mix", dict)
        rng = random.Random(settings.get("seed"))
        self._rng = rng
        self._scenarios = Scenarios(rng, int(settings.get("users", 50)))
        self._names = list(mix)
        self._weights = [float(weight) for weight in mix.values()]
        # Resolved once; the scraper runs beside the mix, at its own rate.
        self._actions: dict[str, Callable[[], Request]] = {"scraper": self._scenarios.scraper}
        for name, weight in zip(self._names, self._weights, strict=True):
            action = getattr(self._scenarios, name, None)
            if not callable(action) or weight < 0:
                raise config.ServiceConfigError(f"mix.{name}: unknown scenario or negative weight")
            self._actions[name] = action
        self._pool = ThreadPoolExecutor(max_workers=int(settings.get("workers", 32)),
                                        thread_name_prefix="loadgen")  # fmt: skip
        self._backlog = threading.BoundedSemaphore(int(settings.get("max_outstanding", 256)))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sent: collections.Counter[tuple[str, str]] = collections.Counter()
        self._requests = Counter("loadgen_requests", "Requests sent, by scenario and HTTP status.",
                                 ["scenario", "status"], registry=tel.registry)  # fmt: skip
        self._durations = Histogram("loadgen_request_duration_seconds",
                                    "Request duration seen by the load generator.", ["scenario"],
                                    registry=tel.registry)  # fmt: skip

    def run(self, duration: float, report_every: float) -> None:
        threads = [threading.Thread(target=self._schedule, args=(self._rate, self._pick), daemon=True)]
        if self._scraper_rate > 0:
            threads.append(threading.Thread(target=self._schedule, daemon=True,
                                            args=(self._scraper_rate, lambda: "scraper")))  # fmt: skip
        for thread in threads:
            thread.start()
        started = time.monotonic()
        while not self._stop.wait(report_every):
            self._report(time.monotonic() - started)
            if duration and time.monotonic() - started >= duration:
                self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._report(time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()

    def _pick(self) -> str:
        return self._rng.choices(self._names, self._weights)[0]

    def _schedule(self, rate: float, scenario: Callable[[], str]) -> None:
        """Open loop: the n-th request goes at start + n / rate, late ones are not made up twice."""
        interval, next_at = 1.0 / rate, time.monotonic()
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            next_at = max(next_at + interval, time.monotonic() - interval)
            name = scenario()
            if not self._backlog.acquire(blocking=False):  # the gateway is far behind: say so
                self._count(name, "skipped")
                continue
            self._pool.submit(self._send, name)

    def _send(self, scenario: str) -> None:
        try:
            method, path, body, headers = self._actions[scenario]()
            start = time.perf_counter()
            status = self._request(scenario, method, path, body, headers)
            self._durations.labels(scenario).observe(time.perf_counter() - start)
            self._count(scenario, status)
        finally:
            self._backlog.release()

    def _request(
        self, scenario: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> str:
        with self._tel.tracer.start_as_current_span(
            f"{method} {route_of(path)}", kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.full": f"http://{self._host}:{self._port}{path}",
                        "loadgen.scenario": scenario},
        ) as span:  # fmt: skip
            headers = {**headers, "x-request-timeout-ms": str(self._timeout_ms),
                       "content-type": "application/json"}  # fmt: skip
            self._tel.propagator.inject(headers)
            connection = http.client.HTTPConnection(self._host, self._port,
                                                    timeout=self._timeout_ms / 1000 + 1)  # fmt: skip
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except OSError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                return "error"
            finally:
                connection.close()
            span.set_attribute("http.response.status_code", response.status)
            if scenario == "place_order" and response.status == 201:
                self._scenarios.recent_orders.append(orjson.loads(payload)["order_id"])
            return str(response.status)

    def _count(self, scenario: str, status: str) -> None:
        self._requests.labels(scenario, status).inc()
        with self._lock:
            self.sent[scenario, status] += 1

    def _report(self, elapsed: float) -> None:
        with self._lock:
            counts = dict(self.sent)
        total = sum(counts.values())
        by_scenario: dict[str, dict[str, int]] = {}
        for (scenario, status), count in sorted(counts.items()):
            by_scenario.setdefault(scenario, {})[status] = count
        scraper = sum(by_scenario.get("scraper", {}).values())

        def per_second(count: int) -> float:
            return round(count / elapsed, 1) if elapsed else 0.0

        # The mix and the scraper apart: `rate` is what SHOP_RATE asked for; the scraper runs beside
        # it at its own rate, deliberately over its per-user limit (its 429s are expected).
        log.info("load sent", seconds=round(elapsed, 1), requests=total,
                 rate=per_second(total - scraper), scraper_rate=per_second(scraper),
                 by_scenario=by_scenario)  # fmt: skip


def main() -> None:
    settings = config.load("loadgen")  # SHOP_TARGET, SHOP_RATE ... as for every service
    tel = telemetry.init(service_name="loadgen")
    generator = LoadGenerator(tel, settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: generator.stop())
    generator.run(float(settings.get("duration_seconds", 0)), float(settings.get("report_seconds", 10)))
    tel.shutdown()


if __name__ == "__main__":
    main()
