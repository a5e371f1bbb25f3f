"""The panel's page: sidebar (connections, sign-in, service), then the tabs of :mod:`views`,
:mod:`forms`, :mod:`load_tab` and :mod:`thresholds_tab`. ``app.py`` is the script Streamlit runs; it
only calls :func:`main`.

Every part that talks to etcd or Prometheus is guarded: an unreachable backend becomes a message in
that part, never an exception on the page, and the other parts keep working.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable

import streamlit as st

from telemetry.config import ConfigError
from telemetry.discovery.etcd import EtcdError
from telemetry.panel import forms, load_tab, thresholds_tab, views
from telemetry.panel.backends import Panel
from telemetry.panel.clients import client_address
from telemetry.panel.settings import PanelSettings
from telemetry.panel.signin import SignInGuard, SignInPolicy, Verdict

__all__ = ["Panel", "main"]

sign_in_clock: Callable[[], float] = time.monotonic
"""The sign-in guard's clock, read when the guard is built (tests put a fake one here)."""


@st.cache_resource(show_spinner=False, on_release=Panel.close)
def _panel(settings_key: str, _settings: PanelSettings) -> Panel:
    """Built once per distinct settings (``settings_key``) in the server process."""
    return Panel.open(_settings)


@st.cache_resource(show_spinner=False)
def _sign_in_guard(policy_key: str, _policy: SignInPolicy) -> SignInGuard:
    """One per process and policy: every session's attempts count together."""
    return SignInGuard(_policy, clock=sign_in_clock)


_STYLE = """<style>
section[data-testid="stSidebar"] { min-width: 330px; }
section[data-testid="stSidebar"] * { overflow-wrap: anywhere; }
</style>"""
"""The sidebar wide enough for the connection messages, and long addresses wrapped, not clipped."""


def _settings_key(settings: PanelSettings) -> str:
    return json.dumps(
        [
            settings.etcd.endpoints,
            settings.etcd.username,
            settings.prometheus_url,
            settings.grafana_url,
            settings.service_label,
            settings.window_minutes,
        ],
        default=str,
    )


def main() -> None:
    st.set_page_config(
        page_title="Governance panel",
        page_icon=":material/tune:",
        layout="wide",
        initial_sidebar_state="expanded",
    )
    st.html(_STYLE)
    try:
        settings = PanelSettings.from_env()
    except ConfigError as exc:
        st.error(f"The panel's settings are invalid: {exc}")
        return
    panel = _panel(_settings_key(settings), settings)
    st.title("Governance panel")
    with st.sidebar:
        etcd_problem, prom_problem = _connections(panel)
        actor = _sign_in(settings)
        service = _choose_service(panel, etcd_problem)
    overview, service_tab, control, load, thresholds, audit = st.tabs(
        ["Overview", "Service", "Control", "Load", "Dynamic thresholds", "Audit trail"]
    )
    with overview:
        views.overview(panel, etcd_ok=etcd_problem is None, prometheus_ok=prom_problem is None)
    with service_tab:
        views.service(panel, service, etcd_ok=etcd_problem is None, prometheus_ok=prom_problem is None)
    with control:
        forms.control(
            panel, service, actor, etcd_ok=etcd_problem is None, prometheus_ok=prom_problem is None
        )
    with load:
        load_tab.load(panel, actor, etcd_ok=etcd_problem is None)
    with thresholds:
        thresholds_tab.thresholds(
            panel, service, actor, etcd_ok=etcd_problem is None, prometheus_ok=prom_problem is None
        )
    with audit:
        views.audit(panel, service, etcd_ok=etcd_problem is None)


def _connections(panel: Panel) -> tuple[str | None, str | None]:
    st.subheader("Connections")
    etcd_problem = panel.etcd_problem()
    prom_problem = panel.prometheus_problem()
    if etcd_problem:
        st.error(
            etcd_problem + " — instances, rules and controls are unavailable.", icon=":material/error:"
        )
    else:
        st.success(f"etcd: {', '.join(panel.settings.etcd.endpoints)}", icon=":material/check:")
    if prom_problem:
        st.warning(prom_problem + " — live metrics are unavailable.", icon=":material/warning:")
    else:
        st.success(f"Prometheus: {panel.settings.prometheus_url}", icon=":material/check:")
    return etcd_problem, prom_problem


def _sign_in(settings: PanelSettings) -> str | None:
    """The operator's name once signed in with the password; None: read-only."""
    st.subheader("Operator")
    if settings.password is None:
        st.info("Read-only: the operator has not set PANEL_PASSWORD, so nothing can be changed here.")
        return None
    actor = st.session_state.get("actor")
    if actor:
        st.write(f"Signed in as **{actor}**")
        if st.button("Sign out", key="sign_out"):
            st.session_state.pop("actor", None)
            st.rerun()
        return str(actor)
    with st.form("sign_in"):
        name = st.text_input("Your name (recorded in the audit trail)", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", key="sign_in_submit")
    if submitted:
        if not name.strip():
            st.error("Enter your name: every change records who made it.")
        else:
            expected = settings.password.encode()
            guard = _sign_in_guard(repr(settings.sign_in), settings.sign_in)
            attempt = guard.attempt(
                _client(settings), name, lambda: hmac.compare_digest(password.encode(), expected)
            )
            if attempt.verdict is Verdict.ACCEPTED:
                st.session_state["actor"] = name.strip()
                st.rerun()
            elif attempt.verdict is Verdict.THROTTLED:
                st.error(f"Too many attempts, try again in {attempt.retry_after} s.")
            else:
                st.error("Wrong password.")
    st.caption("Signed out: the panel is read-only.")
    return None


def _client(settings: PanelSettings) -> str:
    """The address the sign-in guard counts this session's attempts by."""
    context = st.context
    return client_address(
        context.ip_address, context.headers.get_all("X-Forwarded-For"), settings.trusted_proxies
    )


def _choose_service(panel: Panel, etcd_problem: str | None) -> str | None:
    st.subheader("Service")
    services: list[str] = []
    if etcd_problem is None:
        try:
            services = panel.plane.services()
        except EtcdError as exc:
            st.error(f"etcd: {exc}")
    if not services:
        st.caption("No services found in etcd yet.")
        return None
    return st.selectbox("Service", services, key="service")
