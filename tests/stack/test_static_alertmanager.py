"""Static checks of the alerting path: alertmanager/alertmanager.yml passes Alertmanager's own
checker (amtool, Debian's prometheus-alertmanager), routes to the webhook receiver compose runs,
Prometheus sends to the compose Alertmanager, and the native launcher's rewrites of both files
point at loopback and still pass the checkers; without Alertmanager the launcher goes on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import stack_components
from services.stack_components import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    NativeStack,
    alertmanager_config,
    prometheus_config,
)
from services.stack_supervision import StackError
from stack.compose_files import _services


@pytest.fixture(scope="module")
def amtool() -> str:
    """Alertmanager's checker; like promtool, the check must not be skipped when it is missing."""
    path = shutil.which("amtool")
    if path is None:
        pytest.fail("amtool not found on PATH: apt-get install prometheus-alertmanager "
                    "(scripts/test.sh does); this check must not be skipped")  # fmt: skip
    return path


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _check(amtool: str, path: Path) -> None:
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, f"amtool check-config {path}:\n{result.stdout}{result.stderr}"


def test_amtool_accepts_the_config(amtool: str) -> None:
    _check(amtool, ALERTMANAGER_CONFIG)


def test_every_alert_goes_to_the_compose_webhook_receiver_grouped_per_slo() -> None:
    config = _load(ALERTMANAGER_CONFIG)
    route = config["route"]
    assert route["group_by"] == ["alertname", "job", "slo"]
    assert "routes" not in route, "one receiver for every alert: nothing may route around it"
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://alert-receiver:9466/webhook"
    command = _services()["alert-receiver"]["command"]
    assert "--listen=0.0.0.0:9466" in command and "services.alert_receiver" in command


def test_prometheus_sends_alerts_to_the_compose_alertmanager_it_waits_for() -> None:
    (manager,) = _load(PROMETHEUS_CONFIG)["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    services = _services()
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]
    depends = services["prometheus"]["depends_on"]["alertmanager"]
    assert depends == {"condition": "service_healthy"}


def test_the_native_rewrites_point_at_loopback_and_pass_the_checkers(
    amtool: str, promtool: str, tmp_path: Path
) -> None:
    am = alertmanager_config(_load(ALERTMANAGER_CONFIG), "http://127.0.0.1:40001/webhook")
    assert am["receivers"][0]["webhook_configs"][0]["url"] == "http://127.0.0.1:40001/webhook"
    assert am["route"] == _load(ALERTMANAGER_CONFIG)["route"], "the route is the one compose runs"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am))
    _check(amtool, tmp_path / "alertmanager.yml")

    template = _load(PROMETHEUS_CONFIG)
    prom = prometheus_config(template, {"payment": ["127.0.0.1:40002"]}, None, "127.0.0.1:40003")
    assert prom["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["127.0.0.1:40003"]}]
    prom_file = tmp_path / "prometheus.yml"
    prom_file.write_text(yaml.safe_dump(prom))
    result = subprocess.run([promtool, "check", "config", "--syntax-only", str(prom_file)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerting" not in prometheus_config(template, {}, None, None), "no Alertmanager, no alerting"


def test_without_the_binary_the_stack_goes_on_without_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(command: str, package: str) -> str:
        raise StackError(f"{command} is missing: install the Debian package {package} (as root)")

    monkeypatch.setattr(stack_components, "ensure_binary", missing)
    stack = NativeStack(tmp_path, panel=False, standard_ports=False)
    stack._prepare_workdir()
    stack._start_alerting()  # no exception: the launcher carries on with Prometheus
    assert not stack.with_alertmanager and stack.process_names() == []
    assert "no Alertmanager" in (stack.logs / "stack.log").read_text()
