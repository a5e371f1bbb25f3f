"""Live governance rules: the panel writes them to etcd, every instance applies them within a second.

Layout, for a service ``order`` (every value is JSON)::

    /governance/order/rules      the whole rules document (optional)
    /governance/order/enabled    false                          one top-level section each:
    /governance/order/server     {"methods": {"*": {...}}}      enabled, server, client,
    /governance/order/adaptive   {"enabled": true, ...}         adaptive, shedding
    /governance/order/cluster    {"*": 400}                     cluster-wide rate limits
    /governance/order/faults     {"*": {"latency_ms": 50}}      demo faults (see control.faults)
    /governance/order/sampling   {"ratio": 0.25}                trace sampling (tracing.samplers)
    /governance-status/order/<instance-id>                      what the instance made of it

So the panel can flip one section without rewriting the others, each top-level section of the
document comes from the most specific place that sets it: its own key, else the ``rules``
document, else the rules the service started with (given to its :class:`Governance` in code).
Deleting keys falls back the same way; deleting ``sampling`` puts the configured sampler back.

:class:`LiveRules` mirrors the prefix with a :class:`~telemetry.discovery.watch.PrefixWatcher`
(push-based; it resumes from its last revision after an etcd restart). On every change it assembles
the document, validates it with the faults and the sampling as one whole, and puts it in force with
``Governance.apply`` (faults and sampling only when their value changed); then it writes its status,
``{"state": "applied", "revision", "generation", "applied_at", "error": null, "baseline",
"cluster_limits"}`` (the baseline is the rules given in code, which the panel starts from when it
edits a section not yet in etcd; ``cluster_limits`` is where exact cluster limits count, ``{"mode":
"redis" | "local", ...}``, rewritten when the store goes down or comes back, or null without a
store). An invalid
document (a bad field, bad JSON, an unknown key) changes nothing: the previous rules, faults and
sampling stay in force and the status says ``"rejected"`` with the error naming the field
(``rules.server.methods['*'].rate_limit.limit: must be <= 1e6, got 1e+308``, ``sampling.ratio: must
be between 0 and 1, got 1.5``). Hostile values are refused the same way: each value is bounded
before it is parsed (256 KiB, 32 levels of nesting: ``rules.server: nesting too deep in ...``), and
any other failure while validating or applying, whatever its type, is a rejection too (its stack is
logged once): the panel always gets an answer.
While etcd is unreachable nothing changes either: the rules in force stay.

Cluster-wide limits (``cluster``: method pattern -> the whole service's calls per second, a
number or ``{"limit", "burst"}``; :mod:`telemetry.control.cluster_limits`) are split evenly across
the live instances. :meth:`LiveRules.refresh` re-assembles when the count changes; the discovery
layer calls it when the registry does.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from telemetry.config import ConfigError
from telemetry.control.cluster_limits import (
    CLUSTER,
    mark_cluster_limits,
    parse_cluster,
    split_cluster_limits,
)
from telemetry.control.faults import FaultInjector, parse_faults
from telemetry.discovery.etcd import EtcdClient, EtcdError
from telemetry.discovery.leased import LeasedKey
from telemetry.discovery.watch import PrefixWatcher
from telemetry.governance.engine import Governance
from telemetry.governance.rules import (
    GovernanceRules,
    RuleError,
    json_text,
    load_json,
)
from telemetry.tracing.samplers import LiveSampler, parse_sampling

__all__ = [
    "CLUSTER", "DOCUMENT", "FAULTS", "GOVERNANCE_PREFIX", "KEYS", "SAMPLING", "SECTIONS",
    "STATUS_PREFIX", "LiveRules", "governance_prefix", "parse_cluster", "read_all_statuses",
    "read_statuses", "rules_key", "status_key",
]  # fmt: skip

_log = logging.getLogger("telemetry.control")

GOVERNANCE_PREFIX = "/governance/"
STATUS_PREFIX = "/governance-status/"
SECTIONS = ("enabled", "server", "client", "adaptive", "shedding")
"""Top-level sections of the rules document (the fields of ``GovernanceRules``), one key each."""
DOCUMENT = "rules"
"""The key holding a whole rules document; section keys override it."""
FAULTS = "faults"
"""The key holding the demo's fault injection (``telemetry.control.faults``)."""
SAMPLING = "sampling"
"""The key holding the live trace sampling: ``{"ratio": r}`` or ``{"traces_per_second": n}``."""
KEYS = (*SECTIONS, DOCUMENT, CLUSTER, FAULTS, SAMPLING)
_NOT_RULES = (FAULTS, SAMPLING)  # keys validated and applied apart from the rules document

APPLIED = "applied"
REJECTED = "rejected"


def governance_prefix(service: str) -> str:
    return f"{GOVERNANCE_PREFIX}{_name(service, 'service')}/"


def rules_key(service: str, section: str) -> str:
    """The etcd key of one section (one of :data:`KEYS`) of ``service``'s rules."""
    if section not in KEYS:
        raise ValueError(f"unknown governance key {section!r} (known: {', '.join(KEYS)})")
    return f"{governance_prefix(service)}{section}"


def status_key(service: str, instance_id: str) -> str:
    return f"{STATUS_PREFIX}{_name(service, 'service')}/{_name(instance_id, 'instance_id')}"


def read_statuses(client: EtcdClient, service: str) -> dict[str, dict[str, Any]]:
    """Instance id -> the status it last wrote (entries that are not JSON objects are skipped)."""
    return read_all_statuses(client, f"{STATUS_PREFIX}{_name(service, 'service')}/").get(service, {})


def read_all_statuses(
    client: EtcdClient, prefix: str = STATUS_PREFIX
) -> dict[str, dict[str, dict[str, Any]]]:
    """Service -> instance id -> status, for every status under ``prefix`` (one read)."""
    statuses: dict[str, dict[str, dict[str, Any]]] = {}
    for kv in client.get_prefix(prefix).items:
        service, _, instance_id = kv.key[len(STATUS_PREFIX) :].partition("/")
        try:
            status = json.loads(kv.value)
        except (ValueError, RecursionError):  # junk written there (100,000-deep ...) is skipped
            continue
        if isinstance(status, dict) and instance_id:
            statuses.setdefault(service, {})[instance_id] = status
    return statuses


def _name(value: str, what: str) -> str:
    if not value or "/" in value:
        raise ValueError(f"{what} must be a non-empty string without '/', got {value!r}")
    return value


class LiveRules:
    """Keeps ``governance`` (and ``faults``, and ``sampler``'s sampling) in line with
    ``/governance/<service>/`` in etcd.

    ``instance_count``: live instances of this service (the registry's count), for splitting
    cluster-wide limits; None counts one. One ``start()`` / ``stop()`` cycle per object.
    """

    def __init__(
        self,
        client: EtcdClient,
        governance: Governance,
        *,
        service: str,
        instance_id: str,
        faults: FaultInjector | None = None,
        sampler: LiveSampler | None = None,
        instance_count: Callable[[], int] | None = None,
        backoff: tuple[float, float] = (0.05, 1.0),
        status_ttl: int = 5,
    ) -> None:
        """``status_ttl``: the lease of the status key, seconds: a status outlives a killed
        instance by at most that long, so a panel counts live instances only."""
        self.service = service
        self.instance_id = instance_id
        self.prefix = governance_prefix(service)
        self.status_key = status_key(service, instance_id)
        self._client = client
        self._governance = governance
        self._faults = faults
        self._sampler = sampler
        self._instance_count = instance_count
        self._watcher = PrefixWatcher(client, self.prefix, backoff=backoff)
        self._watcher.add_listener(self._on_change)
        # One lock orders every update (watcher thread and refresh callers) and its status write,
        # so an older status can never overwrite a newer one.
        self._lock = threading.RLock()
        self._running = False
        self._ready = threading.Event()
        self._count = 1  # the instance count the rules in force were split by
        self._baseline: dict[str, Any] = {}
        self._applied_doc: dict[str, Any] | None = None  # the assembled document in force
        self._applied_faults: bytes | None = None  # the faults value in force (None: not from etcd)
        self._applied_sampling: bytes | None = None  # likewise (None: the configured sampler)
        self._applied_at: float | None = None
        self._status: dict[str, Any] | None = None
        self._status_ttl = status_ttl
        self._status_key: LeasedKey | None = None  # the status under this instance's lease

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LiveRules:
        """Start watching (in a background thread); returns at once, see :meth:`wait_ready`."""
        with self._lock:
            if self._running:
                return self
            self._running = True
            # The rules given in code are the base every etcd section overrides.
            self._baseline = self._governance.rules.to_dict()
            self._applied_doc = copy.deepcopy(self._baseline)
        store = self._governance.cluster_store
        if store is not None:  # the panel shows where cluster limits count: tell it each change
            store.add_listener(self._on_store_mode)
        self._watcher.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and delete the status key (its lease revoked); the rules in force stay
        in force."""
        with self._lock:
            self._running = False
            status_key, self._status_key = self._status_key, None
        self._watcher.stop(timeout)
        if status_key is not None:
            status_key.stop(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """True once the rules in etcd have been read and applied (or rejected) once: a service
        that must not serve under stale rules waits for this before starting its server."""
        return self._ready.wait(timeout)

    def refresh(self) -> None:
        """Re-split cluster limits when the live instance count has changed (the registry calls
        this on each of its changes, so an unchanged count costs one call and a comparison)."""
        with self._lock:
            if not (self._running and self._ready.is_set()):
                return
            count = self._live_instances()
            if count != self._count:
                self._update(self._watcher.state, self._watcher.revision, count, forced=False)

    def _on_store_mode(self, mode: str) -> None:
        """The cluster limits' store went down or came back: the status says so (the same
        report, its ``cluster_limits`` updated)."""
        with self._lock:
            status = self._status
            if self._running and status is not None:
                self._write_status({**status, "cluster_limits": self._cluster_status()})

    def _cluster_status(self) -> dict[str, Any] | None:
        store = self._governance.cluster_store
        return store.status() if store is not None else None

    # -- what it did ----------------------------------------------------------------------------

    @property
    def status(self) -> dict[str, Any] | None:
        """The last status this instance wrote (or tried to write)."""
        status = self._status  # replaced whole, never mutated: no lock (a write may be in flight)
        return dict(status) if status is not None else None

    # -- updates --------------------------------------------------------------------------------

    def _on_change(self, state: Mapping[str, bytes], revision: int) -> None:
        with self._lock:
            if not self._running:
                return
            self._update(state, revision, self._live_instances(), forced=True)
        self._ready.set()

    def _update(self, state: Mapping[str, bytes], revision: int, count: int, *, forced: bool) -> None:
        """Validate everything, then apply everything, or nothing. ``forced``: etcd changed, so
        report even when the result is unchanged; otherwise (refresh) only report changes."""
        faults_key, sampling_key = self.prefix + FAULTS, self.prefix + SAMPLING
        faults_raw = state.get(faults_key)
        sampling_raw = state.get(sampling_key)
        sampling_changed = self._sampler is not None and sampling_raw != self._applied_sampling
        stage = "rules: could not be validated"  # names an unforeseen failure, which has no path
        try:
            doc = self._assemble(state, count)
            rules = GovernanceRules.from_dict(doc)
            faults = None
            if self._faults is not None and faults_raw != self._applied_faults:
                stage = f"{FAULTS}: could not be validated"
                faults = parse_faults(_bounded(faults_raw, FAULTS, faults_key))
            stage = f"{SAMPLING}: could not be validated"
            sampling = _bounded(sampling_raw, SAMPLING, sampling_key) if sampling_changed else None
            sampler = parse_sampling(sampling) if sampling_changed else None
            rules_changed = doc != self._applied_doc
            changed = rules_changed or faults is not None or sampling_changed
            if not (forced or changed):
                self._count = count
                return
            if rules_changed:
                stage = "rules: could not be applied"
                self._governance.apply(rules)  # validated above; on failure nothing changed
                self._applied_doc = doc
        except Exception as exc:  # any failure is a refusal: the rules in force stay, the panel is told
            self._reject(exc, stage, revision, forced=forced)
            return
        self._count = count
        if faults is not None and self._faults is not None:
            self._faults.configure(faults)
            self._applied_faults = faults_raw
        if sampling_changed and self._sampler is not None:
            self._sampler.use(sampler)
            self._applied_sampling = sampling_raw
            _log.info("trace sampling now %s", self._sampler.get_description())
        self._applied_at = time.time()
        status = self._new_status(APPLIED, revision, None)
        if changed:
            _log.info(
                "governance rules from etcd revision %d in force (generation %d)",
                revision,
                status["generation"],
            )
        self._write_status(status)

    def _reject(self, exc: Exception, stage: str, revision: int, *, forced: bool) -> None:
        """Report ``exc`` as a rejection. A :class:`ConfigError` (RuleError, FaultError) names its
        field; anything else is unforeseen (a bug, or input validation missed): it is named by
        ``stage`` and its stack is logged, once per report."""
        named = isinstance(exc, ConfigError)
        error = str(exc) if named else f"{stage} ({type(exc).__name__}: {exc})"
        if len(error) > _MAX_ERROR:  # the status is read by the panel: keep it small
            error = error[: _MAX_ERROR - 3] + "..."
        status = self._new_status(REJECTED, revision, error)
        if forced or _core(status) != _core(self._status):
            _log.warning(
                "governance rules at etcd revision %d rejected, previous rules stay: %s",
                revision,
                error,
                # A RuleError chained to a cause is from_dict's last resort: unforeseen too.
                exc_info=None if named and exc.__cause__ is None else exc,
            )
            self._write_status(status)

    def _assemble(self, state: Mapping[str, bytes], count: int) -> dict[str, Any]:
        """The rules document: code's rules < the ``rules`` document < section keys, then the
        cluster limits split across ``count`` instances."""
        doc = copy.deepcopy(self._baseline)
        sections: dict[str, Any] = {}
        cluster: Any = None
        for key in sorted(state):
            name = key[len(self.prefix) :]
            if name in _NOT_RULES:
                continue
            if name not in KEYS:
                raise RuleError(key, f"unknown governance key (known: {', '.join(KEYS)})")
            path = "rules" if name == DOCUMENT else CLUSTER if name == CLUSTER else f"rules.{name}"
            value = load_json(state[key], path, source=key)  # bounded: size and nesting
            if name == DOCUMENT:
                if not isinstance(value, dict):
                    raise RuleError("rules", f"must be an object, got {type(value).__name__}")
                doc.update(value)  # unknown top-level fields are reported by from_dict
            elif name == CLUSTER:
                cluster = value
            else:
                sections[name] = value
        doc.update(sections)
        if cluster is not None:
            mark_cluster_limits(doc, parse_cluster(cluster))
        split_cluster_limits(doc, count)
        return doc

    def _live_instances(self) -> int:
        if self._instance_count is None:
            return 1
        try:
            return max(1, int(self._instance_count()))
        except Exception:  # the registry's problem must not stop rules: keep the last count
            _log.exception("instance_count() failed; using the last count, %d", self._count)
            return self._count

    def _new_status(self, state: str, revision: int, error: str | None) -> dict[str, Any]:
        return {
            "state": state,
            "revision": revision,
            "generation": self._governance.generation,
            "applied_at": self._applied_at,
            "error": error,
            # The rules given in code, which etcd sections override: the panel edits a section
            # not yet in etcd starting from these, so a change never drops the code's rules.
            "baseline": self._baseline,
            # Where token-bucket cluster limits count: {"mode": "redis" | "local", "store",
            # "error"}; None without a store (split evenly).
            "cluster_limits": self._cluster_status(),
        }

    def _write_status(self, status: dict[str, Any]) -> None:
        """Never raises: an unreachable etcd delays a status report (the lease keeper writes it
        when etcd answers), it never stops the watcher. The key lives under this instance's own
        lease, so a killed instance's status goes with it."""
        self._status = status
        value = json.dumps(status)
        if self._status_key is None:
            if not self._running:  # an update run by hand, outside start/stop: no keeper
                try:
                    self._client.put(self.status_key, value)
                except EtcdError as exc:
                    _log.warning("could not write governance status %s: %s", self.status_key, exc)
                return
            self._status_key = LeasedKey(
                self._client, self.status_key, value, ttl=self._status_ttl,
                thread_name="telemetry-rules-status",
            ).start(write_now=True)  # fmt: skip
            return
        self._status_key.set(value)


_MAX_ERROR = 2000
"""Longest error message written to a status (characters)."""


def _bounded(raw: bytes | None, path: str, key: str) -> str | None:
    """``raw`` checked for size and nesting before its own parser sees it (None stays None)."""
    return None if raw is None else json_text(raw, path, source=key)


def _core(status: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """A status without its timestamp: what makes a new report worth writing."""
    if status is None:
        return None
    return (status["state"], status["revision"], status["generation"], status["error"])
