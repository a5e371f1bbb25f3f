"""What every part of the page is run in: a guard that turns a failure into a message, and a
Streamlit fragment that refreshes the part by itself. Shared by the tabs, which depend on it
rather than on one another."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import streamlit as st

from telemetry.discovery.etcd import EtcdError
from telemetry.panel.prometheus import PrometheusError

if TYPE_CHECKING:
    from telemetry.panel.backends import Panel

__all__ = ["guarded", "live"]

_log = logging.getLogger("telemetry.panel")


@contextlib.contextmanager
def guarded(what: str) -> Iterator[None]:
    """Show a failing part as a message; the rest of the page renders on."""
    try:
        yield
    except EtcdError as exc:
        st.warning(f"{what}: etcd is unreachable ({exc}).", icon=":material/cloud_off:")
    except PrometheusError as exc:
        st.warning(f"{what}: {exc}.", icon=":material/cloud_off:")
    except Exception as exc:  # a bug in one part must not take the page down
        _log.exception("panel part %r failed", what)
        st.error(f"{what} failed: {type(exc).__name__}: {exc}", icon=":material/error:")


def live(panel: Panel, key: str) -> Callable[[Callable[[], None]], None]:
    """Run a part as a fragment that refreshes itself (``key`` names it across reruns)."""

    def run(body: Callable[[], None]) -> None:
        def part() -> None:
            body()

        part.__qualname__ = f"live_{key}"  # the fragment's identity across reruns
        st.fragment(run_every=panel.settings.refresh_seconds)(part)()

    return run
