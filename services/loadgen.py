"""loadgen: drives the gateway with a steady, realistic mix of requests (open loop: requests go out
on schedule whether or not earlier ones have answered, as real users do), and reports what it sent.

Settings (rate, mix weights, scraper rate) from services/config/loadgen.yaml and SHOP_*; with etcd
(``ETCD_ENDPOINTS``) they follow ``/loadgen/settings`` live (``telemetry.load``: a change is in
force within a second, the schedule starting over from then; status in ``/loadgen/status``), and
``loadgen_offered_rate`` reports the mix's rate the schedule runs at.

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
from prometheus_client import Counter, Gauge, Histogram

import telemetry
from services import config
from services.catalog import CATALOG
from services.gateway import route_of
from telemetry import RuleError
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.live import LiveLoad
from telemetry.load.schedule import LoadPlan, run_open_loop
from telemetry.load.settings import SCENARIOS, LoadSettings, parse_load

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
        rng = random.Random(settings.get("seed"))
        self._rng = rng
        self._scenarios = Scenarios(rng, int(settings.get("users", 50)))
        self._timeout_ms = int(settings.get("timeout_ms", 2000))
        # The YAML/env settings, checked like a live setting: in force while etcd has none.
        self.plan = LoadPlan(_baseline(settings))
        self._actions: dict[str, Callable[[], Request]] = {
            name: getattr(self._scenarios, name) for name in (*SCENARIOS, "scraper")
        }
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
        offered = Gauge("loadgen_offered_rate",
                        "Requests/s of the mix the open-loop schedule runs at now (live settings).",
                        registry=tel.registry)  # fmt: skip
        offered.set_function(lambda: self.plan.scheduled_rate)

    def run(self, duration: float, report_every: float) -> None:
        # The mix and, beside it, the scraper: each an open-loop schedule re-reading the plan.
        threads = [
            threading.Thread(target=run_open_loop, args=(self.plan, lambda: self._submit(self._pick())),
                             name="loadgen-mix", daemon=True),
            threading.Thread(target=run_open_loop, name="loadgen-scraper", daemon=True,
                             args=(self.plan, lambda: self._submit("scraper"), _scraper_rate),
                             kwargs={"report": False}),
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        started = time.monotonic()
        while not self._stop.wait(report_every):
            self._report(time.monotonic() - started)
            if duration and time.monotonic() - started >= duration:
                self._stop.set()
        self.plan.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._report(time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()
        self.plan.close()

    def _pick(self) -> str:
        mix = self.plan.settings.mix
        return self._rng.choices(list(mix), list(mix.values()))[0]

    def _submit(self, name: str) -> None:
        if not self._backlog.acquire(blocking=False):  # the gateway is far behind: say so
            self._count(name, "skipped")
            return
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


def _baseline(settings: dict[str, Any]) -> LoadSettings:
    """The settings of the YAML file and environment, validated by the live settings' model."""
    rate = config.require(settings, "rate", (int, float))
    mix = config.require(settings, "mix", dict)
    try:
        return parse_load({"rate": rate, "scraper_rate": settings.get("scraper_rate", 0), "mix": mix})
    except RuleError as exc:
        raise config.ServiceConfigError(str(exc)) from None


def _scraper_rate(settings: LoadSettings, _elapsed: float) -> float:
    return settings.scraper_rate


def _watch(settings: dict[str, Any], plan: LoadPlan) -> LiveLoad | None:
    """With etcd (``ETCD_ENDPOINTS``), the settings follow ``/loadgen/settings`` live."""
    endpoints = str(settings.get("etcd") or "")
    if not endpoints:
        return None
    client = EtcdClient(
        EtcdConfig.from_env(endpoints=tuple(e.strip() for e in endpoints.split(",") if e.strip()))
    )
    return LiveLoad(client, plan).start()


def main() -> None:
    settings = config.load("loadgen")  # SHOP_TARGET, SHOP_RATE ... as for every service
    tel = telemetry.init(service_name="loadgen")
    generator = LoadGenerator(tel, settings)
    live = _watch(settings, generator.plan)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: generator.stop())
    generator.run(float(settings.get("duration_seconds", 0)), float(settings.get("report_seconds", 10)))
    if live is not None:
        live.stop()
    tel.shutdown()


if __name__ == "__main__":
    main()
