"""The panel's settings, from environment variables (each bad value names its variable).

==========================  =========================================================================
``ETCD_ENDPOINTS`` ...       etcd, as for the services (:meth:`EtcdConfig.from_env`)
``PROMETHEUS_URL``           where the live metrics come from (default ``http://127.0.0.1:9090``)
``PANEL_PASSWORD``           the operators' shared secret; without it (and without the file) the
``PANEL_PASSWORD_FILE``      panel is read-only. The file form keeps it out of ``ps`` and compose.
``PANEL_REFRESH_SECONDS``    how often the live parts refresh (default 2)
``PANEL_WINDOW_MINUTES``     how much history the charts show (default 15)
``PANEL_SERVICE_LABEL``      the Prometheus label naming a service (default ``job``)
``GRAFANA_URL``              optional: post an annotation to Grafana for every change
``GRAFANA_TOKEN``            a service-account token for it, or ``GRAFANA_USER`` and
``GRAFANA_PASSWORD``         ``GRAFANA_PASSWORD`` (basic auth; Grafana's ``GF_SECURITY_ADMIN_USER``
                             and ``GF_SECURITY_ADMIN_PASSWORD`` do too)
==========================  =========================================================================
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from telemetry.config import ConfigError
from telemetry.discovery.etcd import EtcdConfig

__all__ = ["PanelSettings"]

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class PanelSettings:
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    prometheus_url: str = "http://127.0.0.1:9090"
    password: str | None = None
    """None: read-only (no write control is offered)."""
    refresh_seconds: float = 2.0
    window_minutes: int = 15
    service_label: str = "job"
    grafana_url: str | None = None
    grafana_token: str | None = None
    grafana_basic_auth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("prometheus_url", "grafana_url"):
            value = getattr(self, name)
            if value is not None:
                _check_url(name, value)
        if not 0.5 <= self.refresh_seconds <= 300:
            raise ConfigError(f"refresh_seconds: must be within [0.5, 300], got {self.refresh_seconds}")
        if not 1 <= self.window_minutes <= 24 * 60:
            raise ConfigError(f"window_minutes: must be within [1, 1440], got {self.window_minutes}")
        if not _LABEL.fullmatch(self.service_label):
            raise ConfigError(f"service_label: not a Prometheus label name: {self.service_label!r}")
        if self.password is not None and len(self.password) < 8:
            raise ConfigError("password: must have at least 8 characters")

    @property
    def writable(self) -> bool:
        return self.password is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PanelSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"etcd": EtcdConfig.from_env(env)}
        if env.get("PROMETHEUS_URL"):
            values["prometheus_url"] = _url("PROMETHEUS_URL", env["PROMETHEUS_URL"])
        values["password"] = _password(env)
        if env.get("PANEL_REFRESH_SECONDS"):
            values["refresh_seconds"] = _number("PANEL_REFRESH_SECONDS", env["PANEL_REFRESH_SECONDS"])
        if env.get("PANEL_WINDOW_MINUTES"):
            values["window_minutes"] = _whole("PANEL_WINDOW_MINUTES", env["PANEL_WINDOW_MINUTES"])
        if env.get("PANEL_SERVICE_LABEL"):
            values["service_label"] = env["PANEL_SERVICE_LABEL"]
        if env.get("GRAFANA_URL"):
            values["grafana_url"] = _url("GRAFANA_URL", env["GRAFANA_URL"])
            values["grafana_token"] = env.get("GRAFANA_TOKEN") or None
            # Grafana's own admin variables also do (the demo shares grafana/grafana.env).
            user = env.get("GRAFANA_USER") or env.get("GF_SECURITY_ADMIN_USER")
            password = env.get("GRAFANA_PASSWORD") or env.get("GF_SECURITY_ADMIN_PASSWORD")
            if user and password:
                values["grafana_basic_auth"] = (user, password)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:  # name the variable the operator set, not the field
            message = str(exc)
            for name, variable in _VARIABLES.items():
                if message.startswith(f"{name}:"):
                    message = variable + message[len(name) :]
            raise ConfigError(message) from None


_VARIABLES = {
    "prometheus_url": "PROMETHEUS_URL",
    "grafana_url": "GRAFANA_URL",
    "refresh_seconds": "PANEL_REFRESH_SECONDS",
    "window_minutes": "PANEL_WINDOW_MINUTES",
    "service_label": "PANEL_SERVICE_LABEL",
}


def _password(env: Mapping[str, str]) -> str | None:
    if env.get("PANEL_PASSWORD"):
        variable, password = "PANEL_PASSWORD", env["PANEL_PASSWORD"]
    elif env.get("PANEL_PASSWORD_FILE"):
        variable = "PANEL_PASSWORD_FILE"
        try:
            password = Path(env[variable]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{variable}: cannot read it: {exc}") from None
    else:
        return None
    if len(password) < 8:
        raise ConfigError(f"{variable}: the password must have at least 8 characters")
    return password


def _url(name: str, raw: str) -> str:
    _check_url(name, raw)
    return raw.rstrip("/")


def _check_url(name: str, raw: str) -> None:
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name}: must be an http(s) URL, got {raw!r}")


def _whole(name: str, raw: str) -> int:
    number = _number(name, raw)
    if not number.is_integer():  # also NaN and the infinities, which int() would raise on
        raise ConfigError(f"{name}: not a whole number: {raw!r}")
    return int(number)


def _number(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: not a number: {raw!r}") from None
