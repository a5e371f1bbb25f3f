"""The overview's alerts, run headless by Streamlit's AppTest against a real etcd with a registered
service and a Prometheus stand-in holding one firing and one pending alert (the real Prometheus's
alerts, read by the same client, are checked on the native stack: tests/stack/test_alerting_stack.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_prometheus import fake_prometheus
from helpers import make_config
from panel_app import run, start

import telemetry
from telemetry.testing.etcd_server import EtcdServer

FIRING = {
    "labels": {"alertname": "SloBudgetBurnPage1h", "job": "payment", "slo": "availability",
               "severity": "critical"},
    "annotations": {"summary": "payment: availability error budget burning 1000x (1h and 5m windows)"},
    "state": "firing", "activeAt": "2026-12-05T02:00:00.123Z", "value": "1e+03",
}  # fmt: skip
PENDING = {
    "labels": {"alertname": "GrpcHighLatencyP99", "job": "order", "severity": "warning"},
    "annotations": {"summary": "x" * 5000},  # hostile: cut, not shown whole
    "state": "pending", "activeAt": "2026-12-05T02:01:00Z", "value": "0.7",
}  # fmt: skip


@pytest.fixture(scope="module")
def etcd() -> Iterator[str]:
    with EtcdServer() as server:
        tel = telemetry.Telemetry(make_config("payment"), etcd=server.endpoint, instance_id="p-1")
        tel.register("127.0.0.1:50053")
        yield server.endpoint
        tel.shutdown()


def test_firing_alerts_are_listed_and_open_their_service(
    monkeypatch: pytest.MonkeyPatch, etcd: str
) -> None:
    with fake_prometheus(lambda: 1.0, 10.0, alerts=[PENDING, FIRING, "junk"]) as url:  # type: ignore[list-item]
        app = start(monkeypatch, etcd, prometheus=url)
        [table] = [t for t in app.dataframe if "alert" in t.value.columns]
        rows: list[dict[Any, Any]] = table.value.to_dict("records")
        assert [(r["alert"], r["state"], r["service"]) for r in rows] == [
            ("SloBudgetBurnPage1h", "firing", "payment"), ("GrpcHighLatencyP99", "pending", "order"),
        ]  # fmt: skip
        assert rows[0]["slo"] == "availability" and rows[0]["since"] == "2026-12-05 02:00:00"
        assert len(rows[1]["summary"]) == 300
        assert any("1 firing" in str(h.value) for h in app.subheader)
        app = run(app.button(key="alert_open_payment").click())
        assert app.session_state["service"] == "payment"
