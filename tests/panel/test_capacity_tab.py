"""The Dynamic thresholds tab's *Capacity test*, run headless by Streamlit's AppTest against a real
etcd, a real service (which applies the limit) and the load generator's real watcher, with the
same Prometheus stand-in as the CLI's test (tests/panel/test_capacity_cli.py): it answers from the
rate the generator is actually running at, for a service of capacity 40 calls/s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
import streamlit as st
from fake_prometheus import fake_prometheus
from helpers import make_config
from panel_app import run, sign_in, texts
from panel_app import start as start_panel
from streamlit.testing.v1 import AppTest

import telemetry
import telemetry.panel
from telemetry.discovery.etcd import EtcdClient
from telemetry.load.live import LOAD_SETTINGS_KEY, LiveLoad
from telemetry.load.schedule import LoadPlan
from telemetry.load.settings import LoadSettings
from telemetry.panel.capacity_tab import JOB
from telemetry.testing.etcd_server import EtcdServer

CAPACITY = 40.0


@pytest.fixture(scope="module")
def gateway(etcd: EtcdServer) -> Iterator[telemetry.Telemetry]:
    """The service measured: real live rules, so an applied limit is confirmed by it."""
    tel = telemetry.Telemetry(
        make_config("gateway"), governance={}, etcd=etcd.endpoint, instance_id="gateway-1"
    )
    tel.register("127.0.0.1:50050")
    assert tel.live_rules is not None and tel.live_rules.wait_ready(10)
    yield tel
    tel.shutdown()


@pytest.fixture
def plan(client: EtcdClient, gateway: telemetry.Telemetry) -> Iterator[LoadPlan]:
    plan = LoadPlan(LoadSettings(rate=5.0))
    live = LiveLoad(client, plan).start()
    assert live.wait_ready(5)
    yield plan
    live.stop()
    for prefix in ("/loadgen/", "/governance/", "/governance-audit/", "/governance-panel/"):
        client.delete_prefix(prefix)
    st.cache_resource.clear()


@pytest.fixture
def prometheus(plan: LoadPlan) -> Iterator[str]:
    """Answers like Prometheus for a service of capacity 40/s fed by the generator's rate."""
    with fake_prometheus(plan.mix_rate, CAPACITY) as url:
        yield url


def start(monkeypatch: pytest.MonkeyPatch, etcd: str, prometheus: str, *, signed_in: bool) -> AppTest:
    app = start_panel(monkeypatch, etcd, prometheus=prometheus)
    if signed_in:
        sign_in(app)
    return run(app.selectbox(key="service").set_value("gateway"))


def chart_series(chart: Any) -> set[str]:
    """The names of a chart's series (its data sets' ``series`` column)."""
    names: set[str] = set()
    for dataset in chart.proto.datasets:
        frame = pa.ipc.open_stream(dataset.data.data).read_pandas()
        if "series" in frame.columns:
            names.update(frame["series"])
    return names


def fill(app: AppTest, **fields: float) -> AppTest:
    values = {"start": 10.0, "ceiling": 80.0, "steps": 8.0, "hold": 1.0, "headroom": 0.8} | fields
    for name, value in values.items():
        app.number_input(key=f"cap_{name}").set_value(value)
    return run(app.button(key="submit_capacity").click())


def test_signed_out_the_capacity_test_is_read_only(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient, prometheus: str
) -> None:
    app = start(monkeypatch, etcd.endpoint, prometheus, signed_in=False)
    assert app.button(key="submit_capacity").disabled
    assert any("sign in (sidebar) to run a capacity test" in t for t in texts(app.info))
    assert client.get(LOAD_SETTINGS_KEY) is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"steps": 2.0}, "capacity.steps"),
        ({"steps": 7.5}, "capacity.steps"),
        ({"hold": 0.5}, "capacity.hold"),
        ({"ceiling": 5.0}, "capacity.ceiling"),
        ({"headroom": 1.5}, "capacity.headroom"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
    etcd: EtcdServer,
    client: EtcdClient,
    prometheus: str,
    fields: dict[str, float],
    named: str,
) -> None:
    app = fill(start(monkeypatch, etcd.endpoint, prometheus, signed_in=True), **fields)
    assert any(named in t for t in texts(app.error)), texts(app.error)
    assert JOB not in app.session_state
    assert client.get(LOAD_SETTINGS_KEY) is None
    assert not client.get_prefix("/governance-audit/loadgen/").items


def test_the_capacity_test_runs_plots_a_b_c_recommends_and_applies(
    monkeypatch: pytest.MonkeyPatch,
    etcd: EtcdServer,
    client: EtcdClient,
    plan: LoadPlan,
    prometheus: str,
) -> None:
    app = fill(start(monkeypatch, etcd.endpoint, prometheus, signed_in=True))
    assert JOB in app.session_state
    assert app.button(key="submit_capacity").disabled  # one test at a time
    job = app.session_state[JOB]
    assert job.wait(60), "the capacity test did not end within its bound"
    run(app)

    steps = next(d.value for d in app.dataframe if "point" in d.value.columns)
    marked = dict(zip(steps["point"], steps["offered calls/s"], strict=True))
    assert marked["A"] == 30 and marked["BC"] == 40, marked
    assert steps["goodput calls/s"].max() == CAPACITY
    series = {name for chart in app.get("vega_lite_chart") for name in chart_series(chart)}
    for name in ("A: best performance", "B: edge of collapse", "C: highest goodput", "p99 (ms)",
                 "goodput (calls/s)"):  # fmt: skip
        assert name in series, series
    assert any("recommending" in t or "24" in t for t in texts(app.success)), texts(app.success)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Capacity test (A, 80%)"] == "24 calls/s", metrics
    assert metrics["Manual estimate (CPU per call)"] == "50 calls/s", metrics
    assert "Knee of the live data" in metrics

    # the load settings in force before are back; every step was audited as the operator
    assert client.get(LOAD_SETTINGS_KEY) is None and plan.settings.rate == 5.0
    audit = [json.loads(kv.value) for kv in client.get_prefix("/governance-audit/loadgen/").items]
    assert len(audit) == len(steps) + 1 and {a["actor"] for a in audit} == {"ada"}

    run(app.button(key="apply_capacity").click())
    kv = client.get("/governance/gateway/cluster")
    # with its burst: 24/s within the low-load p99 (10 ms) is under one call, so one
    assert kv is not None and json.loads(kv.value) == {"*": {"limit": 24, "burst": 1}}
    [entry] = client.get_prefix("/governance-audit/gateway/").items
    record = json.loads(entry.value)
    assert (record["actor"], record["key"]) == ("ada", "cluster")

    # The cap in flight: C (40/s) within the low-load p99 (10 ms) is under one call, so one.
    assert metrics["Cap in flight per instance"] == "1", metrics
    run(app.button(key="apply_capacity_cap").click())
    kv = client.get("/governance/gateway/server")
    assert kv is not None
    assert json.loads(kv.value)["methods"]["*"]["bulkhead"] == {"max_concurrent": 1, "shared": "*"}
    applied = f"1/1 instances of gateway applied revision {kv.mod_revision}"  # the service did
    assert any(applied in t for t in texts(app.success)), texts(app.success)
