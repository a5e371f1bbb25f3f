"""The live view: overview of every service, one service's instances, charts, breakers and limits,
the rollout of recent changes, and the audit trail. Live parts are Streamlit fragments that
refresh themselves every ``PANEL_REFRESH_SECONDS`` without rerunning the page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from telemetry.discovery.instance import Instance
from telemetry.panel import figures as fmt
from telemetry.panel.control_plane import Change, InstanceRollout, describe
from telemetry.panel.live import Breaker
from telemetry.panel.parts import guarded, live
from telemetry.panel.prometheus import Series

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["audit", "overview", "service"]


# -- overview ------------------------------------------------------------------------------------


def overview(panel: Panel, *, etcd_ok: bool, prometheus_ok: bool) -> None:
    st.caption(
        "Every service: instances and rule status from etcd, live figures from Prometheus (last minute)."
    )
    live(panel, "overview")(lambda: _overview_table(panel, etcd_ok, prometheus_ok))
    if prometheus_ok:
        live(panel, "alerts")(lambda: _alerts(panel))


def _alerts(panel: Panel) -> None:
    """The alerts Prometheus holds (firing first), each with a button that opens its service."""
    with guarded("Alerts"):
        alerts = sorted(panel.live.prometheus.alerts(), key=lambda a: (a.state != "firing", a.name))
        st.subheader(f"Alerts ({sum(a.state == 'firing' for a in alerts)} firing)")
        if not alerts:
            st.caption("No alert is firing or pending (Prometheus's rules; Alertmanager sends them on).")
            return
        label = panel.settings.service_label
        rows = [{"alert": a.name, "state": a.state, "service": a.labels.get(label, ""),
                 "slo": a.labels.get("slo", ""), "severity": a.labels.get("severity", ""),
                 "since": a.active_at[:19].replace("T", " "), "summary": a.summary}
                for a in alerts]  # fmt: skip
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="alerts_table")
        services = sorted({row["service"] for row in rows if row["service"]})
        for column, name in zip(st.columns(max(len(services), 1)), services, strict=False):
            if column.button(f"Open {name}", key=f"alert_open_{name}", on_click=_open_service,
                             args=(name,)):  # fmt: skip
                st.rerun(scope="app")  # a fragment's button: redraw the page, the service chosen


def _open_service(name: str) -> None:
    # A callback runs before the sidebar's selectbox is drawn again: it may set its value.
    st.session_state["service"] = name


def _overview_table(panel: Panel, etcd_ok: bool, prometheus_ok: bool) -> None:
    if not etcd_ok:
        st.info("etcd is unreachable: no service list.")
        return
    with guarded("Overview"):
        services = panel.plane.services()
        if not services:
            st.info("No services registered in etcd yet.")
            return
        registry = panel.plane.registry()
        rollouts = panel.plane.rollouts(registry=registry)
        figures: dict[str, dict[str, float]] = {}
        if prometheus_ok:
            with guarded("Live figures"):
                figures = panel.live.overview(services)
        rows = []
        for name in services:
            f = figures.get(name, {})
            rollout = rollouts.get(name)
            rows.append(
                {
                    "service": name,
                    "instances": len(registry.get(name, [])),
                    "rules": _rules_summary(rollout.instances if rollout else ()),
                    "calls/s": fmt.rate(f.get("rps")),
                    "errors %": fmt.share(f.get("error_ratio")),
                    "p99 ms": fmt.ms(f.get("p99")),
                    "CPU (cores)": _cores(f.get("cpu")),
                    "open breakers": f.get("open_breakers", 0.0) if f else None,
                    "refused/s": fmt.rate(f.get("rejected", 0.0)) if f else None,
                }
            )
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="overview_table")
        if figures:
            history = panel.live.overview_history(services, panel.settings.window_minutes)
            label = panel.settings.service_label
            left, right = st.columns(2)
            with left:
                _chart("Calls per second", {s.labels.get(label, "?"): s for s in history["rps"]})
            with right:
                _chart(
                    "p99 latency (ms)",
                    {s.labels.get(label, "?"): s for s in history["p99"]},
                    scale=1000.0,
                )


def _rules_summary(statuses: Sequence[InstanceRollout]) -> str:
    reporting = [i for i in statuses if i.state != "no status"]
    if not reporting:
        return "no live rules"
    refused = [i for i in reporting if i.state == "rejected"]
    revisions = sorted({i.revision for i in reporting})
    text = f"{len(reporting) - len(refused)}/{len(statuses)} applied, rev {revisions[-1]}"
    return text + (f", {len(refused)} refused" if refused else "")


# -- one service ---------------------------------------------------------------------------------


def service(panel: Panel, name: str | None, *, etcd_ok: bool, prometheus_ok: bool) -> None:
    if name is None:
        st.info("Choose a service in the sidebar.")
        return
    st.subheader(name)
    live(panel, "rollouts")(lambda: rollouts(panel))
    live(panel, "instances")(lambda: _instances(panel, name, etcd_ok, prometheus_ok))
    if not prometheus_ok:
        st.warning("Prometheus is unreachable: no charts, breaker states or limits.")
        return
    live(panel, "charts")(lambda: _charts(panel, name))
    live(panel, "governance")(lambda: _governance(panel, name))


def rollouts(panel: Panel) -> None:
    """Where the changes made in this session stand on every instance."""
    changes: list[Change] = st.session_state.get("changes", [])
    if not changes:
        return
    st.markdown("**Recent changes from this session**")
    rows: list[dict[str, Any]] = []
    with guarded("Rollout"):
        for change in changes[-8:][::-1]:
            rollout = panel.plane.rollout(change.service, change.revision)
            name = f"{change.service}/{change.key} @ rev {change.revision}"
            rows.extend(
                {
                    "change": name,
                    "instance": inst.instance_id,
                    "state": inst.state,
                    "instance revision": inst.revision,
                    "applied at": _time(inst.applied_at),
                    "error": inst.error or "",
                }
                for inst in rollout.instances
            )
            if not rollout.instances:
                rows.append({"change": name, "instance": "-", "state": "no instances"})
            for inst in rollout.refused:
                st.error(f"{inst.instance_id} refused {change.service}/{change.key}: {inst.error}")
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="rollout_table")


def _instances(panel: Panel, name: str, etcd_ok: bool, prometheus_ok: bool) -> None:
    st.markdown("**Instances**")
    if not etcd_ok:
        st.info("etcd is unreachable: instances and rule status unknown.")
        return
    with guarded("Instances"):
        instances = panel.plane.instances(name)
        status = {i.instance_id: i for i in panel.plane.rollout(name, 0, instances).instances}
        metrics: dict[str, dict[str, float]] = {}
        if prometheus_ok:
            with guarded("Per-instance metrics"):
                metrics = panel.live.per_instance(name)
        rows = []
        for inst in instances:
            m = metrics.get(_metrics_instance(inst, metrics), {})
            s = status.get(inst.id)
            rows.append(
                {
                    "instance": inst.id,
                    "address": inst.address,
                    "zone": inst.zone,
                    "version": inst.version,
                    "weight": inst.weight,
                    "rules": s.state if s else "no status",
                    "rules revision": s.revision if s else None,
                    "CPU (cores)": _cores(m.get("cpu")),
                    "pressure": _cores(m.get("pressure")),
                    "adaptive limit": fmt.rate(m.get("adaptive_limit")),
                    "in flight": fmt.rate(m.get("in_flight")),
                    "calls/s": fmt.rate(m.get("rps")),
                    "shedding": bool(m.get("shedding")) if "shedding" in m else None,
                    "metadata": ", ".join(f"{k}={v}" for k, v in sorted(inst.metadata.items())),
                }
            )
        if not rows:
            st.info(f"No instance of {name} is registered.")
        else:
            st.dataframe(pd.DataFrame(rows), hide_index=True, key="instances_table")
        for s in status.values():
            if s.state == "rejected":
                st.error(f"{s.instance_id} refused the rules at revision {s.revision}: {s.error}")


def _metrics_instance(instance: Instance, metrics: dict[str, Any]) -> str:
    """The Prometheus ``instance`` of a registration: its ``metrics`` metadata, else its host."""
    if instance.metadata.get("metrics") in metrics:
        return instance.metadata["metrics"]
    host = instance.address.rpartition(":")[0]
    same_host = [key for key in metrics if key.rpartition(":")[0] == host]
    return same_host[0] if len(same_host) == 1 else ""


def _charts(panel: Panel, name: str) -> None:
    minutes = panel.settings.window_minutes
    with guarded("Charts"):
        history = panel.live.history(name, minutes)
        cpu = panel.live.cpu_history(name, minutes)
        left, right = st.columns(2)
        with left:
            _chart("Calls per second", {"calls/s": history["rps"]})
            _chart("Error ratio", {"errors": history["error_ratio"]})
        with right:
            _chart("Latency (ms)", {"p50": history["p50"], "p99": history["p99"]}, scale=1000.0)
            _chart("CPU per instance (cores)", {s.labels.get("instance", "?"): s for s in cpu})


def _chart(title: str, series: dict[str, Series], scale: float = 1.0) -> None:
    st.markdown(f"**{title}**")
    frame = pd.DataFrame(
        {
            label: pd.Series(
                [v * scale for _, v in s.points],
                index=[dt.datetime.fromtimestamp(t) for t, _ in s.points],
            )
            for label, s in series.items()
            if s.points
        }
    )
    if frame.empty:
        st.caption(f"No data yet for {title.lower()}.")
        return
    st.altair_chart(
        fmt.line_chart({c: frame[c].dropna() for c in frame.columns}, y=title), width="stretch"
    )
    st.caption(f"{len(frame)} points, last {_time(frame.index[-1].timestamp())}")


def _governance(panel: Panel, name: str) -> None:
    with guarded("Breakers and limits"):
        left, right = st.columns(2)
        with left:
            st.markdown("**Circuit breakers (calls this service makes)**")
            breakers = panel.live.breakers(name)
            if breakers:
                st.dataframe(
                    pd.DataFrame([_breaker_row(b) for b in breakers]),
                    hide_index=True,
                    key="breakers_table",
                )
            else:
                st.caption("No breaker has seen a call yet.")
        with right:
            st.markdown("**Refused calls per second**")
            rejections = panel.live.rejections(name)
            if rejections:
                st.dataframe(
                    pd.DataFrame([{**s.labels, "per second": fmt.rate(s.value)} for s in rejections]),
                    hide_index=True,
                    key="rejections_table",
                )
            else:
                st.caption("Nothing refused in the last minute.")


def _breaker_row(breaker: Breaker) -> dict[str, str]:
    return {
        "instance": breaker.instance,
        "target": breaker.target,
        "method": breaker.method,
        "state": breaker.state,
    }


# -- audit ---------------------------------------------------------------------------------------


def audit(panel: Panel, name: str | None, *, etcd_ok: bool) -> None:
    if not etcd_ok:
        st.info("etcd is unreachable: the audit trail is stored there.")
        return
    every = st.toggle("All services", value=name is None, key="audit_all")
    with guarded("Audit trail"):
        entries = panel.plane.audit(None if every else name, limit=200)
        if not entries:
            st.caption("No change recorded yet.")
            return
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "when": _time(c.at),
                        "who": c.actor,
                        "service": c.service,
                        "key": c.key,
                        "what": describe(c),
                        "why": c.reason,
                        "revision": c.revision,
                    }
                    for c in entries
                ]
            ),
            hide_index=True,
            key="audit_table",
        )


# -- formatting ----------------------------------------------------------------------------------


def _cores(value: float | None) -> float | None:
    """A fraction of a core (or a pressure, 0 to 1) with two decimals: 0.2345 -> 0.23."""
    return None if value is None else round(value, 2)


def _time(at: float | None) -> str:
    if at is None:
        return ""
    return dt.datetime.fromtimestamp(at).strftime("%H:%M:%S")
