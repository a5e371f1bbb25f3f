"""Writing one change from a form: through the audited control plane, the outcome reported inline,
then confirmed by showing which instances applied it. A value the rules model refuses is shown
inline and nothing is written."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import streamlit as st

from telemetry.control.live_rules import CLUSTER
from telemetry.discovery.etcd import EtcdError
from telemetry.panel import controls
from telemetry.panel.control_plane import Change, ConflictError, Rollout, describe

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["apply_cluster_limit", "apply_concurrency_cap", "write"]


def write(
    panel: Panel,
    actor: str | None,
    service: str,
    key: str,
    transform: controls.Transform,
    *,
    reason_key: str = "reason",
    confirm: Callable[[Panel, Change], None] | None = None,
) -> Change | None:
    """Validate and write one change; report the outcome inline. None when nothing was written.
    ``reason_key``: the text input holding the reason; ``confirm``: how to confirm the change
    (default: every instance's rollout)."""
    if actor is None:
        st.error("Sign in with the operator password to change anything.")
        return None
    reason = str(st.session_state.get(reason_key, "")).strip()
    try:
        change = panel.plane.update(service, key, transform, actor=actor, reason=reason)
    except EtcdError as exc:
        st.error(f"Not written: etcd is unreachable ({exc}).")
        return None
    except ConflictError as exc:
        st.error(f"Not written: {exc}.")
        return None
    except ValueError as exc:  # RuleError, FaultError: the message names the field
        st.error(f"Not written: {exc}")
        return None
    if not change.written:
        st.info(f"Nothing to change: {service}/{key} is already like that.")
        return None
    st.session_state.setdefault("changes", []).append(change)
    st.success(f"Written at etcd revision {change.revision}: {describe(change)}")
    (confirm or _confirm)(panel, change)
    return change


def _confirm(panel: Panel, change: Change, timeout: float = 3.0) -> None:
    """Wait (briefly, bounded) for every instance to report the change, and say how it went."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    rollout: Rollout | None = None
    try:
        instances = panel.plane.instances(change.service)  # registrations: read once
        while True:
            rollout = panel.plane.rollout(change.service, change.revision, instances)
            if rollout.done or rollout.refused or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    except EtcdError as exc:
        st.warning(f"Could not read the rollout: {exc}")
        return
    if rollout.done:
        st.success(f"{rollout.summary()} (within {(time.monotonic() - started) * 1000:.0f} ms).")
    elif rollout.refused:
        st.error(rollout.summary())
    elif not rollout.instances:
        st.warning(f"No instance of {change.service} is running: the change waits in etcd for them.")
    else:
        st.warning(f"Not everywhere yet: {rollout.summary()} (see the Service tab).")


def apply_cluster_limit(
    panel: Panel, actor: str | None, service: str, limit: float, *, key: str, burst: int | None = None
) -> Change | None:
    """The *Apply* button of a recommended limit (the knee's, the capacity test's): the
    cluster-wide limit of ``service`` (pattern ``*``), with its burst when one is recommended,
    written like any other change."""
    label = f"Apply {limit:g} calls/s as the cluster-wide limit of {service}"
    if burst is not None:
        label += f" (burst {burst})"
    st.caption(
        "One limit for every method of the service, split across its live instances; a method "
        "whose rule has a rate limit of its own keeps that one."
    )
    if st.button(label, key=key, disabled=actor is None):
        change = controls.set_cluster_limit("*", limit, burst)
        return write(panel, actor, service, CLUSTER, change)
    return None


def apply_concurrency_cap(
    panel: Panel, actor: str | None, service: str, cap: int, *, key: str
) -> Change | None:
    """The *Apply* button of a recommended cap on calls in flight: every method of ``service``
    together, on each instance (``server`` section, :func:`controls.set_concurrency_cap`)."""
    st.caption(
        "At most this many calls in flight on each instance, all methods together (a method whose "
        "rule has a bulkhead of its own keeps that one); the calls over it are refused at once "
        "with RESOURCE_EXHAUSTED. Instead of the rate limit, not beside it (the two together "
        "admitted too little on the demo): on an event loop a cap bounds the work each admitted "
        "call waits behind."
    )
    label = f"Apply a cap of {cap} call{'s' if cap != 1 else ''} in flight per instance of {service}"
    if st.button(label, key=key, disabled=actor is None):
        return write(panel, actor, service, "server", controls.set_concurrency_cap(cap))
    return None
