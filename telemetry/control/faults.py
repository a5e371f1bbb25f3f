"""Fault injection for the demo: slow, failing or CPU-hungry calls, switched on live from etcd.

The panel writes ``/governance/<service>/faults`` (read by :class:`~telemetry.control.LiveRules`)::

    {"*": {"latency_ms": 50},
     "shop.Payment/*": {"error_rate": 0.3, "error_code": "UNAVAILABLE"},
     "shop.Payment/Charge": {"cpu_burn_ms": 20}}

Patterns are those of the governance rules (``*``, ``pkg.Service/*``, ``pkg.Service/Method``; the
most specific wins, and its knobs replace, not add to, the broader ones). The configuration is
validated as a whole: a bad field raises :class:`FaultError` naming it
(``faults.shop.Payment/*.error_rate: must be between 0 and 1, got 1.5``) and the faults in force
stay.

:class:`FaultInjector` is a server :class:`~telemetry.rpc.concern.Concern`. At each call's start it
sleeps ``latency_ms``, burns ``cpu_burn_ms`` of the handler thread's CPU time (a busy loop on
``time.thread_time``, so it costs real CPU and holds the GIL like a CPU-bound handler), then fails
the call with ``error_code`` at probability ``error_rate``. Put it last in the chain, after
governance: refused calls then cost nothing, and the injected latency and CPU count in the
metrics, the traces and the adaptive limiter exactly as a slow handler would. With no faults
configured a call pays one attribute read.

On a grpc.aio server (``aio=True``) nothing may block the event loop, so latency is not injected
there; errors and CPU burn are (burning the loop's thread is what a CPU-bound aio handler does).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import grpc

from telemetry.config import ConfigError
from telemetry.governance._types import RandomSource, default_random
from telemetry.governance.rules import GRPC_CODE_NAMES, RuleError, most_specific, validate_pattern
from telemetry.rpc.call import CallState, MethodInfo, RejectCall

__all__ = [
    "FAULT_KEY", "Fault", "FaultError", "FaultInjector", "FaultsInput", "burn_cpu", "parse_faults",
]  # fmt: skip

_log = logging.getLogger("telemetry.control")

FAULT_KEY = "x-fault"
"""Trailing metadata on an injected error (``x-fault: error``): tells it from a real failure."""

MAX_MS = 60_000.0  # a minute: a typo must not park handler threads for hours


class FaultError(ConfigError):
    """A fault configuration is invalid; ``path`` names the field (``faults.*.latency_ms``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, kw_only=True)
class Fault:
    """What to do to the calls one pattern matches."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_code: str = "UNAVAILABLE"
    cpu_burn_ms: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.error_rate or self.cpu_burn_ms)


FaultsInput = Mapping[str, Fault | Mapping[str, Any]] | str | bytes | None
"""A mapping of pattern -> fault (objects or plain mappings), JSON text, or None (no faults)."""

_FIELDS = tuple(f.name for f in dataclasses.fields(Fault))


def parse_faults(spec: FaultsInput) -> Mapping[str, Fault]:
    """Validate ``spec``; :class:`FaultError` names the first bad field."""
    if spec is None:
        return MappingProxyType({})
    if isinstance(spec, str | bytes):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise FaultError("faults", f"not valid JSON: {exc}") from None
        if spec is None:
            return MappingProxyType({})
    if not isinstance(spec, Mapping):
        raise FaultError("faults", f"must be an object, got {type(spec).__name__}")
    parsed: dict[str, Fault] = {}
    for pattern, entry in spec.items():
        path = f"faults.{pattern}"
        try:
            validate_pattern(str(pattern), path)
        except RuleError as exc:  # same patterns as the rules, reported as a fault error
            raise FaultError(exc.path, str(exc).removeprefix(f"{exc.path}: ")) from None
        parsed[str(pattern)] = _parse_fault(entry, path)
    return MappingProxyType(parsed)


def _parse_fault(entry: Any, path: str) -> Fault:
    if isinstance(entry, Fault):
        entry = dataclasses.asdict(entry)  # re-validated: code can build invalid ones
    if not isinstance(entry, Mapping):
        raise FaultError(path, f"must be an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise FaultError(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(_FIELDS)})")
    values: dict[str, Any] = {}
    for name in ("latency_ms", "cpu_burn_ms"):
        if name in entry:
            values[name] = _number(entry[name], f"{path}.{name}", 0.0, MAX_MS)
    if "error_rate" in entry:
        values["error_rate"] = _number(entry["error_rate"], f"{path}.error_rate", 0.0, 1.0)
    if "error_code" in entry:
        code = entry["error_code"]
        if code not in GRPC_CODE_NAMES:  # every status code but OK
            raise FaultError(
                f"{path}.error_code", f"must be a gRPC status code name other than OK, got {code!r}"
            )
        values["error_code"] = code
    return Fault(**values)


def _number(value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultError(path, f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise FaultError(path, f"must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


_UNRESOLVED: Any = object()


class _Table:
    """One configuration, with each method's fault resolved on first use (most specific wins)."""

    __slots__ = ("by_method", "faults")

    def __init__(self, faults: Mapping[str, Fault]) -> None:
        self.faults = faults
        self.by_method: dict[str, Fault | None] = {}

    def lookup(self, info: MethodInfo) -> Fault | None:
        fault = self.by_method.get(info.full_method, _UNRESOLVED)
        if fault is _UNRESOLVED:
            match = most_specific(self.faults, info.service, info.rpc_method)
            fault = match[1] if match is not None and match[1].active else None
            self.by_method[info.full_method] = fault  # racing threads store the same value
        return fault  # type: ignore[no-any-return]


class _Shared:
    """The configuration every linked injector reads; replaced whole (one atomic assignment)."""

    __slots__ = ("table",)

    def __init__(self) -> None:
        self.table: _Table | None = None  # None: no faults (the only thing a call reads)


class FaultInjector:
    """Injects the configured faults into a server's calls; ``configure`` swaps them at any time.

    ``aio``: for a grpc.aio server (no blocking sleep). ``random``: uniform in [0, 1), injected by
    tests to make error injection deterministic.
    """

    __slots__ = ("_aio", "_random", "_shared")

    def __init__(
        self, *, aio: bool = False, random: RandomSource = default_random, _shared: _Shared | None = None
    ) -> None:
        self._aio = aio
        self._random = random
        self._shared = _shared or _Shared()

    @property
    def faults(self) -> Mapping[str, Fault]:
        """The faults in force, by pattern."""
        table = self._shared.table
        return table.faults if table is not None else MappingProxyType({})

    def linked(self, *, aio: bool) -> FaultInjector:
        """Another injector sharing this one's configuration (every ``configure`` reaches both):
        one handle can serve the same faults to a sync and a grpc.aio server."""
        return FaultInjector(aio=aio, random=self._random, _shared=self._shared)

    def configure(self, spec: FaultsInput) -> Mapping[str, Fault]:
        """Validate and put ``spec`` in force (None or ``{}``: no faults). On :class:`FaultError`
        the faults in force stay. Returns the parsed faults."""
        faults = parse_faults(spec)
        table = _Table(faults) if any(f.active for f in faults.values()) else None
        if table is not None and self._aio and any(f.latency_ms for f in faults.values()):
            _log.info("fault latency_ms is not injected on a grpc.aio server (it would block the loop)")
        self._shared.table = table
        return faults

    # -- the concern ----------------------------------------------------------------------------

    def on_start(self, state: CallState) -> None:
        table = self._shared.table
        if table is None:
            return
        fault = table.lookup(state.info)
        if fault is None:
            return
        if fault.latency_ms and not self._aio:
            time.sleep(fault.latency_ms / 1000.0)
        if fault.cpu_burn_ms:
            burn_cpu(fault.cpu_burn_ms / 1000.0)
        if fault.error_rate and self._random() < fault.error_rate:
            raise RejectCall(
                grpc.StatusCode[fault.error_code],
                f"injected fault: {fault.error_code}",
                ((FAULT_KEY, "error"),),
            )

    def on_finish(self, state: CallState) -> None:
        pass


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU time (longer in wall time when other
    threads hold the GIL, as real CPU-bound work would)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
