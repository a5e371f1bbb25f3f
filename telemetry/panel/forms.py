"""The Control tab: one form per mechanism, each turned into a transform of one control key
(:mod:`controls`) and written with :func:`changes.write`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import pandas as pd
import streamlit as st

from telemetry.control.live_rules import FAULTS, KEYS, SAMPLING
from telemetry.governance.rules import GRPC_CODE_NAMES, Algorithm
from telemetry.panel import controls
from telemetry.panel.changes import write
from telemetry.panel.parts import guarded

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["control"]

_BREAKER_MODES = {"automatic": "", "force open": "open", "force closed": "closed"}


def control(
    panel: Panel, service: str | None, actor: str | None, *, etcd_ok: bool, prometheus_ok: bool
) -> None:
    if service is None:
        st.info("Choose a service in the sidebar.")
        return
    if not etcd_ok:
        st.warning("etcd is unreachable: the rules cannot be read or changed now.")
        return
    if actor is None:
        st.info("Read-only: sign in (sidebar) to change anything. The forms show what is in force.")
    st.text_input("Reason for changes (recorded in the audit trail)", key="reason")
    with guarded("Controls"):
        in_force = panel.plane.in_force(service)
        known = _known(panel, service, in_force, prometheus_ok)
        tabs = st.tabs(
            [
                "Master switch",
                "Rate limit",
                "Circuit breakers",
                "Degradation",
                "Adaptive limiter",
                "Faults",
                "Trace sampling",
                "Raw JSON",
            ]
        )
        parts = (_master, _rate_limit, _breakers, _degradation, _adaptive, _faults, _sampling, _raw)
        for tab, part in zip(tabs, parts, strict=True):
            with tab, guarded(part.__name__.strip("_").replace("_", " ")):
                part(panel, service, actor, in_force, known)


@dataclass(frozen=True)
class Known:
    """Method patterns worth offering in the forms, and whether Prometheus can be asked."""

    server: list[str]
    """Patterns of the calls the service takes: what its rules name and its metrics show."""
    client: list[str]
    """Patterns of the calls it makes."""
    methods: list[str]
    """``pkg.Service/Method`` it serves."""
    prometheus_ok: bool


def _known(panel: Panel, service: str, in_force: dict[str, Any], prometheus_ok: bool) -> Known:
    server = set(controls.methods_of(in_force["server"]))
    client = set(controls.methods_of(in_force["client"]))
    served: list[str] = []
    if prometheus_ok:
        with guarded("Methods from Prometheus"):
            served = panel.live.methods(service)
            server |= {f"{m.split('/')[0]}/*" for m in served} | set(served)
            client |= {f"{g}/*" for g in panel.live.called_by(service)}
    return Known(
        server=["*", *sorted(server - {"*"})],
        client=["*", *sorted(client - {"*"})],
        methods=sorted(set(served) | {p for p in server if not p.endswith("*")}),
        prometheus_ok=prometheus_ok,
    )


def _master(panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], _: Known) -> None:
    st.caption("Turns every governance mechanism of the service off (or back on), keeping the rules.")
    with st.form("form_enabled"):
        enabled = st.checkbox("Governance on", value=bool(in_force["enabled"]), key="enabled_on")
        if st.form_submit_button("Apply", key="submit_enabled", disabled=actor is None):
            write(panel, actor, service, "enabled", controls.set_enabled(enabled))


def _rate_limit(
    panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], known: Known
) -> None:
    st.caption(
        "Server-side limit of the calls this service takes; `*` is one limiter for all of "
        "its methods, a pattern of its own gets its own limiter."
    )
    pattern = st.selectbox("Methods", known.server, key="rate_pattern")
    current = controls.governing_rule(in_force["server"], pattern).get("rate_limit") or {}
    algorithms = list(get_args(Algorithm))
    with st.form("form_rate"):
        on = st.checkbox("Rate limit on", value=bool(current), key="rate_on")
        algorithm = st.selectbox(
            "Algorithm",
            algorithms,
            key="rate_algorithm",
            index=algorithms.index(current.get("algorithm", "token_bucket")),
        )
        limit = st.number_input(
            "Limit (calls per window; in flight for concurrency)",
            value=float(current.get("limit", 100.0)),
            key="rate_limit",
        )
        window = st.number_input(
            "Window (s)", value=float(current.get("window", 1.0)), key="rate_window"
        )
        burst = st.number_input(
            "Burst (0: none)", value=int(current.get("burst") or 0), step=1, key="rate_burst"
        )
        per_key = st.text_input(
            "Per key ('', 'peer', 'metadata:<name>', 'baggage:<name>')",
            value=str(current.get("key", "")),
            key="rate_key",
        )
        if st.form_submit_button("Apply", key="submit_rate", disabled=actor is None):
            rule = None
            if on:
                rule = {
                    **current,
                    "algorithm": algorithm,
                    "limit": limit,
                    "window": window,
                    "burst": int(burst) or None,
                    "key": per_key.strip(),
                }
            write(panel, actor, service, "server", controls.set_rate_limit(pattern, rule))


def _breakers(
    panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], known: Known
) -> None:
    st.markdown(f"**Breakers on the calls {service} makes**")
    pattern = st.selectbox("Calls to", known.client, key="breaker_pattern")
    current = controls.governing_rule(in_force["client"], pattern).get("breaker") or {}
    modes = list(_BREAKER_MODES)
    mode_now = next((m for m, f in _BREAKER_MODES.items() if f == current.get("force", "")), "automatic")
    with st.form("form_breaker"):
        mode = st.radio("Mode", modes, index=modes.index(mode_now), key="breaker_mode", horizontal=True)
        failure_rate = st.number_input(
            "Open at failure rate (0-1)",
            value=float(current.get("failure_rate_threshold", 0.5)),
            key="breaker_failure_rate",
        )
        minimum_calls = st.number_input(
            "Minimum calls in the window",
            step=1,
            value=int(current.get("minimum_calls", 10)),
            key="breaker_minimum_calls",
        )
        open_wait = st.number_input(
            "Open wait (s)", value=float(current.get("open_wait", 5.0)), key="breaker_open_wait"
        )
        if st.form_submit_button("Apply", key="submit_breaker", disabled=actor is None):
            thresholds = {
                "failure_rate_threshold": failure_rate,
                "minimum_calls": int(minimum_calls),
                "open_wait": open_wait,
            }
            write(
                panel,
                actor,
                service,
                "client",
                controls.set_breaker(pattern, force=_BREAKER_MODES[mode], thresholds=thresholds),
            )
    _breakers_toward(panel, service, actor, known.prometheus_ok)


def _breakers_toward(panel: Panel, service: str, actor: str | None, prometheus_ok: bool) -> None:
    """Flip the breakers every caller has toward ``service`` (e.g. cut off a failing payment)."""
    st.markdown(f"**Breakers toward {service}, in every service that calls it**")
    grpc_services = _served(panel, service, prometheus_ok)
    if not grpc_services:
        st.caption(f"No gRPC service of {service} is known yet (from its registrations or metrics).")
        return
    callers = _callers(panel, grpc_services, prometheus_ok)
    st.caption(
        f"{service} serves {', '.join(grpc_services)}; called by {', '.join(callers) or 'nobody yet'}."
    )
    if not callers:
        return
    with st.form("form_toward"):
        mode = st.radio("Mode", list(_BREAKER_MODES), key="toward_mode", horizontal=True)
        if st.form_submit_button(f"Apply to {len(callers)} caller(s)", key="submit_toward",
                                 disabled=actor is None):  # fmt: skip
            for caller in callers:
                for grpc_service in grpc_services:
                    write(
                        panel,
                        actor,
                        caller,
                        "client",
                        controls.set_breaker(f"{grpc_service}/*", force=_BREAKER_MODES[mode]),
                    )


def _served(panel: Panel, service: str, prometheus_ok: bool) -> list[str]:
    """gRPC services ``service`` serves: from its registrations' metadata, else its metrics."""
    names: set[str] = set()
    for inst in panel.plane.instances(service):
        names |= {n for n in inst.metadata.get("grpc_services", "").split(",") if n}
    if not names and prometheus_ok:
        with guarded("gRPC services from Prometheus"):
            names = set(panel.live.grpc_services(service))
    return sorted(names)


def _callers(panel: Panel, grpc_services: list[str], prometheus_ok: bool) -> list[str]:
    """Services that call ``grpc_services``: seen in client metrics, or named in client rules."""
    callers: set[str] = set()
    if prometheus_ok:
        with guarded("Callers from Prometheus"):
            callers |= set(panel.live.callers(grpc_services))
    for other in panel.plane.services():
        client = panel.plane.in_force(other)["client"]
        if any(p.split("/")[0] in grpc_services for p in controls.methods_of(client)):
            callers.add(other)
    return sorted(callers)


def _degradation(
    panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], known: Known
) -> None:
    st.caption(
        "Priority shedding: as CPU pressure passes each level, low-priority work is turned "
        "off first (writes before reads). Methods chosen here get priority `low`."
    )
    shedding = in_force["shedding"] if isinstance(in_force["shedding"], dict) else {}
    levels = list(shedding.get("levels", [0.7, 0.8, 0.9]))
    low = [p for p, r in controls.methods_of(in_force["server"]).items()
           if isinstance(r, dict) and r.get("priority") == "low"]  # fmt: skip
    with st.form("form_shedding"):
        on = st.checkbox(
            "Degradation (priority shedding) on", value=bool(shedding.get("enabled")), key="shed_on"
        )
        columns = st.columns(3)
        new_levels = [
            col.number_input(f"Level {i + 1} (CPU)", value=float(levels[i]), key=f"shed_level_{i + 1}")
            for i, col in enumerate(columns)
        ]
        options = sorted(set(known.methods) | set(low))
        shed = st.multiselect("Methods to shed first", options, default=low, key="shed_methods")
        if st.form_submit_button("Apply", key="submit_shedding", disabled=actor is None):
            write(
                panel, actor, service, "shedding", controls.set_shedding(enabled=on, levels=new_levels)
            )
            write(panel, actor, service, "server", controls.set_shed_methods(shed, options))


def _adaptive(panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], _: Known) -> None:
    st.caption(
        "Sheds calls when CPU (fraction of one core) or event-loop lag is over its threshold "
        "and in-flight calls exceed what recent throughput and latency can serve."
    )
    rule = in_force["adaptive"] if isinstance(in_force["adaptive"], dict) else {}
    with st.form("form_adaptive"):
        on = st.checkbox("Adaptive limiter on", value=bool(rule.get("enabled")), key="adaptive_on")
        cpu = st.number_input(
            "CPU threshold", value=float(rule.get("cpu_threshold", 0.8)), key="adaptive_cpu"
        )
        cpu_max = st.number_input(
            "CPU at which the limit is smallest",
            value=float(rule.get("cpu_max", 2.0)),
            key="adaptive_cpu_max",
        )
        tolerance = st.number_input(
            "Latency tolerance (x the minimum latency)",
            value=float(rule.get("tolerance", 1.5)),
            key="adaptive_tolerance",
        )
        lag = st.number_input(
            "Event-loop lag threshold (s)",
            value=float(rule.get("loop_lag_threshold", 0.05)),
            key="adaptive_loop_lag",
        )
        max_limit = st.number_input(
            "Largest limit (calls in flight)",
            step=1,
            value=int(rule.get("max_limit", 1000)),
            key="adaptive_max_limit",
        )
        if st.form_submit_button("Apply", key="submit_adaptive", disabled=actor is None):
            settings = {
                "enabled": on,
                "cpu_threshold": cpu,
                "cpu_max": cpu_max,
                "tolerance": tolerance,
                "loop_lag_threshold": lag,
                "max_limit": int(max_limit),
            }
            write(panel, actor, service, "adaptive", controls.set_adaptive(settings))


def _faults(
    panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], known: Known
) -> None:
    st.caption("Inject latency, errors or CPU burn into the calls this service takes (drills, demos).")
    faults = in_force[FAULTS] if isinstance(in_force[FAULTS], dict) else {}
    if faults:
        st.dataframe(
            pd.DataFrame([{"methods": p, **f} for p, f in faults.items()]),
            hide_index=True,
            key="faults_table",
        )
    pattern = st.selectbox("Methods", sorted(set(known.server) | set(faults)), key="fault_pattern")
    current = faults.get(pattern) or {}
    codes = list(GRPC_CODE_NAMES)
    with st.form("form_fault"):
        latency = st.number_input(
            "Latency (ms)", value=float(current.get("latency_ms", 0.0)), key="fault_latency"
        )
        error_rate = st.number_input(
            "Error rate (0-1)", value=float(current.get("error_rate", 0.0)), key="fault_error_rate"
        )
        code = st.selectbox(
            "Error code",
            codes,
            key="fault_code",
            index=codes.index(current.get("error_code", "UNAVAILABLE")),
        )
        burn = st.number_input(
            "CPU burn per call (ms)", value=float(current.get("cpu_burn_ms", 0.0)), key="fault_cpu"
        )
        inject = st.form_submit_button("Apply", key="submit_fault", disabled=actor is None)
        clear = st.form_submit_button(
            "Clear every fault", key="submit_fault_clear", disabled=actor is None
        )
        if inject:
            fault = {
                "latency_ms": latency,
                "error_rate": error_rate,
                "error_code": code,
                "cpu_burn_ms": burn,
            }
            write(panel, actor, service, FAULTS, controls.set_fault(pattern, fault))
        elif clear:
            write(panel, actor, service, FAULTS, lambda _: None)


def _sampling(panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], _: Known) -> None:
    st.caption("Share of new traces recorded (parent-based: a trace is kept whole or not at all).")
    current = in_force[SAMPLING] if isinstance(in_force[SAMPLING], dict) else {}
    modes = ["as configured", "ratio", "traces per second"]
    now = "ratio" if "ratio" in current else "traces per second" if current else "as configured"
    with st.form("form_sampling"):
        mode = st.radio("Sampling", modes, index=modes.index(now), key="sampling_mode", horizontal=True)
        value = st.number_input(
            "Ratio (0-1) or traces per second",
            value=float(current.get("ratio", current.get("traces_per_second", 1.0))),
            key="sampling_value",
        )
        if st.form_submit_button("Apply", key="submit_sampling", disabled=actor is None):
            transform = (
                controls.set_sampling(ratio=value)
                if mode == "ratio"
                else controls.set_sampling(traces_per_second=value)
                if mode == "traces per second"
                else controls.set_sampling()
            )
            write(panel, actor, service, SAMPLING, transform)


def _raw(panel: Panel, service: str, actor: str | None, in_force: dict[str, Any], _: Known) -> None:
    st.caption(
        "Any control key as JSON, validated like the forms. Empty deletes the key (the "
        "service falls back to the rules below it)."
    )
    key = st.selectbox("Key", list(KEYS), key="raw_key")
    current = panel.plane.read(service, key)[0]
    with st.form("form_raw"):
        text = st.text_area(
            "Value",
            value="" if current is None else json.dumps(current, indent=2),
            height=240,
            key=f"raw_value_{key}",
        )
        if st.form_submit_button("Write", key="submit_raw", disabled=actor is None):
            if not text.strip():
                write(panel, actor, service, key, lambda _: None)
                return
            try:
                value = json.loads(text)
            except ValueError as exc:
                st.error(f"Not written: {key}: not valid JSON: {exc}")
                return
            write(panel, actor, service, key, lambda _: value)
