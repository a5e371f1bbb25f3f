"""What the panel's control plane reads back from a real etcd and real services: a change starts
from the section in force (the rules the services were given in code, which they report, then the
rules document, then the model's defaults), its rollout is confirmed per instance (applied,
rejected, pending, no status), and the services and their instances.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from panel_control_plane.support import APPLY_WITHIN, PAYMENT, StartInstance
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.discovery.instance import Instance, instance_key
from telemetry.governance.rules import GovernanceRules
from telemetry.panel.control_plane import AUDIT_PREFIX, ControlPlane, Rollout
from telemetry.panel.controls import set_breaker
from telemetry.testing._poll import poll

CODE_RULES = {
    "client": {
        "methods": {
            "*": {"bulkhead": {"max_concurrent": 5}, "retry": {"max_attempts": 2}, "idempotent": True},
            f"{PAYMENT}/*": {"bulkhead": {"max_concurrent": 2}, "fallback": {"mode": "default"}},
        }
    },
    "server": {"methods": {"*": {"rate_limit": {"limit": 500}}}},
}


def wait_rollout(
    plane: ControlPlane, service: str, revision: int, ready: Callable[[Rollout], bool], what: str
) -> Rollout:
    return poll(lambda: plane.rollout(service, revision), ready, APPLY_WITHIN, what)


# -- reading: what is in force, where, and who applied it -------------------------------------------


def test_a_breaker_flip_starts_from_the_rules_the_instances_were_given_in_code(
    plane: ControlPlane, service: str, instance: StartInstance
) -> None:
    tel = instance(service, "a", CODE_RULES)
    gov = tel.governance
    assert gov is not None
    baseline = GovernanceRules.from_dict(CODE_RULES).to_dict()
    assert plane.inherited(service, "client") == baseline["client"]
    assert plane.inherited(service, "server") == baseline["server"]

    change = plane.update(
        service, "client", set_breaker(f"{PAYMENT}/*", force="open"), actor="ada",
        reason="payment provider down",
    )  # fmt: skip
    assert change.written and change.before == baseline["client"]
    wait_rollout(plane, service, change.revision, lambda r: r.done, "the flip applied")

    methods = gov.rules.client.methods
    payment, star = methods[f"{PAYMENT}/*"], methods["*"]
    assert payment.breaker is not None and payment.breaker.force == "open"
    assert payment.bulkhead is not None and payment.bulkhead.max_concurrent == 2
    assert payment.fallback is not None and payment.fallback.mode == "default"
    assert star.breaker is None
    assert star.bulkhead is not None and star.bulkhead.max_concurrent == 5
    assert star.retry is not None and star.retry.max_attempts == 2 and star.idempotent
    rate_limit = gov.rules.server.methods["*"].rate_limit  # another section: untouched
    assert rate_limit is not None and rate_limit.limit == 500


def test_inherited_prefers_the_rules_document_then_the_model_default(
    plane: ControlPlane, service: str
) -> None:
    default = GovernanceRules().to_dict()
    assert plane.inherited(service, "adaptive") == default["adaptive"]
    assert plane.inherited(service, "enabled") is True
    assert plane.inherited(service, "faults") is None
    assert plane.inherited(service, "sampling") is None

    document = {"adaptive": {"enabled": True}, "enabled": False}
    plane.set(service, "rules", document, actor="ada")
    assert plane.inherited(service, "adaptive") == {"enabled": True}
    assert plane.inherited(service, "enabled") is False
    assert plane.inherited(service, "shedding") == default["shedding"]  # not in the document


def test_rollout_reports_applied_rejected_pending_and_no_status(
    client: EtcdClient, plane: ControlPlane, service: str, instance: StartInstance
) -> None:
    tel = instance(service, "a", {}, register=True)
    change = plane.set(service, "enabled", False, actor="ada")
    done = wait_rollout(plane, service, change.revision, lambda r: r.done, "applied by a")
    [a] = done.instances
    assert (a.instance_id, a.state, a.error) == ("a", "applied", None)
    assert a.revision >= change.revision and a.applied_at is not None
    assert done.summary() == f"1/1 instances of {service} applied revision {change.revision}"
    assert tel.governance is not None and not tel.governance.rules.enabled

    # Written around the validation: the instance refuses it, naming the field.
    bad = client.put(
        rules_key(service, "server"), json.dumps({"methods": {"*": {"rate_limit": {"limit": 0}}}})
    )
    refused = wait_rollout(plane, service, bad, lambda r: bool(r.refused), "refused by a")
    assert not refused.done
    [a] = refused.refused
    assert a.instance_id == "a" and a.error is not None
    assert a.error.startswith("rules.server.methods['*'].rate_limit.limit: must be > 0")
    assert f"a refused it: {a.error}" in refused.summary()
    assert plane.read(service, "server")[0] == {"methods": {"*": {"rate_limit": {"limit": 0}}}}

    # Fix it, then look ahead: a revision nobody has seen yet is pending.
    fixed = plane.set(service, "server", None, actor="ada", reason="undo the bad write")
    wait_rollout(plane, service, fixed.revision, lambda r: r.done, "the fix applied")
    ahead = plane.rollout(service, fixed.revision + 1000)
    assert [i.state for i in ahead.instances] == ["pending"] and not ahead.done

    # A registered instance without live rules (an older version, or governance off).
    instance(service, "b", None, register=True)
    mixed = wait_rollout(plane, service, fixed.revision, lambda r: len(r.instances) == 2, "b registered")
    assert [(i.instance_id, i.state) for i in mixed.instances] == [("a", "applied"), ("b", "no status")]
    assert not mixed.done
    assert plane.rollout(f"{service}-nobody", 1).instances == ()
    assert not plane.rollout(f"{service}-nobody", 1).done


def test_services_and_instances(
    client: EtcdClient, plane: ControlPlane, service: str, instance: StartInstance
) -> None:
    registered, governed, reporting = f"{service}-reg", f"{service}-gov", f"{service}-live"
    instance(registered, "r1", None, register=True)
    instance(reporting, "l1", {})  # reports a status, not registered
    plane.set(governed, "enabled", False, actor="ada")
    client.put(f"{AUDIT_PREFIX}{service}-audit-only/1", "{}")  # the audit names no service

    names = poll(plane.services, lambda n: registered in n, APPLY_WITHIN, "the registration")
    assert {registered, governed, reporting} <= set(names)
    assert f"{service}-audit-only" not in names
    assert names == sorted(names)

    client.put(instance_key(registered, "broken"), "not json")  # skipped, with a warning
    [found] = plane.instances(registered)
    assert isinstance(found, Instance) and found.id == "r1" and found.address.startswith("127.0.0.1:")
    assert plane.instances(governed) == []
