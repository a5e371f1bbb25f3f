"""The panel's Load control, run headless by Streamlit's AppTest against a real etcd and a real
load-generator watcher (the one ``services.loadgen`` runs): the form is validated by the settings
model (errors name the field), written with its audit entry, and confirmed by the generator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import streamlit as st
from panel_app import run, sign_in, start, texts

from telemetry.discovery.etcd import EtcdClient
from telemetry.load.live import LOAD_SETTINGS_KEY, LiveLoad
from telemetry.load.schedule import LoadPlan
from telemetry.load.settings import LoadSettings
from telemetry.testing.etcd_server import EtcdServer


@pytest.fixture
def plan(client: EtcdClient) -> Iterator[LoadPlan]:
    """The load generator's side: its plan (configured at 20/s) following /loadgen/settings."""
    plan = LoadPlan(LoadSettings(rate=20.0, scraper_rate=8.0))
    live = LiveLoad(client, plan).start()
    assert live.wait_ready(5)
    yield plan
    live.stop()
    for prefix in ("/loadgen/", "/governance-audit/"):
        client.delete_prefix(prefix)
    st.cache_resource.clear()


def test_the_load_form_shows_what_is_in_force_and_is_read_only_signed_out(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, plan: LoadPlan
) -> None:
    app = start(monkeypatch, etcd.endpoint, password=None)
    assert app.number_input(key="load_rate").value == 20.0
    assert app.number_input(key="load_scraper_rate").value == 8.0
    assert app.button(key="submit_load").disabled


def test_a_load_change_is_validated_written_audited_and_confirmed(
    monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, client: EtcdClient, plan: LoadPlan
) -> None:
    app = sign_in(start(monkeypatch, etcd.endpoint))
    # Invalid: refused naming the field, nothing written.
    app.number_input(key="load_rate").set_value(1e9)
    run(app.button(key="submit_load").click())
    assert any("load.rate" in t for t in texts(app.error)), texts(app.error)
    assert client.get(LOAD_SETTINGS_KEY) is None and plan.settings.rate == 20.0

    app.text_input(key="load_reason").input("capacity drill")
    app.number_input(key="load_rate").set_value(60.0)
    app.radio(key="load_profile").set_value("step")
    app.number_input(key="load_from").set_value(10.0)
    app.number_input(key="load_to").set_value(50.0)
    run(app.button(key="submit_load").click())

    stored = json.loads(client.get(LOAD_SETTINGS_KEY).value)  # type: ignore[union-attr]
    assert stored["rate"] == 60.0 and stored["profile"] == {
        "kind": "step", "from": 10.0, "to": 50.0, "step": 10.0, "hold_seconds": 10.0}  # fmt: skip
    assert any("The load generator applied revision" in t for t in texts(app.success)), texts(
        app.success
    )
    assert plan.settings.rate == 60.0 and plan.settings.profile.kind == "step"
    assert plan.mix_rate() == 10.0  # the step profile starts at "from"

    [entry] = client.get_prefix("/governance-audit/loadgen/").items
    record = json.loads(entry.value)
    assert (record["actor"], record["reason"], record["key"]) == ("ada", "capacity drill", "load")
    assert record["before"] is None and record["after"]["rate"] == 60.0
    audit = next(d.value for d in app.dataframe if "who" in d.value.columns)
    assert list(audit["who"]) == ["ada"] and "rate" in audit["what"].iloc[0]
