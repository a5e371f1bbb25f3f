"""Writing the control plane: validated changes to ``/governance/<service>/<key>``, each recorded
in an audit trail in the same etcd transaction, and the rollout of a change across instances.
The load generator's settings (``LOADGEN``/``LOAD``: ``/loadgen/settings``) are written the same way.

    plane = ControlPlane(client)
    change = plane.update("order", "client", set_breaker_force("demoshop.v1.Payment/*", "open"),
                          actor="ada", reason="payment provider down")
    plane.rollout("order", change.revision)      # which instances applied it, which refused (why)

A change is validated exactly as the instances will validate it (the rules model, the fault and
sampling parsers) before anything is written; an invalid one raises the instances' own error
naming the field (:class:`~telemetry.governance.rules.RuleError`, ``FaultError``) and writes
nothing. Updates are read-modify-write with a compare on the key's revision, so two operators
changing different parts of one section cannot lose each other's edit. The audit entry
(``/governance-audit/<service>/<time>``: who, when, which key, before, after, why) is written in
the same transaction as the change: there is no change without its record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from telemetry.control.faults import parse_faults
from telemetry.control.live_rules import (
    CLUSTER,
    DOCUMENT,
    FAULTS,
    GOVERNANCE_PREFIX,
    KEYS,
    SAMPLING,
    SECTIONS,
    STATUS_PREFIX,
    governance_prefix,
    parse_cluster,
    read_all_statuses,
    read_statuses,
    rules_key,
)
from telemetry.discovery.etcd import EtcdClient, KeyValue
from telemetry.discovery.instance import SERVICES_PREFIX, Instance, parse_registrations
from telemetry.governance.rules import GovernanceRules, RuleError
from telemetry.load.live import LOAD_SETTINGS_KEY
from telemetry.load.settings import parse_load
from telemetry.panel.autolimit import parse_autolimit
from telemetry.tracing.samplers import parse_sampling

__all__ = [
    "AUDIT_PREFIX", "AUTOLIMIT", "LOAD", "LOADGEN", "PANEL_PREFIX", "Change", "ConflictError",
    "ControlPlane", "InstanceRollout", "Rollout", "etcd_key", "validate",
]  # fmt: skip

_log = logging.getLogger("telemetry.panel")

AUDIT_PREFIX = "/governance-audit/"
PANEL_PREFIX = "/governance-panel/"
"""The panel's own settings per service (not read by the services): ``autolimit``."""
AUTOLIMIT = "autolimit"
LOADGEN, LOAD = "loadgen", "load"
"""The load generator's live settings: ``plane.set(LOADGEN, LOAD, ...)`` writes ``/loadgen/settings``."""
AUDIT_KEEP = 1000
"""Audit entries kept per service; older ones are pruned after a write."""

Transform = Callable[[Any], Any]
"""Current value of a key (parsed JSON, None when absent) -> the new value (None: delete)."""


class ConflictError(Exception):
    """The key kept changing under us (another writer); nothing was written."""


@dataclass(frozen=True, kw_only=True)
class Change:
    """One audited change of one key."""

    service: str
    key: str
    before: Any
    after: Any
    actor: str
    reason: str
    at: float
    revision: int
    """The etcd revision that holds it (0: nothing was written because nothing changed)."""

    @property
    def written(self) -> bool:
        return self.revision > 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "service": self.service,
                "key": self.key,
                "before": self.before,
                "after": self.after,
                "actor": self.actor,
                "reason": self.reason,
                "at": self.at,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes, revision: int) -> Change:
        data = json.loads(raw)
        return cls(
            service=str(data["service"]),
            key=str(data["key"]),
            before=data.get("before"),
            after=data.get("after"),
            actor=str(data.get("actor", "")),
            reason=str(data.get("reason", "")),
            at=float(data["at"]),
            revision=revision,
        )

    def summary(self) -> str:
        """One line for an annotation or a toast: ``order/client by ada: <what changed>``."""
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.service}/{self.key} by {self.actor or 'unknown'}{reason}: {describe(self)}"


@dataclass(frozen=True, kw_only=True)
class InstanceRollout:
    instance_id: str
    state: str
    """``applied`` (this revision or a later one), ``rejected``, ``pending``, or ``no status``
    (registered, but it reports no live rules: an older version, or governance off)."""
    revision: int = 0
    error: str | None = None
    applied_at: float | None = None
    cluster_mode: str | None = None
    """Where its token-bucket cluster limits count: ``redis`` (exact, shared), ``local`` (Redis
    unreachable: the even split), or None (no Redis configured: the even split)."""


@dataclass(frozen=True, kw_only=True)
class Rollout:
    service: str
    revision: int
    instances: tuple[InstanceRollout, ...]

    @property
    def done(self) -> bool:
        """Every instance applied it (and there is at least one)."""
        return bool(self.instances) and all(i.state == "applied" for i in self.instances)

    @property
    def refused(self) -> tuple[InstanceRollout, ...]:
        return tuple(i for i in self.instances if i.state == "rejected")

    def cluster_modes(self) -> str | None:
        """Where cluster limits count, for a caption (None: no instance has Redis configured)."""
        modes = [i.cluster_mode for i in self.instances]
        if not any(modes):
            return None
        counts = {m: modes.count(m) for m in ("redis", "local", None) if m in modes}
        words = {"redis": "Redis (exact)", "local": "local fallback (Redis unreachable)",
                 None: "even split (no Redis)"}  # fmt: skip
        return ", ".join(f"{words[m]} on {n}/{len(modes)}" for m, n in counts.items())

    def summary(self) -> str:
        applied = sum(i.state == "applied" for i in self.instances)
        text = (
            f"{applied}/{len(self.instances)} instances of {self.service} "
            f"applied revision {self.revision}"
        )
        for instance in self.refused:
            text += f"; {instance.instance_id} refused it: {instance.error}"
        return text


def etcd_key(service: str, key: str) -> str:
    """Where ``key`` of ``service`` lives: a control key, or one of the panel's own."""
    if key == AUTOLIMIT:
        governance_prefix(service)  # validates the name
        return f"{PANEL_PREFIX}{service}/{key}"
    if key == LOAD:
        return LOAD_SETTINGS_KEY
    return rules_key(service, key)


def validate(key: str, value: Any) -> None:
    """Raise the instances' own error (naming the field) if ``value`` is not valid for ``key``."""
    if value is None:
        return  # deleting a key falls back to the rules below it: always valid
    if key in SECTIONS:
        GovernanceRules.from_dict({key: value})
    elif key == DOCUMENT:
        if not isinstance(value, dict):
            raise RuleError("rules", f"must be an object, got {type(value).__name__}")
        GovernanceRules.from_dict(value)
    elif key == CLUSTER:
        parse_cluster(value)
    elif key == FAULTS:
        parse_faults(json.dumps(value))
    elif key == SAMPLING:
        parse_sampling(json.dumps(value))
    elif key == AUTOLIMIT:
        parse_autolimit(value)
    elif key == LOAD:
        parse_load(value)
    else:
        raise RuleError(key, "unknown governance key")


class ControlPlane:
    """Reads and writes one etcd's control plane. ``on_change`` is told of every written change
    (Grafana annotations); it must not raise, and is guarded anyway."""

    def __init__(
        self,
        client: EtcdClient,
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.client = client
        self._clock = clock
        self._on_change = on_change

    # -- reading --------------------------------------------------------------------------------

    def services(self) -> list[str]:
        """Every service that is registered, has rules, or reports a status."""
        names: set[str] = set()
        for prefix in (SERVICES_PREFIX, GOVERNANCE_PREFIX, STATUS_PREFIX):
            for kv in self.client.get_prefix(prefix).items:
                name = kv.key[len(prefix) :].split("/", 1)[0]
                if name:
                    names.add(name)
        return sorted(names)

    def read(self, service: str, key: str) -> tuple[Any, int]:
        """The key's value (parsed JSON; None when absent) and its mod revision (0 when absent).
        A value that is not JSON comes back as its text (the instances reject it meanwhile)."""
        kv = self.client.get(etcd_key(service, key))
        if kv is None:
            return None, 0
        try:
            return json.loads(kv.value), kv.mod_revision
        except ValueError:
            return kv.value.decode(errors="replace"), kv.mod_revision

    def inherited(self, service: str, key: str) -> Any:
        """What ``key`` is in force as while it is not set itself: for a section, the ``rules``
        document's, else the rules the service started with (its instances report them), else
        the model's default; for the other keys, None."""
        if key not in SECTIONS:
            return None
        document, _ = self.read(service, DOCUMENT)
        return _inherit(key, document, read_statuses(self.client, service))

    def in_force(self, service: str) -> dict[str, Any]:
        """Every control key of ``service`` as it is in force: its own value, else what it
        inherits (two reads, however many keys)."""
        values = self.sections(service)
        statuses = read_statuses(self.client, service)
        return {
            key: values[key] if values.get(key) is not None
            else _inherit(key, values.get(DOCUMENT), statuses)
            for key in KEYS
        }  # fmt: skip

    def instances(self, service: str) -> list[Instance]:
        """The registered instances of ``service`` (malformed registrations are skipped)."""
        return _instances(self.client.get_prefix(f"{SERVICES_PREFIX}{service}/").items).get(service, [])

    def registry(self) -> dict[str, list[Instance]]:
        """The registered instances of every service (one read)."""
        return _instances(self.client.get_prefix(SERVICES_PREFIX).items)

    def sections(self, service: str) -> dict[str, Any]:
        """Every control key set for ``service``: key -> value."""
        prefix = rules_key(service, DOCUMENT)[: -len(DOCUMENT)]
        values: dict[str, Any] = {}
        for kv in self.client.get_prefix(prefix).items:
            try:
                values[kv.key[len(prefix) :]] = json.loads(kv.value)
            except ValueError:
                values[kv.key[len(prefix) :]] = kv.value.decode(errors="replace")
        return values

    def audit(self, service: str | None = None, *, limit: int = 100) -> list[Change]:
        """The newest ``limit`` audited changes (of one service, or of all), newest first."""
        prefix = AUDIT_PREFIX if service is None else f"{AUDIT_PREFIX}{service}/"
        entries = []
        for kv in self.client.get_prefix(prefix).items:
            try:
                entries.append(Change.from_json(kv.value, kv.mod_revision))
            except (ValueError, KeyError, TypeError):
                _log.warning("skipping a malformed audit entry at %s", kv.key)
        entries.sort(key=lambda c: (c.at, c.revision), reverse=True)
        return entries[:limit]

    def rollout(
        self, service: str, revision: int, instances: Iterable[Instance] | None = None
    ) -> Rollout:
        """Where the change at ``revision`` stands on each instance of ``service`` (given its
        ``instances`` when already read)."""
        registered = self.instances(service) if instances is None else instances
        return _rollout(
            service, revision, {i.id for i in registered}, read_statuses(self.client, service)
        )

    def rollouts(
        self, revision: int = 0, registry: Mapping[str, list[Instance]] | None = None
    ) -> dict[str, Rollout]:
        """:meth:`rollout` of every service at once (two reads; one given the ``registry``)."""
        registry = self.registry() if registry is None else registry
        statuses = read_all_statuses(self.client)
        return {
            service: _rollout(
                service, revision, {i.id for i in registry.get(service, [])}, statuses.get(service, {})
            )
            for service in sorted(set(registry) | set(statuses))
        }

    # -- writing --------------------------------------------------------------------------------

    def update(
        self,
        service: str,
        key: str,
        transform: Transform,
        *,
        actor: str,
        reason: str = "",
        attempts: int = 5,
    ) -> Change:
        """Read ``key``, apply ``transform`` to its value, validate, write it with its audit entry.

        Raises the validation error (nothing written) or :class:`ConflictError` when the key
        changed under us on every attempt. A transform that changes nothing writes nothing
        (the returned change has revision 0)."""
        where = etcd_key(service, key)
        for _ in range(attempts):
            raw, mod_revision = self.read(service, key)
            before = raw if raw is not None else self.inherited(service, key)
            after = transform(_copy(before))
            validate(key, after)
            at = self._clock()
            change = Change(service=service, key=key, before=before, after=after, actor=actor,
                            reason=reason, at=at, revision=0)  # fmt: skip
            if after == raw or (raw is None and after == before):
                return change  # nothing to write
            # Time-ordered, and unique even for two changes in one microsecond.
            audit_key = f"{AUDIT_PREFIX}{service}/{int(at * 1e6):020d}-{secrets.token_hex(3)}"
            revision = self.client.put_if_unchanged(
                where,
                None if after is None else json.dumps(after, sort_keys=True),
                mod_revision=mod_revision,
                also_put=[(audit_key, change.to_json())],
            )
            if revision is None:
                continue  # someone else wrote the key: start again from their value
            written = dataclasses.replace(change, revision=revision)
            _log.info("control change at revision %d: %s", revision, written.summary())
            self._prune_audit(service)
            self._tell(written)
            return written
        raise ConflictError(f"{where} kept changing; nothing was written, try again")

    def set(self, service: str, key: str, value: Any, *, actor: str, reason: str = "") -> Change:
        """Replace ``key`` with ``value`` (None deletes it)."""
        return self.update(service, key, lambda _: value, actor=actor, reason=reason)

    def _prune_audit(self, service: str) -> None:
        prefix = f"{AUDIT_PREFIX}{service}/"
        try:
            keys = sorted(kv.key for kv in self.client.get_prefix(prefix).items)
            for key in keys[: max(0, len(keys) - AUDIT_KEEP)]:
                self.client.delete(key)
        except Exception:  # the change is written; pruning can wait for the next one
            _log.warning("could not prune the audit trail of %s", service, exc_info=True)

    def _tell(self, change: Change) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change)
        except Exception:  # an annotation must never undo or hide a change
            _log.warning("change listener failed for %s", change.summary(), exc_info=True)


def _inherit(key: str, document: Any, statuses: Mapping[str, Mapping[str, Any]]) -> Any:
    """``key`` from the ``rules`` document, else the instances' baseline, else the default."""
    if key not in SECTIONS:
        return None
    if isinstance(document, dict) and key in document:
        return document[key]
    for status in statuses.values():
        baseline = status.get("baseline")
        if isinstance(baseline, dict) and key in baseline:
            return baseline[key]
    return GovernanceRules().to_dict()[key]


def _instances(items: Iterable[KeyValue]) -> dict[str, list[Instance]]:
    """Registrations by service, sorted by id (malformed ones skipped with a warning)."""
    return parse_registrations(((kv.key, kv.value) for kv in items), _log)


def _rollout(
    service: str, revision: int, registered: set[str], statuses: Mapping[str, Mapping[str, Any]]
) -> Rollout:
    instances = []
    for instance_id in sorted(registered | set(statuses)):
        status = statuses.get(instance_id)
        if status is None:
            instances.append(InstanceRollout(instance_id=instance_id, state="no status"))
            continue
        seen = int(status.get("revision") or 0)
        applied_at = status.get("applied_at")
        instances.append(
            InstanceRollout(
                instance_id=instance_id,
                state="pending" if seen < revision else str(status.get("state")),
                revision=seen,
                error=status.get("error"),
                applied_at=float(applied_at) if isinstance(applied_at, int | float) else None,
                cluster_mode=_cluster_mode(status.get("cluster_limits")),
            )
        )
    return Rollout(service=service, revision=revision, instances=tuple(instances))


def _cluster_mode(reported: Any) -> str | None:
    mode = reported.get("mode") if isinstance(reported, dict) else None
    return mode if mode in ("redis", "local") else None  # anything else written there: none


def describe(change: Change) -> str:
    """What changed, as a short diff of the JSON values (``a.b: 1 -> 2``)."""
    diffs = list(_diff(change.before, change.after, ""))
    if not diffs:
        return "no change"
    text = "; ".join(diffs[:6])
    return text + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")


def _diff(before: Any, after: Any, path: str) -> Any:
    if isinstance(before, dict) and isinstance(after, dict):
        for name in sorted(set(before) | set(after), key=str):
            yield from _diff(before.get(name), after.get(name), f"{path}.{name}" if path else str(name))
    elif before != after:
        where = path or "value"
        if before is None:
            yield f"{where} set to {json.dumps(after)}"
        elif after is None:
            yield f"{where} removed (was {json.dumps(before)})"
        else:
            yield f"{where}: {json.dumps(before)} -> {json.dumps(after)}"


def _copy(value: Any) -> Any:
    """A deep copy of JSON data, so a transform may edit what it is given."""
    return json.loads(json.dumps(value)) if value is not None else None
