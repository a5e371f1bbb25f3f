"""Alerts reach someone, end to end on a native stack of its own: payment failing makes the SLO
burn-rate page fire in Prometheus, Alertmanager posts it to the webhook receiver, and the seconds
from the fault to the notification are measured (``pytest -s`` prints them).

A stack of its own, not the session's: the fault leaves payment's error budget burnt for the
hour the alert's window spans, which would page through every later test of a shared stack.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.stack import NativeStack
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.panel.prometheus import Prometheus
from telemetry.testing import OtlpReceiver
from telemetry.testing._poll import poll

# The SLO rules are not changed for the test: `for: 1m` plus the 5s evaluations of the recording
# chain plus Alertmanager's 5s group_wait comes to about 80 s; the deadline leaves room for a
# loaded CI machine.
NOTIFICATION_DEADLINE = 150.0
PAGE = "SloBudgetBurnPage1h"


@pytest.fixture(scope="module")
def alerting_stack(
    otlp: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NativeStack]:
    workdir = tmp_path_factory.mktemp("alerting-stack")
    native = NativeStack(workdir, otlp_endpoint=otlp.grpc_endpoint, loadgen_rate=10.0,
                         standard_ports=False, panel=False)  # fmt: skip
    with native:
        yield native


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _firing_pages(notifications: list[dict[str, Any]], job: str) -> list[tuple[float, dict[str, Any]]]:
    """(received_at, alert) of every firing burn-rate page for ``job`` the receiver holds."""
    return [
        (entry["received_at"], alert)
        for entry in notifications
        for alert in entry["payload"]["alerts"]
        if alert["status"] == "firing"
        and alert["labels"].get("alertname") == PAGE
        and alert["labels"].get("job") == job
    ]


def test_the_native_stack_runs_alertmanager_and_prometheus_sends_to_it(
    alerting_stack: NativeStack,
) -> None:
    assert alerting_stack.with_alertmanager, "prometheus-alertmanager is missing (scripts/test.sh)"
    config = (Path(alerting_stack.workdir) / "prometheus.yml").read_text()
    assert alerting_stack.alertmanager_url.removeprefix("http://") in config

    def discovered() -> list[Any]:
        url = f"{alerting_stack.prometheus_url}/api/v1/alertmanagers"
        return list(_get(url)["data"]["activeAlertmanagers"])

    active = poll(discovered, bool, 30, "Prometheus's active Alertmanager", interval=0.25)
    assert active[0]["url"].startswith(alerting_stack.alertmanager_url)
    assert _get(f"{alerting_stack.alert_receiver_url}/alerts") == []


def test_payment_failing_pages_through_alertmanager_to_the_webhook(alerting_stack: NativeStack) -> None:
    etcd = EtcdClient(EtcdConfig(endpoints=(alerting_stack.etcd_endpoint,)))
    receiver = f"{alerting_stack.alert_receiver_url}/alerts"
    try:
        fault_at = time.time()
        etcd.put("/governance/payment/faults",
                 json.dumps({"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}}))  # fmt: skip
        pages = poll(lambda: _firing_pages(_get(receiver), "payment"), bool, NOTIFICATION_DEADLINE,
                     f"a firing {PAGE} for payment at the webhook receiver", interval=1.0)  # fmt: skip
        received_at, alert = pages[0]
        elapsed = received_at - fault_at
        print(f"\n{PAGE} (payment, {alert['labels']['slo']}) reached the webhook "
              f"{elapsed:.1f} s after the fault")  # fmt: skip
        assert alert["labels"]["severity"] == "critical"
        assert "payment" in alert["annotations"]["summary"]
        # The rule holds for 1m before firing: sooner would mean the test saw another alert.
        assert 60.0 <= elapsed <= NOTIFICATION_DEADLINE
        # The panel's overview lists what Prometheus holds: the same page, firing, for payment.
        held = Prometheus(alerting_stack.prometheus_url).alerts()
        assert any(a.name == PAGE and a.state == "firing" and a.labels.get("job") == "payment"
                   and "payment" in a.summary for a in held), held  # fmt: skip
    finally:
        etcd.delete("/governance/payment/faults")
        etcd.close()
