"""Driving the control panel's page in tests (Streamlit's AppTest): start it against an etcd and a
Prometheus, run it again after a widget changed, sign in, read texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import telemetry.panel
from telemetry.testing.ports import free_port

APP = Path(telemetry.panel.__file__).with_name("app.py")
PASSWORD = "correct-horse-battery"


def start(
    monkeypatch: pytest.MonkeyPatch,
    etcd: str,
    *,
    password: str | None = PASSWORD,
    prometheus: str | None = None,
) -> AppTest:
    """The page, run once; ``prometheus`` None: a free port nobody answers on."""
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd)
    monkeypatch.setenv("PROMETHEUS_URL", prometheus or f"http://127.0.0.1:{free_port()}")
    if password is None:
        monkeypatch.delenv("PANEL_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("PANEL_PASSWORD", password)
    return run(AppTest.from_file(str(APP), default_timeout=30))


def run(target: Any) -> AppTest:
    """Run the script again (``target``: the app, or a widget just changed); no exception."""
    app: AppTest = target.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def sign_in(app: AppTest, name: str = "ada", password: str = PASSWORD) -> AppTest:
    app.text_input(key="sign_in_name").input(name)
    app.text_input(key="sign_in_password").input(password)
    return run(app.button(key="sign_in_submit").click())


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]
