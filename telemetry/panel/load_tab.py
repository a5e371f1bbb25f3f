"""The Load tab: the load generator's live settings (rate, scenario mix, scraper rate, profile),
read back from etcd, edited in a form validated by the same model the load generator uses
(``telemetry.load.settings``), written through the audited control plane and confirmed by the load
generator's status (``/loadgen/status``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from telemetry.discovery.etcd import EtcdError
from telemetry.load.live import read_load_status
from telemetry.load.settings import SCENARIOS, LoadSettings, parse_load
from telemetry.panel import figures
from telemetry.panel.changes import write
from telemetry.panel.control_plane import LOAD, LOADGEN, Change, describe
from telemetry.panel.parts import guarded

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["load"]

_PROFILES = ["steady", "step", "ramp"]


def load(panel: Panel, actor: str | None, *, etcd_ok: bool) -> None:
    if not etcd_ok:
        st.warning("etcd is unreachable: the load settings cannot be read or changed now.")
        return
    st.caption(
        "What the load generator offers the shop, applied live (within a second, without a "
        "restart). Steady: the rate; step: from, then +step every hold seconds up to to; ramp: "
        "from to to linearly over the given seconds. Empty key: its YAML/environment settings."
    )
    if actor is None:
        st.info("Read-only: sign in (sidebar) to change the load.")
    with guarded("Load"):
        status = read_load_status(panel.plane.client)
        _status(status)
        written, _ = panel.plane.read(LOADGEN, LOAD)
        current = _current(status, written)
        _form(panel, actor, current)
        _recent(panel)


def _status(status: dict[str, Any] | None) -> None:
    if status is None:
        st.warning("No load generator reports a status: none is running (or it has no etcd).")
        return
    offered = status.get("offered_rate")
    shown = figures.rate(float(offered)) if isinstance(offered, int | float) else offered
    st.metric("Offered rate (mix, requests/s)", shown)
    if status.get("state") == "rejected":
        st.error(f"The load generator refused the settings in etcd: {status.get('error')}")
    else:
        source = "etcd" if status.get("state") == "applied" else "its configuration"
        st.caption(f"Settings in force from {source} (etcd revision {status.get('revision')}).")


def _current(status: dict[str, Any] | None, written: Any) -> LoadSettings:
    """What the form starts from: the settings in force, else those in etcd, else the defaults."""
    for candidate in ((status or {}).get("settings"), written):
        try:
            if candidate is not None:
                return parse_load(candidate)
        except ValueError:
            continue
    return LoadSettings()


def _form(panel: Panel, actor: str | None, current: LoadSettings) -> None:
    profile = current.profile
    st.text_input("Reason for the change (recorded in the audit trail)", key="load_reason")
    with st.form("form_load"):
        columns = st.columns(2)
        rate = columns[0].number_input(
            "Rate (requests/s, steady)", value=float(current.rate), key="load_rate"
        )
        scraper = columns[1].number_input(
            "Scraper rate (requests/s)", value=float(current.scraper_rate), key="load_scraper_rate"
        )
        weights = st.columns(len(SCENARIOS))
        mix = {
            name: col.number_input(name, value=float(current.mix.get(name, 0.0)), key=f"load_mix_{name}")
            for name, col in zip(SCENARIOS, weights, strict=True)
        }
        kind = st.radio("Profile", _PROFILES, index=_PROFILES.index(profile.kind),
                        key="load_profile", horizontal=True)  # fmt: skip
        cols = st.columns(5)
        numbers = {
            "from": cols[0].number_input("From (/s)", value=float(profile.start), key="load_from"),
            "to": cols[1].number_input("To (/s)", value=float(profile.end), key="load_to"),
            "step": cols[2].number_input(
                "Step (/s)", value=float(profile.step or 10.0), key="load_step"
            ),
            "hold_seconds": cols[3].number_input(
                "Hold (s)", value=float(profile.hold_seconds or 10.0), key="load_hold"
            ),
            "over_seconds": cols[4].number_input(
                "Over (s)", value=float(profile.over_seconds or 60.0), key="load_over"
            ),
        }
        if st.form_submit_button("Apply", key="submit_load", disabled=actor is None):
            fields = {"steady": (), "step": ("from", "to", "step", "hold_seconds"),
                      "ramp": ("from", "to", "over_seconds")}[kind]  # fmt: skip
            value = {
                "rate": rate,
                "scraper_rate": scraper,
                "mix": mix,
                "profile": {"kind": kind, **{name: numbers[name] for name in fields}},
            }
            write(panel, actor, LOADGEN, LOAD, lambda _: value, reason_key="load_reason",
                  confirm=_confirm)  # fmt: skip


def _confirm(panel: Panel, change: Change, timeout: float = 3.0) -> None:
    """Wait (bounded) for the load generator to report the change's revision."""
    started = time.monotonic()
    status: dict[str, Any] | None = None
    try:
        while time.monotonic() - started < timeout:
            status = read_load_status(panel.plane.client)
            if status is not None and int(status.get("revision") or 0) >= change.revision:
                break
            time.sleep(0.05)
    except EtcdError as exc:
        st.warning(f"Could not read the load generator's status: {exc}")
        return
    took = (time.monotonic() - started) * 1000
    if status is None:
        st.warning("No load generator is running: the settings wait in etcd for it.")
    elif int(status.get("revision") or 0) < change.revision:
        st.warning("The load generator has not reported the change yet.")
    elif status.get("state") == "rejected":
        st.error(f"The load generator refused it: {status.get('error')}")
    else:
        st.success(
            f"The load generator applied revision {change.revision}: offered rate "
            f"{figures.rate_text(status.get('offered_rate'), '/s')} (within {took:.0f} ms)."
        )


def _recent(panel: Panel) -> None:
    entries = panel.plane.audit(LOADGEN, limit=10)
    if entries:
        st.markdown("**Recent load changes**")
        rows = [{"who": c.actor, "what": describe(c), "why": c.reason, "revision": c.revision}
                for c in entries]  # fmt: skip
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="load_audit")
