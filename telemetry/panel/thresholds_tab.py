"""The Dynamic thresholds tab: the rate limit recommended from the live load curve, applied by
hand or followed automatically (:mod:`follower`) within bounds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import altair as alt
import pandas as pd
import streamlit as st

from telemetry.control.live_rules import CLUSTER
from telemetry.panel import capacity_tab, figures
from telemetry.panel.autolimit import parse_autolimit
from telemetry.panel.changes import apply_cluster_limit, write
from telemetry.panel.control_plane import AUTOLIMIT
from telemetry.panel.parts import guarded
from telemetry.panel.thresholds import LoadPoint, recommend_limit

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["thresholds"]


def thresholds(
    panel: Panel, service: str | None, actor: str | None, *, etcd_ok: bool, prometheus_ok: bool
) -> None:
    if service is None:
        st.info("Choose a service in the sidebar.")
        return
    st.caption(
        "The throughput at which p99 latency starts to rise, from the last "
        f"{panel.settings.window_minutes} minutes of live metrics: the rate limit belongs "
        "a little below it."
    )
    knee: float | None = None
    if not prometheus_ok:
        st.warning("Prometheus is unreachable: no evidence to recommend from.")
    else:
        knee = _recommendation(panel, service, actor, etcd_ok)
    capacity_tab.capacity(panel, service, actor, ready=etcd_ok and prometheus_ok, knee=knee)
    if not etcd_ok:
        return
    with guarded("Automatic limit"):
        setting = parse_autolimit(panel.plane.read(service, AUTOLIMIT)[0])
        cluster = panel.plane.read(service, CLUSTER)[0]
        st.write(f"Cluster-wide limits in force: `{json.dumps(cluster) if cluster else 'none'}`")
        modes = panel.plane.rollout(service, 0).cluster_modes()
        if cluster and modes:
            st.caption(f"Cluster limits counted in: {modes}")
        with st.form("form_autolimit"):
            st.markdown("**Follow the recommendation automatically**")
            on = st.checkbox("On", value=setting.enabled, key="auto_on")
            pattern = st.text_input("Methods", value=setting.pattern, key="auto_pattern")
            low = st.number_input("Never below (calls/s)", value=setting.minimum, key="auto_min")
            high = st.number_input("Never above (calls/s)", value=setting.maximum, key="auto_max")
            if st.form_submit_button("Apply", key="submit_autolimit", disabled=actor is None):
                value = {"enabled": on, "pattern": pattern, "minimum": low, "maximum": high}
                write(panel, actor, service, AUTOLIMIT, lambda _: value)
        last = panel.follower.last.get(service)
        if last is not None:
            st.caption(f"Follower, last pass: {last.recommendation.reason}")


def _recommendation(panel: Panel, service: str, actor: str | None, etcd_ok: bool) -> float | None:
    """The knee's recommendation (shown, with its *Apply*); its limit, for the capacity test."""
    with guarded("Recommendation"):
        points = panel.live.load_curve(service, panel.settings.window_minutes)
        rec = recommend_limit(points)
        if points:
            st.altair_chart(_scatter(points), width="stretch", key="knee_chart")
        (st.success if rec.limit is not None else st.info)(rec.reason)
        if rec.limit is not None:
            st.metric("Recommended limit (calls/s, whole service)", f"{rec.limit:g}")
            if etcd_ok:
                apply_cluster_limit(panel, actor, service, rec.limit, key="apply_recommendation")
        return rec.limit
    return None


def _scatter(points: list[LoadPoint]) -> Any:
    frame = pd.DataFrame(
        {
            "calls/s": [figures.rate(p.throughput) for p in points],
            "p99 ms": [figures.ms(p.p99) for p in points],
            "series": "p99 against throughput (live)",
        }
    )
    return (
        alt.Chart(frame)
        .mark_circle(size=40)
        .encode(
            x=alt.X("calls/s:Q", title="throughput (calls/s)"),
            y=alt.Y("p99 ms:Q", title="p99 (ms)"),
            color=alt.Color("series:N", legend=figures.legend()),
        )
        .properties(height=260)
    )
