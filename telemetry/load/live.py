"""The load generator's settings from etcd, applied live, and its report of what it made of them.

Keys (JSON values)::

    /loadgen/settings    the settings (telemetry.load.settings), written by the panel (audited)
    /loadgen/status      what the load generator made of them (under its lease):
                         {"state": "applied" | "rejected" | "configured", "revision",
                          "applied_at", "error", "settings", "offered_rate"}

:class:`LiveLoad` mirrors the settings key with a :class:`~telemetry.discovery.watch.PrefixWatcher`
(push-based, resumes after an etcd restart) and puts each valid value in force on its
:class:`~telemetry.load.schedule.LoadPlan` at once (the schedule wakes and starts over from now).
Like the live governance rules (``telemetry.control.live_rules``): a value that does not parse, is
out of range or hostile changes nothing, the settings in force stay, the refusal is logged and the
status says ``rejected`` with the error naming the field. Without the key (never written, or
deleted) the settings the load generator started with (YAML, environment) are in force: state
``configured``. While etcd is unreachable nothing changes. ``offered_rate`` is the mix's rate the
schedule runs at; it is rewritten when it moves (a step or ramp profile), checked every
``report_every`` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from telemetry.config import ConfigError
from telemetry.discovery.etcd import EtcdClient
from telemetry.discovery.leased import LeasedKey
from telemetry.discovery.watch import PrefixWatcher
from telemetry.load.schedule import LoadPlan
from telemetry.load.settings import parse_load

__all__ = ["LOAD_SETTINGS_KEY", "LOAD_STATUS_KEY", "LiveLoad", "read_load_status"]

_log = logging.getLogger("telemetry.load")

LOAD_SETTINGS_KEY = "/loadgen/settings"
LOAD_STATUS_KEY = "/loadgen/status"
_MAX_ERROR = 2000


def read_load_status(client: EtcdClient) -> dict[str, Any] | None:
    """The load generator's last status (None: none is running, or it is not JSON)."""
    kv = client.get(LOAD_STATUS_KEY)
    if kv is None:
        return None
    try:
        status = json.loads(kv.value)
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


class LiveLoad:
    """Watches ``/loadgen/settings`` for a :class:`LoadPlan`; one start/stop cycle per object."""

    def __init__(
        self,
        client: EtcdClient,
        plan: LoadPlan,
        *,
        backoff: tuple[float, float] = (0.05, 1.0),
        status_ttl: int = 5,
        report_every: float = 0.5,
    ) -> None:
        self._client = client
        self._plan = plan
        self._baseline = plan.settings  # the YAML/env settings: in force while there is no key
        self._watcher = PrefixWatcher(client, LOAD_SETTINGS_KEY, backoff=backoff)
        self._watcher.add_listener(self._on_change)
        self._lock = threading.Lock()
        self._applied: bytes | None = None  # the value in force (None: the baseline)
        self._status: dict[str, Any] | None = None
        self._status_ttl = status_ttl
        self._status_key: LeasedKey | None = None
        self._report_every = report_every
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._reporter = threading.Thread(target=self._report_loop, name="loadgen-status", daemon=True)

    def start(self) -> LiveLoad:
        self._watcher.start()
        self._reporter.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and delete the status; the settings in force stay."""
        self._stop.set()
        self._watcher.stop(timeout)
        with self._lock:
            status_key, self._status_key = self._status_key, None
        if status_key is not None:
            status_key.stop(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """True once the key has been read (and applied or refused) once."""
        return self._ready.wait(timeout)

    @property
    def status(self) -> dict[str, Any] | None:
        status = self._status
        return dict(status) if status is not None else None

    def _on_change(self, state: Mapping[str, bytes], revision: int) -> None:
        raw = state.get(LOAD_SETTINGS_KEY)
        with self._lock:
            if self._stop.is_set():
                return
            self._update(raw, revision)
        self._ready.set()

    def _update(self, raw: bytes | None, revision: int) -> None:
        if raw is None:
            settings, state = self._baseline, "configured"
        else:
            try:
                settings, state = parse_load(raw, self._baseline), "applied"
            except Exception as exc:  # any failure is a refusal: the settings in force stay
                self._reject(exc, revision)
                return
        if raw != self._applied or self._status is None:
            self._plan.use(settings)
            self._applied = raw
            _log.info("load settings from etcd revision %d in force: %s", revision, settings.to_dict())
        # The rate the new settings offer now (the schedule thread is waking up to it).
        self._write(self._new_status(state, revision, None, settings.rate_at(0.0)))

    def _reject(self, exc: Exception, revision: int) -> None:
        named = isinstance(exc, ConfigError)
        error = str(exc) if named else f"load: could not be validated ({type(exc).__name__}: {exc})"
        error = error if len(error) <= _MAX_ERROR else error[: _MAX_ERROR - 3] + "..."
        _log.warning(
            "load settings at etcd revision %d rejected, previous settings stay: %s",
            revision,
            error,
            exc_info=None if named else exc,
        )
        self._write(self._new_status("rejected", revision, error, self._plan.mix_rate()))

    def _new_status(
        self, state: str, revision: int, error: str | None, offered: float
    ) -> dict[str, Any]:
        return {
            "state": state,
            "revision": revision,
            "applied_at": time.time(),
            "error": error,
            "settings": self._plan.settings.to_dict(),
            "offered_rate": round(offered, 3),
        }

    def _report_loop(self) -> None:
        """Rewrite the status when the offered rate moved (a profile running)."""
        while not self._stop.wait(self._report_every):
            with self._lock:
                status = self._status
                if status is None or self._stop.is_set():
                    continue
                offered = round(self._plan.scheduled_rate, 3)
                if offered != status["offered_rate"]:  # at most one write per report_every
                    self._write({**status, "offered_rate": offered})

    def _write(self, status: dict[str, Any]) -> None:
        """Never raises: an unreachable etcd delays the report (the lease keeper writes it later)."""
        self._status = status
        value = json.dumps(status)
        if self._status_key is None:
            self._status_key = LeasedKey(
                self._client, LOAD_STATUS_KEY, value, ttl=self._status_ttl,
                thread_name="loadgen-status-lease",
            ).start(write_now=True)  # fmt: skip
            return
        self._status_key.set(value)  # never raises: a failed write is retried by its thread
