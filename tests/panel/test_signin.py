"""The panel's sign-in under guessing, run headless by Streamlit's AppTest against a real etcd.

The guard's clock is a fake one (nothing sleeps), and ``st.context`` a stand-in: AppTest has no
connection, so no peer address or headers of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.runtime.context import StreamlitHeaders
from streamlit.testing.v1 import AppTest

import telemetry.panel
from telemetry.panel import ui
from telemetry.testing import FakeClock
from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.ports import free_port

APP = Path(telemetry.panel.__file__).with_name("app.py")
PASSWORD = "correct-horse-battery"
PROXY = "198.51.100.7"
CLIENT = "203.0.113.9"


@dataclass
class Context:
    """What the panel reads of ``st.context``: the peer (here a proxy) and the request's headers."""

    ip_address: str | None = PROXY
    headers: StreamlitHeaders = field(
        default_factory=lambda: StreamlitHeaders([("X-Forwarded-For", f"192.0.2.66, {CLIENT}")])
    )


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """The guard's clock, for a guard built afresh for the test."""
    fake = FakeClock()
    monkeypatch.setattr(ui, "sign_in_clock", fake)
    monkeypatch.setattr(st, "context", Context())
    st.cache_resource.clear()
    yield fake
    st.cache_resource.clear()  # the guard, and the panel's etcd client and follower


def start(monkeypatch: pytest.MonkeyPatch, etcd: EtcdServer, **environ: str) -> AppTest:
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd.endpoint)
    monkeypatch.setenv("PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("PANEL_PASSWORD", PASSWORD)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return run(AppTest.from_file(str(APP), default_timeout=30))


def run(target: Any) -> AppTest:
    app: AppTest = target.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def sign_in(app: AppTest, password: str, name: str = "mallory") -> list[str]:
    """Submit the form; the sidebar's error messages."""
    app.text_input(key="sign_in_name").input(name)
    app.text_input(key="sign_in_password").input(password)
    run(app.button(key="sign_in_submit").click())
    return [str(e.value) for e in app.sidebar.error]


def signed_in(app: AppTest) -> bool:
    return any("Signed in as" in str(m.value) for m in app.sidebar.markdown)


def test_repeated_wrong_passwords_lock_out_even_the_right_one(
    monkeypatch: pytest.MonkeyPatch,
    etcd: EtcdServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = start(
        monkeypatch,
        etcd,
        PANEL_SIGNIN_MAX_FAILURES="3",
        PANEL_SIGNIN_LOCKOUT_SECONDS="600",
        PANEL_TRUSTED_PROXIES="1",
    )
    with caplog.at_level(logging.INFO, logger="telemetry.panel"):
        assert sign_in(app, "guess-1") == ["Wrong password."]
        assert sign_in(app, "guess-2") == ["Too many attempts, try again in 1 s."]
        clock.advance(1)
        assert sign_in(app, "guess-3") == ["Wrong password."]
        clock.advance(2)
        assert sign_in(app, "guess-4") == ["Wrong password."]  # the third in a row: locked out
        assert sign_in(app, PASSWORD, name="ada") == ["Too many attempts, try again in 600 s."]
        assert not signed_in(app)
        clock.advance(600)
        assert sign_in(app, PASSWORD, name="ada") == []
        assert signed_in(app)

    lines = [r.getMessage() for r in caplog.records if r.name == "telemetry.panel"]
    failures = [line for line in lines if "wrong password for operator 'mallory'" in line]
    assert len(failures) == 3 and all(f"from {CLIENT} " in line for line in failures), lines
    assert [line for line in lines if "locked out" in line] == [
        f"panel sign-in: client {CLIENT} locked out for 600 s after 3 wrong passwords in a row"
    ]
    assert any(f"operator 'ada' signed in from {CLIENT}" in line for line in lines)
    for secret in ("guess-", PASSWORD):
        assert secret not in caplog.text


def test_without_trusted_proxies_the_forwarded_header_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
    etcd: EtcdServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = start(monkeypatch, etcd)
    with caplog.at_level(logging.WARNING, logger="telemetry.panel"):
        assert sign_in(app, "guess-1") == ["Wrong password."]
    [line] = [r.getMessage() for r in caplog.records if r.name == "telemetry.panel"]
    assert f"from {PROXY} (1 in a row; 1 overall)" in line, "the peer, not what the header claims"
