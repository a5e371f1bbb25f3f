"""The panel's control plane against a real etcd and real services.

Every change is validated, written with its audit entry in one transaction (read-modify-write with
a compare on the key's revision, retried when another writer got there first), starts from the
section in force (the rules the services were given in code, which they report), and is confirmed
per instance. The panel's HTTP clients (Prometheus, Grafana annotations) are checked against tiny
local HTTP servers: their failures are one readable error, never a crash.
Each test uses its own service names, so tests sharing the module's etcd do not see each other.
"""

from __future__ import annotations

import base64
import http.server
import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from helpers import make_config
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.control.faults import FaultError
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.discovery.instance import Instance, instance_key
from telemetry.governance.rules import GovernanceRules, RuleError
from telemetry.panel import control_plane
from telemetry.panel.annotations import GrafanaAnnotator
from telemetry.panel.control_plane import (
    AUDIT_PREFIX,
    AUTOLIMIT,
    Change,
    ConflictError,
    ControlPlane,
    Rollout,
)
from telemetry.panel.controls import set_breaker, set_enabled, set_rate_limit
from telemetry.panel.follower import FOLLOWER_ACTOR, ThresholdFollower
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus, PrometheusError
from telemetry.panel.thresholds import LoadPoint, recommend_limit
from telemetry.testing._poll import poll
from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.ports import free_port

PAYMENT = "demoshop.v1.Payment"
APPLY_WITHIN = 5.0  # seconds; the watch is push-based, this is only a ceiling for slow CI
CODE_RULES = {
    "client": {
        "methods": {
            "*": {"bulkhead": {"max_concurrent": 5}, "retry": {"max_attempts": 2}, "idempotent": True},
            f"{PAYMENT}/*": {"bulkhead": {"max_concurrent": 2}, "fallback": {"mode": "default"}},
        }
    },
    "server": {"methods": {"*": {"rate_limit": {"limit": 500}}}},
}

StartInstance = Callable[..., telemetry.Telemetry]


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    yield server
    server.close()


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,), timeout=2.0))
    yield client
    client.close()


@pytest.fixture
def plane(client: EtcdClient) -> ControlPlane:
    return ControlPlane(client)


@pytest.fixture
def service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def instance(etcd: EtcdServer) -> Iterator[StartInstance]:
    """Start a real service handle on the module's etcd: ``instance(service, "a", rules)``
    (``governance=None``: no live rules, like an older version)."""
    started: list[telemetry.Telemetry] = []

    def start(
        service: str, instance_id: str, governance: Any = None, *, register: bool = False
    ) -> telemetry.Telemetry:
        tel = telemetry.Telemetry(
            make_config(service), registry=CollectorRegistry(), governance=governance,
            etcd=etcd.endpoint, instance_id=instance_id,
        )  # fmt: skip
        started.append(tel)
        if tel.live_rules is not None:
            assert tel.live_rules.wait_ready(APPLY_WITHIN), "live rules did not read etcd"
        if register:
            tel.register(f"127.0.0.1:{free_port()}")
        return tel

    yield start
    for tel in started:
        tel.shutdown()


def audit_entries(client: EtcdClient, service: str) -> list[tuple[int, dict[str, Any]]]:
    """(mod revision, entry) of every audit entry of ``service``, as stored."""
    items = client.get_prefix(f"{AUDIT_PREFIX}{service}/").items
    return [(kv.mod_revision, json.loads(kv.value)) for kv in items]


def stored(client: EtcdClient, service: str, key: str) -> Any:
    kv = client.get(rules_key(service, key))
    return None if kv is None else json.loads(kv.value)


def wait_rollout(
    plane: ControlPlane, service: str, revision: int, ready: Callable[[Rollout], bool], what: str
) -> Rollout:
    return poll(lambda: plane.rollout(service, revision), ready, APPLY_WITHIN, what)


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


# -- the automatic limit ----------------------------------------------------------------------------


@dataclass
class MM1Curve:
    """Stands in for :class:`LiveQueries` (Prometheus) with the load curve of an M/M/1 service of
    capacity ``mu`` calls/s: p99 = ln(100) / (mu - throughput)."""

    mu: float
    asked: list[str] = field(default_factory=list)

    def load_curve(self, service: str, minutes: int) -> list[LoadPoint]:
        self.asked.append(service)
        loads = [self.mu * f / 100 for f in range(5, 96, 5)]
        return [LoadPoint(load, math.log(100) / (self.mu - load)) for load in loads]


def test_the_follower_writes_the_recommended_cluster_limit_within_bounds(
    client: EtcdClient, plane: ControlPlane, service: str, instance: StartInstance
) -> None:
    tel = instance(service, "a", {})
    curve = MM1Curve(mu=100)
    follower = ThresholdFollower(plane, cast(LiveQueries, curve))
    recommended = recommend_limit(curve.load_curve(service, 15)).limit
    assert recommended == 33.0
    curve.asked.clear()

    def mine() -> list[Any]:
        return [r for r in follower.step() if r.service == service]

    assert mine() == []  # autolimit unset: off
    plane.set(service, AUTOLIMIT, {"enabled": False, "minimum": 1, "maximum": 1000}, actor="ada")
    assert mine() == []
    assert stored(client, service, "cluster") is None and service not in curve.asked

    plane.set(service, AUTOLIMIT, {"enabled": True, "minimum": 1, "maximum": 1000}, actor="ada")
    [result] = mine()
    assert result.change is not None and result.change.actor == FOLLOWER_ACTOR
    assert result.change.reason == result.recommendation.reason
    assert stored(client, service, "cluster") == {"*": 33.0}
    assert plane.audit(service)[0] == result.change

    curve.mu = 105  # recommends 35: within 10% of 33, not rewritten for noise
    [result] = mine()
    assert result.recommendation.limit == 35.0 and result.change is None
    assert stored(client, service, "cluster") == {"*": 33.0}
    assert len(plane.audit(service)) == 3  # two autolimit settings and one follow

    plane.set(service, AUTOLIMIT, {"enabled": True, "minimum": 1, "maximum": 20}, actor="ada")
    [result] = mine()
    assert result.change is not None and result.change.written
    assert stored(client, service, "cluster") == {"*": 20.0}  # clamped to the maximum
    assert mine()[0].change is None  # the same again: nothing written

    gov = tel.governance
    assert gov is not None
    poll(
        lambda: gov.rules.server.methods.get("*"),
        lambda rule: rule is not None and rule.rate_limit is not None and rule.rate_limit.limit == 20,
        APPLY_WITHIN,
        "the instance's share of the cluster limit",
    )


# -- HTTP clients: Prometheus and Grafana ------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHTTP:
    """A local HTTP server answering every request with ``status`` and ``body`` (``raw``: bytes
    sent as they are, not HTTP), recording what it was sent."""

    status: int = 200
    body: bytes = b"{}"
    raw: bytes | None = None
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_http() -> Iterator[FakeHTTP]:
    fake = FakeHTTP()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fake.requests.append(
                Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            if fake.raw is not None:
                self.wfile.write(fake.raw)
                return
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), name="fake-http", daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_prometheus_unreachable() -> None:
    prometheus = Prometheus(closed_url(), timeout=1.0)
    with pytest.raises(PrometheusError, match="is unreachable"):
        prometheus.query("up")
    reason = prometheus.healthy()
    assert reason is not None and "unreachable" in reason


def test_prometheus_errors_carry_its_own_message(fake_http: FakeHTTP) -> None:
    prometheus = Prometheus(fake_http.url + "/", timeout=2.0)
    fake_http.status, fake_http.body = 400, b'{"status":"error","error":"parse error"}'
    with pytest.raises(PrometheusError, match="parse error") as raised:
        prometheus.query("rate(")
    assert str(raised.value) == "Prometheus refused the query: parse error"
    assert prometheus.healthy() == "Prometheus refused the query: parse error"
    assert fake_http.requests[0].path == "/api/v1/query?query=rate%28"

    fake_http.status, fake_http.body = 503, b"Service Unavailable"
    with pytest.raises(PrometheusError, match="answered HTTP 503"):
        prometheus.query("up")
    fake_http.status, fake_http.body = 200, b"<html>a proxy's login page</html>"
    with pytest.raises(PrometheusError, match="unreachable"):
        prometheus.query("up")
    fake_http.body = b"[]"
    with pytest.raises(PrometheusError, match="something else than its JSON"):
        prometheus.query("up")
    fake_http.body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
    with pytest.raises(PrometheusError, match="expected a vector, got 'matrix'"):
        prometheus.query("up")
    fake_http.raw = b"not http at all\r\n\r\n"
    with pytest.raises(PrometheusError, match="unreachable"):
        prometheus.query("up")


def test_prometheus_answers_are_parsed(fake_http: FakeHTTP) -> None:
    prometheus = Prometheus(fake_http.url)
    fake_http.body = json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "order"}, "value": [1700000000, "12.5"]},
            {"metric": {"job": "cart"}, "value": [1700000000, "NaN"]},
        ]}}
    ).encode()  # fmt: skip
    [sample] = prometheus.query("up")
    assert sample.labels == {"job": "order"} and sample.value == 12.5
    assert prometheus.healthy() is None
    fake_http.body = json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "order"}, "values": [[1, "1"], [2, "+Inf"], [3, "3"]]},
        ]}}
    ).encode()  # fmt: skip
    [series] = prometheus.query_range("up", start=1, end=3, step=1)
    assert series.points == ((1.0, 1.0), (3.0, 3.0))


def a_change() -> Change:
    return Change(
        service="order", key="client", before={"x": 1}, after={"x": 2}, actor="ada",
        reason="drill", at=1700000000.25, revision=42,
    )  # fmt: skip


def test_grafana_unreachable_is_remembered_never_raised() -> None:
    annotator = GrafanaAnnotator(closed_url(), token="t", timeout=1.0)
    assert annotator.post(a_change()) is False
    assert annotator.last_error is not None
    assert annotator.last_error.startswith("Grafana annotation failed")


def test_grafana_speaking_no_http_is_remembered_never_raised(fake_http: FakeHTTP) -> None:
    fake_http.raw = b"SSH-2.0-OpenSSH_9.6\r\n\r\n"
    annotator = GrafanaAnnotator(fake_http.url, timeout=2.0)
    assert annotator.post(a_change()) is False
    assert annotator.last_error is not None


def test_grafana_annotation_body_and_auth(fake_http: FakeHTTP) -> None:
    change = a_change()
    bearer = GrafanaAnnotator(fake_http.url + "/", token="glsa_secret")
    assert bearer.post(change) is True and bearer.last_error is None
    [request] = fake_http.requests
    assert (request.method, request.path) == ("POST", "/api/annotations")
    assert request.headers["Authorization"] == "Bearer glsa_secret"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "time": 1700000000250,
        "tags": ["governance", "order", "client"],
        "text": "order/client by ada (drill): x: 1 -> 2",
    }

    basic = GrafanaAnnotator(fake_http.url, basic_auth=("admin", "p@ss:word"))
    assert basic.post(change)
    expected = base64.b64encode(b"admin:p@ss:word").decode()
    assert fake_http.requests[1].headers["Authorization"] == f"Basic {expected}"

    fake_http.status, fake_http.body = 401, b'{"message":"invalid API key"}'
    assert bearer.post(change) is False
    assert bearer.last_error is not None and "401" in bearer.last_error


def test_every_written_change_is_annotated_in_the_background(
    client: EtcdClient, service: str, fake_http: FakeHTTP
) -> None:
    annotator = GrafanaAnnotator(fake_http.url, token="t")
    plane = ControlPlane(client, on_change=annotator)
    change = plane.update(
        service, "client", set_breaker(f"{PAYMENT}/*", force="open"), actor="ada", reason="drill"
    )
    plane.update(service, "client", set_breaker(f"{PAYMENT}/*", force="open"), actor="ada")  # no-op
    [request] = poll(lambda: list(fake_http.requests), bool, APPLY_WITHIN, "the annotation")
    body = json.loads(request.body)
    assert body["tags"] == ["governance", service, "client"]
    assert body["text"] == change.summary()
    assert body["text"].endswith(f'methods.{PAYMENT}/* set to {{"breaker": {{"force": "open"}}}}')
    assert len(fake_http.requests) == 1  # the change that changed nothing is not annotated
