"""The panel's page, run headless by Streamlit's AppTest against a real etcd and real services.

Prometheus is pointed at a closed port here (the live view against a real Prometheus, and a real
browser, are the native stack's tests): the controls, sign-in and audit trail need only etcd.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import streamlit as st
from helpers import make_config
from panel_app import APP, run, sign_in, start, texts
from streamlit.testing.v1 import AppTest

import telemetry
import telemetry.panel
from telemetry.discovery.etcd import EtcdClient
from telemetry.testing._poll import poll
from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.ports import free_port

ORDER_RULES: dict[str, Any] = {
    "client": {
        "methods": {
            "*": {"breaker": {"minimum_calls": 5}},
            "demoshop.v1.Payment/*": {
                "breaker": {"minimum_calls": 5},
                "bulkhead": {"max_concurrent": 8},
            },
        }
    },
    "server": {"methods": {"*": {"rate_limit": {"algorithm": "token_bucket", "limit": 500}}}},
}


@pytest.fixture(scope="module")
def order(etcd: EtcdServer) -> Iterator[telemetry.Telemetry]:
    """A real service with live rules: it applies what the panel writes and reports back."""
    tel = telemetry.Telemetry(
        make_config("order"), governance=ORDER_RULES, etcd=etcd.endpoint, instance_id="order-1"
    )
    tel.register("127.0.0.1:50051")
    assert tel.live_rules is not None and tel.live_rules.wait_ready(10)
    yield tel
    tel.shutdown()


@pytest.fixture(scope="module")
def payment(etcd: EtcdServer) -> Iterator[telemetry.Telemetry]:
    tel = telemetry.Telemetry(
        make_config("payment"), governance={}, etcd=etcd.endpoint, instance_id="payment-1"
    )
    tel.register("127.0.0.1:50053", metadata={"grpc_services": "demoshop.v1.Payment"})
    assert tel.live_rules is not None and tel.live_rules.wait_ready(10)
    yield tel
    tel.shutdown()


@pytest.fixture(autouse=True)
def clean(
    client: EtcdClient, order: telemetry.Telemetry, payment: telemetry.Telemetry
) -> Iterator[None]:
    """Every test starts from the rules in code and an empty audit trail."""
    yield
    for prefix in ("/governance/", "/governance-audit/", "/governance-panel/"):
        client.delete_prefix(prefix)
    st.cache_resource.clear()  # closes the panel's etcd client and follower


def client_rules(tel: telemetry.Telemetry) -> Any:
    """The client rules in force on an instance, by pattern."""
    assert tel.governance is not None
    return tel.governance.rules.to_dict()["client"]["methods"]


def table(app: AppTest, column: str) -> Any:
    """The first table on the page with ``column``."""
    return next(d.value for d in app.dataframe if column in d.value.columns)


def stored(client: EtcdClient, key: str) -> Any:
    kv = client.get(key)
    return None if kv is None else json.loads(kv.value)


# -- sign-in -------------------------------------------------------------------------------------


def test_without_a_password_the_panel_is_read_only(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient
) -> None:
    app = start(monkeypatch, etcd.endpoint, password=None)
    assert any("Read-only" in t for t in texts(app.info))
    submits = [b for b in app.button if b.key and b.key.startswith("submit_")]
    assert len(submits) >= 8  # every control's submit button is on the page, and disabled
    assert all(b.disabled for b in submits)
    assert client.get("/governance/order/client") is None


def test_a_wrong_password_unlocks_nothing(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint), password="not-the-password")
    assert "Wrong password." in texts(app.error)
    assert app.button(key="submit_breaker").disabled


def test_the_operator_must_give_a_name(monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint), name="  ")
    assert any("Enter your name" in t for t in texts(app.error))
    assert app.button(key="submit_breaker").disabled


# -- controls ------------------------------------------------------------------------------------


def test_force_open_writes_the_validated_rule_and_every_instance_applies_it(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient, order: telemetry.Telemetry
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    assert app.selectbox(key="service").value == "order"
    app.text_input(key="reason").input("drill")
    run(app.selectbox(key="breaker_pattern").set_value("demoshop.v1.Payment/*"))
    app.radio(key="breaker_mode").set_value("force open")
    run(app.button(key="submit_breaker").click())

    section = stored(client, "/governance/order/client")
    payment_rule = section["methods"]["demoshop.v1.Payment/*"]
    assert payment_rule["breaker"]["force"] == "open"
    assert payment_rule["bulkhead"]["max_concurrent"] == 8, "the flip keeps the rules beside it"
    assert section["methods"]["*"]["breaker"]["force"] == "", "other patterns untouched"
    assert any("1/1 instances of order applied" in t for t in texts(app.success))
    assert client_rules(order)["demoshop.v1.Payment/*"]["breaker"]["force"] == "open"

    [entry] = client.get_prefix("/governance-audit/order/").items
    record = json.loads(entry.value)
    assert (record["actor"], record["reason"], record["key"]) == ("ada", "drill", "client")
    assert record["before"]["methods"]["demoshop.v1.Payment/*"]["breaker"].get("force", "") == ""
    assert record["after"]["methods"]["demoshop.v1.Payment/*"]["breaker"]["force"] == "open"

    # Back to automatic: the audit trail shows both changes, newest first.
    app.radio(key="breaker_mode").set_value("automatic")
    run(app.button(key="submit_breaker").click())
    poll(
        lambda: client_rules(order)["demoshop.v1.Payment/*"]["breaker"]["force"],
        lambda force: force == "",
        10,
        "the instance back on automatic",
    )
    audit = table(app, "who")
    assert list(audit["who"]) == ["ada", "ada"]
    assert "open" in audit["what"].iloc[1] and '"open" -> ""' in audit["what"].iloc[0]


def test_a_bad_value_shows_the_field_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    app.number_input(key="rate_limit").set_value(0.0)
    run(app.button(key="submit_rate").click())
    [error] = [t for t in texts(app.error) if t.startswith("Not written")]
    assert "rules.server.methods['*'].rate_limit.limit: must be > 0" in error
    assert client.get("/governance/order/server") is None
    assert client.get_prefix("/governance-audit/").items == []


def test_breakers_toward_a_service_flip_in_every_caller(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient, order: telemetry.Telemetry
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    run(app.selectbox(key="service").set_value("payment"))
    assert any("called by order" in t for t in texts(app.caption))
    app.radio(key="toward_mode").set_value("force open")
    run(app.button(key="submit_toward").click())
    section = stored(client, "/governance/order/client")
    assert section["methods"]["demoshop.v1.Payment/*"]["breaker"]["force"] == "open"
    assert any("1/1 instances of order applied" in t for t in texts(app.success))


def test_rate_limit_faults_sampling_adaptive_and_shedding_controls(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient, order: telemetry.Telemetry
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    app.number_input(key="rate_limit").set_value(50.0)
    app.selectbox(key="rate_algorithm").set_value("sliding_window")
    run(app.button(key="submit_rate").click())
    limit = stored(client, "/governance/order/server")["methods"]["*"]["rate_limit"]
    assert (limit["algorithm"], limit["limit"]) == ("sliding_window", 50.0)

    app.number_input(key="fault_error_rate").set_value(0.25)
    run(app.button(key="submit_fault").click())
    assert stored(client, "/governance/order/faults")["*"]["error_rate"] == 0.25
    run(app.button(key="submit_fault_clear").click())
    assert client.get("/governance/order/faults") is None

    app.radio(key="sampling_mode").set_value("ratio")
    app.number_input(key="sampling_value").set_value(0.1)
    run(app.button(key="submit_sampling").click())
    assert stored(client, "/governance/order/sampling") == {"ratio": 0.1}

    app.checkbox(key="adaptive_on").check()
    app.number_input(key="adaptive_cpu").set_value(0.7)
    run(app.button(key="submit_adaptive").click())
    adaptive = stored(client, "/governance/order/adaptive")
    assert (adaptive["enabled"], adaptive["cpu_threshold"]) == (True, 0.7)

    app.checkbox(key="shed_on").check()
    run(app.button(key="submit_shedding").click())
    assert stored(client, "/governance/order/shedding")["enabled"] is True

    app.checkbox(key="enabled_on").uncheck()
    run(app.button(key="submit_enabled").click())
    assert stored(client, "/governance/order/enabled") is False
    poll(lambda: order.governance is not None and order.governance.rules.enabled, lambda on: not on,
         10, "governance off on the instance")  # fmt: skip
    status = json.loads(client.get("/governance-status/order/order-1").value)  # type: ignore[union-attr]
    assert status["state"] == "applied", status
    assert len(client.get_prefix("/governance-audit/order/").items) == 7


def test_raw_json_is_validated_before_it_is_written(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    run(app.selectbox(key="raw_key").set_value("adaptive"))
    app.text_area(key="raw_value_adaptive").input("{not json")
    run(app.button(key="submit_raw").click())
    assert any("adaptive: not valid JSON" in t for t in texts(app.error))
    app.text_area(key="raw_value_adaptive").input('{"enabled": true, "cpu_treshold": 0.5}')
    run(app.button(key="submit_raw").click())
    assert any("rules.adaptive.cpu_treshold: unknown field" in t for t in texts(app.error))
    assert client.get("/governance/order/adaptive") is None


def test_automatic_limit_settings_are_validated(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    app.checkbox(key="auto_on").check()
    app.number_input(key="auto_min").set_value(50.0)
    app.number_input(key="auto_max").set_value(10.0)
    run(app.button(key="submit_autolimit").click())
    assert any("autolimit.maximum: must be >= minimum" in t for t in texts(app.error))
    assert client.get("/governance-panel/order/autolimit") is None
    app.number_input(key="auto_max").set_value(400.0)
    run(app.button(key="submit_autolimit").click())
    assert stored(client, "/governance-panel/order/autolimit") == {
        "enabled": True, "pattern": "*", "minimum": 50.0, "maximum": 400.0,
    }  # fmt: skip


# -- backends down -------------------------------------------------------------------------------


def test_with_etcd_down_the_page_says_so_and_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    app = start(monkeypatch, f"127.0.0.1:{free_port()}")
    assert any("is unreachable" in t for t in texts(app.sidebar.error))
    assert any("etcd is unreachable" in t for t in texts(app.info) + texts(app.warning))


def test_with_prometheus_down_the_page_says_so_and_controls_work(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer
) -> None:
    app = start(monkeypatch, etcd.endpoint)
    assert any("Prometheus at" in t and "unreachable" in t for t in texts(app.sidebar.warning))
    assert any("Prometheus is unreachable" in t for t in texts(app.warning))
    assert table(app, "instances")["service"].tolist() == ["order", "payment"]


def test_etcd_going_down_while_open_is_a_message_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EtcdServer() as lonely:
        app = sign_in(start(monkeypatch, lonely.endpoint))
        lonely.stop()
        run(app)
        assert any("is unreachable" in t for t in texts(app.sidebar.error))


def test_invalid_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANEL_REFRESH_SECONDS", "often")
    app = run(AppTest.from_file(str(APP), default_timeout=30))
    assert texts(app.error) == [
        "The panel's settings are invalid: PANEL_REFRESH_SECONDS: not a number: 'often'"
    ]
