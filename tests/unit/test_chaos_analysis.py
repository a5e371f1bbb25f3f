"""The pure figures of benchmarks/chaos.py: bins, recovery time, p99, counters and amplification."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from chaos_analysis import (
    HOPS,
    NO_ANSWER,
    SKIPPED,
    Hop,
    Record,
    amplification,
    bins,
    counter_sum,
    increase,
    merge_snapshots,
    p99,
    parse_metrics,
    recovery_seconds,
    service_of,
    summarize,
)


def steady(
    start: float, end: float, rate: float, status: int = 201, latency: float = 0.01
) -> list[Record]:
    """Requests sent every 1/rate s in [start, end)."""
    count = round((end - start) * rate)
    return [Record(start + i / rate, latency, status) for i in range(count)]


# -- p99 ----------------------------------------------------------------------------------------


def test_p99_nearest_rank() -> None:
    assert p99([]) is None
    assert p99([0.5]) == 0.5
    assert p99(float(v) for v in range(1, 101)) == 99.0  # ceil(0.99 * 100) = 99th value
    assert p99(float(v) for v in range(1, 201)) == 198.0
    assert p99([3.0, 1.0, 2.0]) == 3.0  # few values: the largest


# -- bins ---------------------------------------------------------------------------------------


def test_bins_count_by_send_time_and_take_p99_of_successes() -> None:
    records = [
        Record(-0.5, 0.010, 201),
        Record(0.0, 0.020, 201),
        Record(0.4, 2.000, 504),  # a failure's latency is not in the p99
        Record(0.9, 0.030, 201),
        Record(2.5, 0.100, 503),
        Record(3.0, 0.1, 201),  # at the end: left out
    ]
    result = bins(records, -1.0, 3.0)
    assert [b.start for b in result] == [-1.0, 0.0, 1.0, 2.0]
    assert [b.sent for b in result] == [1, 3, 0, 1]
    assert [b.ok for b in result] == [1, 2, 0, 0]
    assert result[1].success_rate == pytest.approx(2 / 3)
    assert result[1].p99_ok_ms == pytest.approx(30.0)
    assert result[2].success_rate is None and result[2].p99_ok_ms is None
    assert result[3].success_rate == 0.0 and result[3].p99_ok_ms is None


def test_bins_reject_a_zero_width() -> None:
    with pytest.raises(ValueError, match="width"):
        bins([], 0.0, 1.0, width=0.0)


# -- recovery -----------------------------------------------------------------------------------


def test_recovery_is_zero_when_nothing_fails() -> None:
    records = steady(-10, 40, 10)
    assert recovery_seconds(records, fault_end=20.0, run_end=40.0) == 0.0


def test_recovery_is_the_first_window_of_95_percent_successes() -> None:
    records = steady(-10, 23, 10, status=503) + steady(23, 50, 10)  # fails until 3 s after the end
    # windows starting before 23.0 hold failures; at 10/s a 5 s window holds 50 requests, so
    # up to 2 failures (4%) are allowed: the window starting at 22.8 holds 2 failures, 48 successes
    t = recovery_seconds(records, fault_end=20.0, run_end=50.0)
    assert t == pytest.approx(2.8)


def test_recovery_is_none_when_no_good_window_ends_before_the_run_ends() -> None:
    records = steady(0, 20, 10) + steady(20, 28, 10, status=503) + steady(28, 30, 10)
    assert recovery_seconds(records, fault_end=20.0, run_end=30.0) is None  # [28, 33) not done
    assert recovery_seconds(steady(20, 30, 10, status=503), 20.0, 30.0) is None


def test_recovery_counts_skipped_and_unanswered_as_failures() -> None:
    records = [*steady(20, 21, 10, status=SKIPPED), *steady(21, 22, 10, status=NO_ANSWER)]
    records += steady(22, 40, 10)
    assert recovery_seconds(records, fault_end=20.0, run_end=40.0) == pytest.approx(1.8, abs=0.01)


def test_recovery_ignores_failures_during_the_fault() -> None:
    records = steady(0, 20, 10, status=503) + steady(20, 40, 10)
    assert recovery_seconds(records, fault_end=20.0, run_end=40.0) == 0.0


# -- Prometheus text ----------------------------------------------------------------------------


def line(name: str, value: float, **labels: str) -> str:
    """One sample line of the Prometheus text format."""
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" + f" {value}\n"


HTTP = "http_server_request_duration_seconds"
CLIENT = "grpc_client_started_total"
SERVER = "grpc_server_started_total"
ORDERS = {"http_request_method": "POST", "http_route": "/orders"}
ORDER_SVC = {"grpc_type": "unary", "grpc_service": "demoshop.v1.Order"}
INVENTORY = {"grpc_type": "unary", "grpc_service": "demoshop.v1.Inventory"}
PAYMENT = {"grpc_type": "unary", "grpc_service": "demoshop.v1.Payment"}

GATEWAY_BEFORE = (
    f"# HELP {HTTP} Duration of HTTP server requests.\n# TYPE {HTTP} histogram\n"
    + line(f"{HTTP}_bucket", 100.0, **ORDERS, http_response_status_code="201", le="+Inf")
    + line(f"{HTTP}_count", 100.0, **ORDERS, http_response_status_code="201")
    + line(f"{HTTP}_sum", 3.0, **ORDERS, http_response_status_code="201")
    + line(f"{HTTP}_count", 7.0, http_request_method="GET", http_route="/healthz",
           http_response_status_code="200")
    + f"# HELP {CLIENT} RPCs started on the client.\n# TYPE {CLIENT} counter\n"
    + line(CLIENT, 100.0, **ORDER_SVC, grpc_method="PlaceOrder")
)  # fmt: skip
GATEWAY_AFTER = (
    f"# TYPE {HTTP} histogram\n"
    + line(f"{HTTP}_count", 150.0, **ORDERS, http_response_status_code="201")
    + line(f"{HTTP}_count", 50.0, **ORDERS, http_response_status_code="503")
    + f"# TYPE {CLIENT} counter\n"
    + line(CLIENT, 200.0, **ORDER_SVC, grpc_method="PlaceOrder")
    + line(CLIENT, 4.0, **INVENTORY, grpc_method="GetStock")
)
ORDER_BEFORE = (
    f"# TYPE {SERVER} counter\n"
    + line(SERVER, 100.0, **ORDER_SVC, grpc_method="PlaceOrder")
    + line(SERVER, 30.0, **ORDER_SVC, grpc_method="GetOrder")
    + f"# TYPE {CLIENT} counter\n"
    + line(CLIENT, 100.0, **INVENTORY, grpc_method="Reserve")
    + line(CLIENT, 100.0, **PAYMENT, grpc_method="Charge")
)
ORDER_AFTER = (
    f"# TYPE {SERVER} counter\n"
    + line(SERVER, 200.0, **ORDER_SVC, grpc_method="PlaceOrder")
    + line(SERVER, 90.0, **ORDER_SVC, grpc_method="GetOrder")
    + f"# TYPE {CLIENT} counter\n"
    + line(CLIENT, 200.0, **INVENTORY, grpc_method="Reserve")
    + line(CLIENT, 400.0, **PAYMENT, grpc_method="Charge")
)


def test_parse_metrics_keeps_sample_names_and_labels() -> None:
    samples = parse_metrics(GATEWAY_BEFORE)
    names = {name for name, _, _ in samples}
    assert "grpc_client_started_total" in names
    assert "http_server_request_duration_seconds_count" in names
    assert counter_sum(samples, "grpc_client_started_total", {"grpc_method": "PlaceOrder"}) == 100.0
    orders = {"http_request_method": "POST", "http_route": "/orders"}
    assert counter_sum(samples, "http_server_request_duration_seconds_count", orders) == 100.0
    assert counter_sum(samples, "http_server_request_duration_seconds_count") == 107.0
    assert counter_sum(samples, "no_such_metric") == 0.0


def test_merge_sums_over_instances() -> None:
    one = parse_metrics(ORDER_BEFORE)
    two = parse_metrics(ORDER_AFTER)
    merged = merge_snapshots([one, two])
    assert counter_sum(merged, "grpc_server_started_total", {"grpc_method": "PlaceOrder"}) == 300.0


def test_increase_handles_a_counter_reset() -> None:
    assert increase(10.0, 25.0) == 15.0
    assert increase(10.0, 4.0) == 4.0  # restarted: counted 4 since


def test_amplification_counts_calls_that_reached_the_callee_instance_by_instance() -> None:
    payment = "# TYPE grpc_server_started_total counter\n"
    before = {
        "gateway": parse_metrics(GATEWAY_BEFORE),
        "order": parse_metrics(ORDER_BEFORE),
        "inventory-1": parse_metrics(payment + line(SERVER, 50.0, **INVENTORY, grpc_method="Reserve")),
        "inventory-2": parse_metrics(payment + line(SERVER, 50.0, **INVENTORY, grpc_method="Reserve")),
        "payment-1": parse_metrics(payment + line(SERVER, 40.0, **PAYMENT, grpc_method="Charge")),
        "payment-2": parse_metrics(payment + line(SERVER, 60.0, **PAYMENT, grpc_method="Charge")),
    }
    after = {
        "gateway": parse_metrics(GATEWAY_AFTER),
        "order": parse_metrics(ORDER_AFTER),
        # inventory-1 was killed: unknown, adds nothing; inventory-2 took every Reserve
        "inventory-2": parse_metrics(payment + line(SERVER, 150.0, **INVENTORY, grpc_method="Reserve")),
        # payment-1 restarted (counter reset: 30 since), payment-2 took 80 more
        "payment-1": parse_metrics(payment + line(SERVER, 30.0, **PAYMENT, grpc_method="Charge")),
        "payment-2": parse_metrics(payment + line(SERVER, 140.0, **PAYMENT, grpc_method="Charge")),
    }
    assert service_of("inventory-2") == "inventory"
    assert service_of("payment") == "payment"
    assert amplification(before, after) == {
        "gateway->order": 1.0,  # 100 PlaceOrder calls reached order for 100 POST /orders
        "order->inventory": 1.0,
        "order->payment": 1.1,  # 110 Charge calls reached payment for 100 orders: 10 retries
    }
    # The gateway's requests given directly (what was sent), not from its lagging histogram.
    assert amplification(before, after, received={"gateway": 80})["gateway->order"] == 1.25


def test_amplification_is_none_without_upstream_requests() -> None:
    snapshot = {"order": parse_metrics(ORDER_BEFORE)}
    hop = Hop("order->payment", "order", "payment", {"grpc_method": "Charge"},
              ("grpc_server_started_total", {}))  # fmt: skip
    assert amplification(snapshot, snapshot, [hop]) == {"order->payment": None}
    assert amplification({}, {}, HOPS) == {hop.name: None for hop in HOPS}


# -- summary ------------------------------------------------------------------------------------


def test_summarize() -> None:
    records = [
        *steady(-5, 0, 10, latency=0.01),
        *steady(0, 10, 10, status=503, latency=0.002),
        *steady(10, 20, 10, latency=0.5),
        Record(3.0, 1.5, 201, degraded=True),
        *steady(20, 22, 10, status=NO_ANSWER, latency=3.0),
        *steady(22, 40, 10, latency=0.02),
    ]
    figures = summarize(records, fault=20.0, run_end=40.0, hops={"a": 1.0, "b": 2.5, "c": None})
    assert figures["sent_during"] == 201
    assert figures["failed_during"] == 100
    assert figures["degraded_during"] == 1
    assert figures["failed_after"] == 20
    assert figures["failed_before"] == 0
    assert figures["recovery_s"] == pytest.approx(1.8, abs=0.01)
    assert figures["p99_ok_during_ms"] == 500.0
    assert figures["p99_ok_ms"] == 500.0
    assert figures["statuses_during"] == {"201": 101, "503": 100}
    assert figures["amplification"] == 2.5
    assert figures["amplification_hops"] == {"a": 1.0, "b": 2.5, "c": None}
    assert summarize([], 20.0, 40.0)["amplification"] is None
