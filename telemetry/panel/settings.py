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
``PANEL_TRUSTED_PROXIES``    how many reverse proxies in front of the panel append the client's
                             address to ``X-Forwarded-For`` (default 0: the header is ignored). Set
                             it only if the panel cannot be reached but through them.
==========================  =========================================================================

The sign-in guard (:mod:`telemetry.panel.signin`), per client address and over all clients:

=========================================  ==========================================================
``PANEL_SIGNIN_DELAY_SECONDS``              wait after a client's first wrong password; doubles with
                                            each further one (default 1, within [0, 300])
``PANEL_SIGNIN_MAX_DELAY_SECONDS``          up to (default 30, within [0, 3600])
``PANEL_SIGNIN_MAX_FAILURES``               wrong passwords in a row that lock a client out
                                            (default 10, within [1, 1000])
``PANEL_SIGNIN_LOCKOUT_SECONDS``            for how long (default 900, within [1, 86400]); a
                                            streak is forgotten after as long again without failures
``PANEL_SIGNIN_GLOBAL_DELAY_SECONDS``       wait, for every client, after any wrong password;
                                            doubles likewise (default 0.5, within [0, 300])
``PANEL_SIGNIN_GLOBAL_MAX_DELAY_SECONDS``   up to (default 5, within [0, 3600])
``PANEL_SIGNIN_GLOBAL_MAX_FAILURES``        wrong passwords in a row from all clients together that
                                            lock every client out (default 100, at least
                                            ``PANEL_SIGNIN_MAX_FAILURES``)
``PANEL_SIGNIN_MAX_CLIENTS``                clients remembered at once, least recently failing
                                            forgotten first (default 10000)
=========================================  ==========================================================
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
from telemetry.panel.signin import SignInPolicy

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
    trusted_proxies: int = 0
    """Reverse proxies appending to X-Forwarded-For; 0: the header is the client's, not trusted."""
    sign_in: SignInPolicy = field(default_factory=SignInPolicy)

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
        if not 0 <= self.trusted_proxies <= 10:
            raise ConfigError(f"trusted_proxies: must be within [0, 10], got {self.trusted_proxies}")

    @property
    def writable(self) -> bool:
        return self.password is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PanelSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"etcd": EtcdConfig.from_env(env), "sign_in": _sign_in(env)}
        if env.get("PROMETHEUS_URL"):
            values["prometheus_url"] = _url("PROMETHEUS_URL", env["PROMETHEUS_URL"])
        values["password"] = _password(env)
        if env.get("PANEL_REFRESH_SECONDS"):
            values["refresh_seconds"] = _number("PANEL_REFRESH_SECONDS", env["PANEL_REFRESH_SECONDS"])
        if env.get("PANEL_WINDOW_MINUTES"):
            values["window_minutes"] = _whole("PANEL_WINDOW_MINUTES", env["PANEL_WINDOW_MINUTES"])
        if env.get("PANEL_SERVICE_LABEL"):
            values["service_label"] = env["PANEL_SERVICE_LABEL"]
        values.update(_grafana(env))
        if env.get("PANEL_TRUSTED_PROXIES"):
            values["trusted_proxies"] = _whole("PANEL_TRUSTED_PROXIES", env["PANEL_TRUSTED_PROXIES"])
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:  # name the variable the operator set, not the field
            raise ConfigError(_by_variable(str(exc))) from None


_VARIABLES = {
    "prometheus_url": "PROMETHEUS_URL",
    "grafana_url": "GRAFANA_URL",
    "refresh_seconds": "PANEL_REFRESH_SECONDS",
    "window_minutes": "PANEL_WINDOW_MINUTES",
    "service_label": "PANEL_SERVICE_LABEL",
    "trusted_proxies": "PANEL_TRUSTED_PROXIES",
}

_SIGN_IN_VARIABLES = {
    "delay_seconds": "PANEL_SIGNIN_DELAY_SECONDS",
    "max_delay_seconds": "PANEL_SIGNIN_MAX_DELAY_SECONDS",
    "max_failures": "PANEL_SIGNIN_MAX_FAILURES",
    "lockout_seconds": "PANEL_SIGNIN_LOCKOUT_SECONDS",
    "global_delay_seconds": "PANEL_SIGNIN_GLOBAL_DELAY_SECONDS",
    "global_max_delay_seconds": "PANEL_SIGNIN_GLOBAL_MAX_DELAY_SECONDS",
    "global_max_failures": "PANEL_SIGNIN_GLOBAL_MAX_FAILURES",
    "max_clients": "PANEL_SIGNIN_MAX_CLIENTS",
}
_WHOLE = {"max_failures", "global_max_failures", "max_clients"}
_SIGN_IN_FIELD = re.compile(r"\b(" + "|".join(_SIGN_IN_VARIABLES) + r")\b")


def _by_variable(message: str) -> str:
    """``message`` with the field it starts with (if one read from a variable) named by its variable."""
    for name, variable in _VARIABLES.items():
        if message.startswith(f"{name}:"):
            message = variable + message[len(name) :]
    return message


def _grafana(env: Mapping[str, str]) -> dict[str, object]:
    """Grafana's URL and credentials; none without ``GRAFANA_URL``."""
    if not env.get("GRAFANA_URL"):
        return {}
    values: dict[str, object] = {
        "grafana_url": _url("GRAFANA_URL", env["GRAFANA_URL"]),
        "grafana_token": env.get("GRAFANA_TOKEN") or None,
    }
    # Grafana's own admin variables also do (the demo shares grafana/grafana.env).
    user = env.get("GRAFANA_USER") or env.get("GF_SECURITY_ADMIN_USER")
    password = env.get("GRAFANA_PASSWORD") or env.get("GF_SECURITY_ADMIN_PASSWORD")
    if user and password:
        values["grafana_basic_auth"] = (user, password)
    return values


def _sign_in(env: Mapping[str, str]) -> SignInPolicy:
    values: dict[str, float] = {}
    for name, variable in _SIGN_IN_VARIABLES.items():
        if env.get(variable):
            values[name] = (_whole if name in _WHOLE else _number)(variable, env[variable])
    try:
        return SignInPolicy(**values)  # type: ignore[arg-type]
    except ConfigError as exc:  # every field the message names, by its variable
        message = _SIGN_IN_FIELD.sub(lambda found: _SIGN_IN_VARIABLES[found[1]], str(exc))
        raise ConfigError(message) from None


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
