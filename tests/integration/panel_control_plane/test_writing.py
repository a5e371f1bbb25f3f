"""The panel's control plane writing to a real etcd: every change is validated and written with its
audit entry in one transaction (read-modify-write with a compare on the key's revision, retried
when another writer got there first, a conflict when the key keeps changing), a change that
changes nothing writes nothing, a failing change listener does not fail the update, and the audit
trail is pruned, newest first, per service.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from panel_control_plane.support import PAYMENT, stored
from telemetry.control.faults import FaultError
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance.rules import RuleError
from telemetry.panel import control_plane
from telemetry.panel.control_plane import AUDIT_PREFIX, Change, ConflictError, ControlPlane
from telemetry.panel.controls import set_breaker, set_enabled, set_rate_limit


def audit_entries(client: EtcdClient, service: str) -> list[tuple[int, dict[str, Any]]]:
    """(mod revision, entry) of every audit entry of ``service``, as stored."""
    items = client.get_prefix(f"{AUDIT_PREFIX}{service}/").items
    return [(kv.mod_revision, json.loads(kv.value)) for kv in items]


# -- writing ----------------------------------------------------------------------------------------


def test_an_update_writes_the_key_and_its_audit_entry_in_one_transaction(
    client: EtcdClient, plane: ControlPlane, service: str
) -> None:
    change = plane.update(
        service, "server", set_rate_limit("*", {"limit": 50}), actor="ada", reason="traffic spike"
    )
    assert change.written and change.revision > 0
    assert change.before == {"methods": {}}  # the model's default: no instance, no document
    assert change.after == {"methods": {"*": {"rate_limit": {"limit": 50}}}}

    kv = client.get(rules_key(service, "server"))
    assert kv is not None and kv.mod_revision == change.revision
    assert json.loads(kv.value) == change.after
    [(revision, entry)] = audit_entries(client, service)
    assert revision == change.revision  # the same transaction
    assert entry == {
        "service": service, "key": "server", "actor": "ada", "reason": "traffic spike",
        "before": {"methods": {}}, "after": change.after, "at": change.at,
    }  # fmt: skip
    assert plane.read(service, "server") == (change.after, change.revision)
    assert plane.sections(service) == {"server": change.after}

    # The next change starts from the stored value; deleting a key is a change too.
    second = plane.update(service, "server", set_rate_limit("*", {"limit": 60}), actor="bob")
    assert second.before == change.after and second.revision > change.revision
    gone = plane.set(service, "server", None, actor="bob", reason="back to the code's rules")
    assert gone.written and gone.after is None
    assert client.get(rules_key(service, "server")) is None
    assert len(audit_entries(client, service)) == 3


def test_a_transform_that_changes_nothing_writes_nothing(client: EtcdClient, service: str) -> None:
    told: list[Change] = []
    plane = ControlPlane(client, on_change=told.append)
    _, before = client.revision()
    change = plane.update(service, "enabled", set_enabled(True), actor="ada")  # True by default
    assert change.revision == 0 and not change.written
    assert change.before is True and change.after is True
    assert client.get(rules_key(service, "enabled")) is None
    assert audit_entries(client, service) == []
    assert client.revision()[1] == before
    assert told == []

    written = plane.update(service, "enabled", set_enabled(False), actor="ada")
    again = plane.update(service, "enabled", set_enabled(False), actor="ada")
    assert written.written and not again.written
    assert len(audit_entries(client, service)) == 1
    assert told == [written]


def test_an_invalid_value_raises_and_writes_nothing(
    client: EtcdClient, plane: ControlPlane, service: str
) -> None:
    with pytest.raises(RuleError) as raised:
        plane.update(service, "server", set_rate_limit("*", {"limit": 0}), actor="ada")
    assert str(raised.value).startswith("rules.server.methods['*'].rate_limit.limit: must be > 0")
    with pytest.raises(FaultError, match=r"faults\.\*\.error_rate: must be between 0 and 1"):
        plane.set(service, "faults", {"*": {"error_rate": 2}}, actor="ada")
    with pytest.raises(RuleError, match=r"sampling\.ratio"):
        plane.set(service, "sampling", {"ratio": 3}, actor="ada")
    assert plane.sections(service) == {}
    assert audit_entries(client, service) == []


def test_a_concurrent_writer_is_not_overwritten(
    client: EtcdClient, plane: ControlPlane, service: str
) -> None:
    """The other operator's edit lands between our read and our write: the compare on the key's
    revision fails, the update reads again and applies our edit on top of theirs."""
    theirs = {"methods": {"*": {"bulkhead": {"max_concurrent": 3}}}}
    calls: list[Any] = []
    flip = set_breaker(f"{PAYMENT}/*", force="open")

    def racing(section: Any) -> Any:
        calls.append(section)
        if len(calls) == 1:
            client.put(rules_key(service, "client"), json.dumps(theirs))
        return flip(section)

    change = plane.update(service, "client", racing, actor="ada")
    assert len(calls) == 2 and calls[1] == theirs
    assert stored(client, service, "client") == change.after
    assert change.after == {
        "methods": {
            "*": {"bulkhead": {"max_concurrent": 3}},  # their edit, and ours on top of it:
            f"{PAYMENT}/*": {"bulkhead": {"max_concurrent": 3}, "breaker": {"force": "open"}},
        }
    }
    [(_, entry)] = audit_entries(client, service)
    assert entry["before"] == theirs


def test_a_key_that_keeps_changing_raises_conflict_and_writes_nothing(
    client: EtcdClient, plane: ControlPlane, service: str
) -> None:
    calls: list[int] = []

    def always_racing(section: Any) -> Any:
        calls.append(1)
        client.put(rules_key(service, "cluster"), json.dumps({"*": len(calls)}))
        return {"*": 999}

    with pytest.raises(ConflictError, match="kept changing"):
        plane.update(service, "cluster", always_racing, actor="ada", attempts=3)
    assert len(calls) == 3
    assert stored(client, service, "cluster") == {"*": 3}  # the other writer's last value
    assert audit_entries(client, service) == []


def test_a_failing_change_listener_does_not_fail_the_update(client: EtcdClient, service: str) -> None:
    told: list[Change] = []

    def broken(change: Change) -> None:
        told.append(change)
        raise RuntimeError("grafana exploded")

    plane = ControlPlane(client, on_change=broken)
    change = plane.update(service, "cluster", lambda _: {"*": 100}, actor="ada")
    assert change.written and told == [change]
    assert stored(client, service, "cluster") == {"*": 100}


def test_the_audit_trail_is_pruned_to_the_newest_entries(
    client: EtcdClient, plane: ControlPlane, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_plane, "AUDIT_KEEP", 3)
    for total in range(1, 6):
        plane.set(service, "cluster", {"*": total}, actor="ada")
    kept = plane.audit(service)
    assert [c.after for c in kept] == [{"*": 5}, {"*": 4}, {"*": 3}]
    assert len(client.get_prefix(f"{AUDIT_PREFIX}{service}/").items) == 3


def test_audit_is_newest_first_and_filters_by_service(plane: ControlPlane, service: str) -> None:
    other = f"{service}-other"
    first = plane.set(service, "enabled", False, actor="ada", reason="drill")
    second = plane.set(other, "sampling", {"ratio": 0.5}, actor="bob")
    third = plane.set(service, "cluster", {"*": 40}, actor="cy")

    mine = plane.audit(service)
    assert mine == [third, first]
    assert [c.revision for c in mine] == [third.revision, first.revision]
    everyone = [c for c in plane.audit() if c.service in (service, other)]
    assert everyone == [third, second, first]
    assert plane.audit(service, limit=1) == [third]
    assert plane.audit(f"{service}-nobody") == []
