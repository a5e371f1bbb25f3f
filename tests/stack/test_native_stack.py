"""End to end on the native stack: etcd, Prometheus, every demo service and the load generator as
real processes on loopback (tests run in file order: the fault scenario changes the stack, so it
comes last)."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from services.stack import NativeStack
from stack.promql import all_expressions
from stack.stackhttp import prometheus, request
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.testing import OtlpReceiver
from telemetry.testing._poll import poll

ROOT = Path(__file__).resolve().parents[2]
GRPC_JOBS = ("order", "inventory", "payment", "recommendation", "notification")
TRACED = {"gateway", "order", "inventory", "payment", "recommendation", "notification"}
ORDER = {"user": "ada", "items": [{"sku": "sku-mug", "quantity": 1}]}

T = TypeVar("T")


def wait_for(read: Callable[[], T], ready: Callable[[T], bool], timeout: float, what: str) -> T:
    return poll(read, ready, timeout, what, interval=0.25)  # each read is an HTTP round trip


def test_every_dashboard_and_rule_expression_returns_data_within_60s(stack: NativeStack) -> None:
    expressions = all_expressions(ROOT)
    assert len(expressions) > 20
    missing = {e.query: e for e in expressions}
    deadline = stack.started_at + 60.0
    while missing:
        # At least one pass: when earlier tests kept the stack busy past the 60 s, everything must
        # already be there (this loop once ended before asking anything, and reported all missing).
        for query in list(missing):
            if prometheus(stack.prometheus_url, "/api/v1/query", query=query)["result"]:
                del missing[query]
        if not missing or time.time() >= deadline:
            break
        time.sleep(1.0)
    assert not missing, "no data within 60 s of start:\n" + "\n".join(
        f"  {e.source}: {e.query}" for e in missing.values()
    )


def test_one_trace_through_every_service_with_correlated_logs(
    stack: NativeStack, otlp: OtlpReceiver
) -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    status, body = request(
        f"{stack.gateway_url}/orders", method="POST", body=ORDER,
        headers={"traceparent": f"00-{trace_id}-{parent}-01", "x-user": "ada"},
    )  # fmt: skip
    assert status == 201, body
    assert body["payment_id"].startswith("pay_") and body["recommendations"]

    def connected(spans: list[Any]) -> bool:
        """Every service's spans arrived, as one tree (a parent ends after its children, so it
        may be exported in a later batch than they are)."""
        mine = [s for s in spans if s.trace_id == trace_id]
        ids = {s.span_id for s in mine} | {parent}
        return {s.service_name for s in mine} >= TRACED and all(s.parent_span_id in ids for s in mine)

    spans = otlp.wait_for(connected, timeout=20)
    mine = [s for s in spans if s.trace_id == trace_id]
    root = next(s for s in mine if s.service_name == "gateway" and s.kind == "SERVER")
    assert root.parent_span_id == parent  # the caller's trace is continued
    assert {"db.update stock", "fraud.score", "db.insert order"} <= {s.name for s in mine}

    for name in ("gateway", "order", "inventory-1", "payment", "recommendation", "notification"):
        if name == "inventory-1":  # the call went to one of the two instances
            logs = [stack.log_file("inventory-1"), stack.log_file("inventory-2")]
        else:
            logs = [stack.log_file(name)]
        wait_for(partial(_mentions, logs, trace_id), bool, 10, f"a log line of {name} with the trace id")


def whole_lines(log: Path) -> list[str]:
    """The lines of ``log`` written whole: the writer may be half way through the last one."""
    return [row for row in log.read_text().split("\n")[:-1] if row]


def _mentions(logs: list[Path], text: str) -> bool:
    return any(text in log.read_text() for log in logs)


def test_malformed_traceparent_starts_a_new_trace(stack: NativeStack) -> None:
    status, body = request(f"{stack.gateway_url}/orders", method="POST", body=ORDER,
                           headers={"traceparent": "00-not-a-trace-01"})  # fmt: skip
    assert status == 201, body
    order_log = stack.log_file("order")
    line = wait_for(
        lambda: next((json.loads(row) for row in whole_lines(order_log)
                      if body["order_id"] in row and "finished call" in row), None),
        lambda found: found is not None, 10, "order's access line",
    )  # fmt: skip
    assert line is not None and re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])


@pytest.mark.parametrize(
    ("method", "path", "payload", "headers", "status", "mentions"),
    [
        ("POST", "/orders", b"{not json", {}, 400, "invalid JSON"),
        ("POST", "/orders", b'{"items": [{"sku": "sku-mug"}]}', {}, 400, "user"),
        ("POST", "/orders", b'{"user": "ada", "items": [{"sku": "sku-nope"}]}', {}, 400, "sku-nope"),
        ("POST", "/orders", b'{"user": "ada", "items": [{"sku": "sku-mug", "quantity": 0}]}', {},
         400, "quantity"),
        # hostile sizes and ranges: 400 naming the field, never a 500 or a transport failure
        ("POST", "/orders", b'{"user": "ada", "items": [{"sku": "sku-mug", "quantity": 2147483648}]}',
         {}, 400, "items[0].quantity: must be 1..1000"),
        ("POST", "/orders", json.dumps({"user": "ada", "items": [{"sku": "s" * 20_000}]}).encode(), {},
         400, "items[0].sku: at most 64 characters"),
        ("POST", "/orders", json.dumps({"user": "u" * 60_000, "items": [{"sku": "sku-mug"}]}).encode(),
         {}, 400, "user: at most 64"),
        ("POST", "/orders", json.dumps({"user": "ada", "items": [{"sku": "sku-mug"}] * 21}).encode(),
         {}, 400, "items: at most 20"),
        ("GET", "/stock/" + "s" * 5000, None, {}, 400, "sku: at most 64"),
        ("GET", "/stock/sku-mug", None, {"x-user": "u" * 5000}, 400, "x-user: at most 64"),
        ("GET", "/orders/ord_missing", None, {}, 404, "not found"),
        ("GET", "/stock/sku-nope", None, {}, 404, "sku-nope"),
        ("GET", "/nowhere", None, {}, 404, "no route"),
        ("GET", "/orders", None, {}, 405, "POST"),
        ("POST", "/orders", json.dumps(ORDER).encode(), {"x-request-timeout-ms": "soon"}, 400,
         "x-request-timeout-ms"),
        ("POST", "/orders", json.dumps(ORDER).encode(), {"x-request-timeout-ms": "1"}, 504, ""),
    ],
)  # fmt: skip
def test_gateway_answers_bad_requests_with_json_errors(
    stack: NativeStack, method: str, path: str, payload: bytes | None, headers: dict[str, str],
    status: int, mentions: str,
) -> None:  # fmt: skip
    got, body = request(f"{stack.gateway_url}{path}", method=method, raw=payload, headers=headers)
    assert got == status, body
    assert mentions in body["error"]
    # The trace id to quote when reporting it (the gateway's span; traceresponse carries it too).
    assert len(body["trace_id"]) == 32 and int(body["trace_id"], 16) != 0


def test_an_order_refused_at_payment_releases_its_reservation(stack: NativeStack) -> None:
    """Issue 17: the units a refused order reserved go back, on the inventory instance that held
    them (order's compensation: a traced Release, and a log line on both sides)."""
    user = f"books-{secrets.token_hex(4)}"
    dear = {"user": user, "items": [{"sku": "sku-grinder", "quantity": 40}] * 2}  # > payment's limit
    status, body = request(f"{stack.gateway_url}/orders", method="POST", body=dear)
    assert status == 400, body
    assert "amount_cents" in body["error"]

    order_log = stack.log_file("order")

    def logged(**fields: Any) -> dict[str, Any] | None:
        rows = (json.loads(row) for row in whole_lines(order_log))
        return next((row for row in rows if fields.items() <= row.items()), None)

    access = wait_for(partial(logged, user=user, event="finished call"),
                      lambda found: found is not None, 10, "order's access line")  # fmt: skip
    assert access is not None
    order_id = access["order_id"]
    line = wait_for(partial(logged, order_id=order_id, event="reservation released"),
                    lambda found: found is not None, 10, "order's release line")  # fmt: skip
    assert line is not None and line["holder_answered"] is True
    assert line["instance_id"] in ("inventory-1", "inventory-2") and line["units"] == 80
    inventories = [stack.log_file("inventory-1"), stack.log_file("inventory-2")]
    wait_for(lambda: any(order_id in row and "reservation released" in row
                         for log in inventories for row in log.read_text().splitlines()),
             bool, 10, "inventory's release line")  # fmt: skip


def test_prometheus_has_every_services_rpc_metrics_with_exemplars(stack: NativeStack) -> None:
    base = stack.prometheus_url

    def series(query: str) -> list[Any]:
        return list(prometheus(base, "/api/v1/query", query=query)["result"])

    for job in GRPC_JOBS:
        wait_for(partial(series, f'grpc_server_handled_total{{job="{job}"}}'), bool, 30,
                 f"{job}'s server metrics")  # fmt: skip
    for job in ("order", "gateway"):
        wait_for(partial(series, f'grpc_client_handled_total{{job="{job}"}}'), bool, 30,
                 f"{job}'s client metrics")  # fmt: skip
    wait_for(lambda: series('http_server_request_duration_seconds_count{job="gateway"}'), bool, 30,
             "the gateway's HTTP metrics")  # fmt: skip
    assert len(series('up{job="inventory"} == 1')) == 2  # both instances scraped

    def exemplars(metric: str, job: str) -> list[Any]:
        now = time.time()
        return list(prometheus(base, "/api/v1/query_exemplars", query=f'{metric}{{job="{job}"}}',
                               start=str(now - 600), end=str(now)))  # fmt: skip

    for job in GRPC_JOBS:
        found = wait_for(partial(exemplars, "grpc_server_handling_seconds_bucket", job),
                         bool, 30, f"{job}'s exemplars")  # fmt: skip
        trace_id = found[0]["exemplars"][0]["labels"]["trace_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    wait_for(lambda: exemplars("http_server_request_duration_seconds_bucket", "gateway"), bool, 30,
             "the gateway's exemplars")  # fmt: skip


def test_discovery_and_governance_metrics_reach_prometheus(stack: NativeStack) -> None:
    def value(query: str) -> float:
        result = prometheus(stack.prometheus_url, "/api/v1/query", query=query)["result"]
        return float(result[0]["value"][1]) if result else -1.0

    wait_for(lambda: value('max(discovery_instances{job="order",service="inventory"})'),
             lambda v: v == 2, 30, "order sees two inventory instances")  # fmt: skip
    # The load generator's scraper exceeds its per-user limit on inventory stock reads.
    wait_for(lambda: value('sum(governance_decisions_total{job="inventory",mechanism="rate_limit"})'),
             lambda v: v > 0, 30, "rate-limit rejections")  # fmt: skip


# -- faults, injected through etcd as the control panel does; this changes the stack: keep it last --


def metric_lines(url: str, name: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return [line for line in response.read().decode().splitlines() if line.startswith(name)]


def test_payment_failing_defers_charges_and_recommendation_failing_degrades(
    stack: NativeStack, otlp: OtlpReceiver
) -> None:
    etcd = EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,)))
    order_metrics = stack.metrics_url("order")
    try:
        etcd.put("/governance/payment/faults",
                 json.dumps({"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}}))  # fmt: skip

        def breaker_open() -> bool:
            # Every order is accepted, also while the breaker is still closed: each failed charge
            # is answered by the fallback and deferred (a regression here once failed 20 of 80).
            status, body = request(f"{stack.gateway_url}/orders", method="POST", body=ORDER)
            assert status == 201 and (body["payment_deferred"] or body["payment_id"]), (status, body)
            return any('Payment/Charge"' in line and line.endswith(" 2.0")
                       for line in metric_lines(order_metrics, "governance_breaker_state"))  # fmt: skip

        wait_for(breaker_open, bool, 30, "order's breaker on payment open")
        # Orders are still accepted, at once: order's breaker refuses the charge locally, which
        # is deferred (queued until payment recovers); payment is not called.
        status, body = request(f"{stack.gateway_url}/orders", method="POST", body=ORDER)
        assert status == 201, body
        assert body["payment_deferred"] is True
        assert body["payment_id"] == ""
        otlp.wait_for(lambda spans: any(
            s.service_name == "order" and "governance.deferred" in s.events
            for s in spans), timeout=10)  # fmt: skip

        etcd.delete("/governance/payment/faults")
        etcd.put("/governance/recommendation/faults",
                 json.dumps({"*": {"error_rate": 1.0, "error_code": "INTERNAL"}}))  # fmt: skip

        def degraded_order() -> Any:
            # Charged again (order's breaker on payment closed after the heal), suggestions degraded.
            status, body = request(f"{stack.gateway_url}/orders", method="POST", body=ORDER)
            degraded = status == 201 and body["recommendations_degraded"]
            return body if degraded and not body["payment_deferred"] else None

        body = wait_for(degraded_order, lambda b: b is not None, 30, "an order with the default list")
        assert body["recommendations"] == ["sku-mug", "sku-beans-1kg", "sku-filter-papers"]
        assert body["payment_id"].startswith("pay_")
    finally:
        etcd.delete("/governance/payment/faults")
        etcd.delete("/governance/recommendation/faults")
        etcd.close()
