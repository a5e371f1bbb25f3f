"""Live governance rules and faults against a real etcd, on real loopback servers.

Rules written to etcd reach every instance's Governance through its LiveRules watcher, each
instance reports what it did under /governance-status/, invalid rules are refused with the field
named while the previous ones stay, an etcd outage changes nothing and the watch resumes after it,
cluster-wide limits are split across the live instances, injected faults reach real calls, and the
trace sampling follows its key (new traces only: a sampled parent is still followed).
Each test uses its own service name, so tests sharing the module's etcd do not see each other.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from conftest import Service
from echo_service import SyncEcho
from helpers import make_config, metric_value, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.control import (
    FAULT_KEY,
    Fault,
    FaultError,
    FaultInjector,
    LiveRules,
    read_statuses,
    rules_key,
    status_key,
)
from telemetry.discovery.etcd import EtcdClient, EtcdConfig, EtcdError
from telemetry.governance import Governance
from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side
from telemetry.testing import SpanCapture
from telemetry.testing.etcd_server import EtcdServer
from telemetry.tracing.samplers import LiveSampler

ECHO = "telemetry.test.Echo"
APPLY_WITHIN = 2.0  # seconds: the panel's promise is one; the watcher is push-based
LIMIT_50 = {"methods": {"*": {"rate_limit": {"algorithm": "token_bucket", "limit": 50}}}}

StartLive = Callable[..., LiveRules]


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    yield server
    server.close()


def etcd_client(server: EtcdServer) -> EtcdClient:
    return EtcdClient(EtcdConfig(endpoints=(server.endpoint,), timeout=1.0))


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    client = etcd_client(etcd)
    yield client
    client.close()


@pytest.fixture
def service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def live_starter(client: EtcdClient, started: list[LiveRules]) -> StartLive:
    def start(governance: Governance, service: str, instance_id: str = "a", **kw: Any) -> LiveRules:
        live = LiveRules(client, governance, service=service, instance_id=instance_id, **kw)
        started.append(live.start())
        assert live.wait_ready(5), "LiveRules did not read etcd"
        return live

    return start


@pytest.fixture
def live(client: EtcdClient) -> Iterator[StartLive]:
    started: list[LiveRules] = []
    yield live_starter(client, started)
    for item in started:
        item.stop()


def put(client: EtcdClient, service: str, section: str, value: Any) -> int:
    return client.put(rules_key(service, section), json.dumps(value))


def status(client: EtcdClient, service: str, instance_id: str = "a") -> dict[str, Any] | None:
    kv = client.get(status_key(service, instance_id))
    return None if kv is None else json.loads(kv.value)


def wait_status(
    client: EtcdClient, service: str, revision: int, state: str, instance_id: str = "a"
) -> dict[str, Any]:
    """The status reporting ``state`` for ``revision`` or later (status writes bump etcd's
    revision too, so only the revisions ``put`` returned are known exactly)."""
    wait_until(
        lambda: (
            (s := status(client, service, instance_id)) is not None
            and s["revision"] >= revision
            and s["state"] == state
        ),
        APPLY_WITHIN,
        f"status {state} at revision {revision}",
    )
    found = status(client, service, instance_id)
    assert found is not None
    return found


def server_limit(gov: Governance, pattern: str = "*") -> float | None:
    rule = gov.rules.server.methods.get(pattern)
    return None if rule is None or rule.rate_limit is None else rule.rate_limit.limit


# -- rules ----------------------------------------------------------------------------------------


def test_a_rule_written_to_etcd_is_applied_and_reported(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    gov = Governance()
    live(gov, service)
    first = status(client, service)
    assert first is not None and first["state"] == "applied" and first["error"] is None

    before = time.time()
    revision = put(client, service, "server", LIMIT_50)
    wait_until(lambda: server_limit(gov) == 50, APPLY_WITHIN, "limit 50 in force")

    reported = wait_status(client, service, revision, "applied")
    assert reported["generation"] == gov.generation
    assert reported["error"] is None
    assert before - 1 <= reported["applied_at"] <= time.time() + 1


def test_two_instances_both_apply_and_report(client: EtcdClient, live: StartLive, service: str) -> None:
    gov_a, gov_b = Governance(), Governance()
    live(gov_a, service, "a")
    live(gov_b, service, "b")

    revision = put(client, service, "server", LIMIT_50)
    wait_until(
        lambda: server_limit(gov_a) == 50 and server_limit(gov_b) == 50, APPLY_WITHIN, "both apply"
    )
    wait_status(client, service, revision, "applied", "a")
    wait_status(client, service, revision, "applied", "b")
    statuses = read_statuses(client, service)
    assert set(statuses) == {"a", "b"}
    assert {s["revision"] for s in statuses.values()} == {revision}


def test_an_invalid_rule_is_refused_and_the_previous_rules_stay(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    gov = Governance()
    live(gov, service)
    good = put(client, service, "server", LIMIT_50)
    applied = wait_status(client, service, good, "applied")
    generation = gov.generation

    bad = put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 0}}}})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"].startswith("rules.server.methods['*'].rate_limit.limit: must be > 0")
    assert rejected["applied_at"] == applied["applied_at"]
    assert rejected["generation"] == generation == gov.generation
    assert server_limit(gov) == 50

    not_json = client.put(rules_key(service, "adaptive"), "{enabled: true")
    rejected = wait_status(client, service, not_json, "rejected")
    assert rejected["error"].startswith(f"rules.adaptive: not valid JSON in /governance/{service}/")
    fixed = put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 7}}}})
    rejected = wait_status(client, service, fixed, "rejected")  # the document is one whole
    assert rejected["error"].startswith("rules.adaptive: not valid JSON")

    unknown = client.put(f"/governance/{service}/adaptiv", "{}")
    client.delete(rules_key(service, "adaptive"))
    rejected = wait_status(client, service, unknown + 1, "rejected")  # after the delete
    assert rejected["error"].startswith(f"/governance/{service}/adaptiv: unknown governance key")
    assert server_limit(gov) == 50 and gov.generation == generation

    client.delete(f"/governance/{service}/adaptiv")
    wait_until(
        lambda: server_limit(gov) == 7 and (s := status(client, service)) and s["state"] == "applied",
        APPLY_WITHIN,
        "the fixed rules in force and reported",
    )


def test_hostile_values_are_rejected_naming_the_problem_and_the_rules_stay(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    gov = Governance()
    live(gov, service)
    applied = wait_status(client, service, put(client, service, "server", LIMIT_50), "applied")
    generation = gov.generation

    # 100,000 levels: json.loads would raise RecursionError; refused before it parses.
    deep = client.put(rules_key(service, "server"), "[" * 100_000 + "]" * 100_000)
    rejected = wait_status(client, service, deep, "rejected")
    assert rejected["error"] == (
        f"rules.server: nesting too deep in /governance/{service}/server (more than 32 levels)"
    )
    assert server_limit(gov) == 50 and gov.generation == generation

    # Sub-normal: 1 / 1e-310 is infinite, and an infinite interval would admit every call.
    tiny = put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 1e-310}}}})
    rejected = wait_status(client, service, tiny, "rejected")
    assert rejected["error"] == (
        "rules.server.methods['*'].rate_limit.limit: must be >= 0.001, got 1e-310"
    )
    assert rejected["applied_at"] == applied["applied_at"]
    assert server_limit(gov) == 50 and gov.generation == generation


def test_a_section_write_flips_governance_off_on_a_real_server(
    client: EtcdClient, live: StartLive, service: str, sync_service: Callable[..., Any]
) -> None:
    # One call per hour: the second call is refused while governance is on.
    gov = Governance(
        {"server": {"methods": {"*": {"rate_limit": {"algorithm": "fixed_window", "limit": 1,
                                                     "window": 3600}}}}}
    )  # fmt: skip
    echo = sync_service("flip", governance=gov)
    live(gov, service)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(echo.target))
    stub.Unary(echo_pb2.EchoRequest(text="first"), timeout=5)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="limited"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    put(client, service, "enabled", False)
    wait_until(lambda: not gov.rules.enabled, APPLY_WITHIN, "governance off")
    assert server_limit(gov) == 1  # the other sections are untouched
    for _ in range(3):
        stub.Unary(echo_pb2.EchoRequest(text="free"), timeout=5)

    client.delete(rules_key(service, "enabled"))  # back to the rules given in code
    wait_until(lambda: gov.rules.enabled, APPLY_WITHIN, "governance on again")
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="limited"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_sections_override_the_whole_document(client: EtcdClient, live: StartLive, service: str) -> None:
    gov = Governance()
    live(gov, service)
    put(client, service, "rules", {"enabled": False, "server": LIMIT_50})
    wait_until(lambda: server_limit(gov) == 50 and not gov.rules.enabled, APPLY_WITHIN, "document")
    put(client, service, "enabled", True)
    wait_until(lambda: gov.rules.enabled, APPLY_WITHIN, "the section wins")
    assert server_limit(gov) == 50


def test_etcd_outage_keeps_the_rules_and_the_watch_resumes(service: str) -> None:
    with EtcdServer() as own:  # its own etcd: the module's stays up for the other tests
        client = etcd_client(own)
        count = [2]
        gov = Governance()
        live = LiveRules(
            client, gov, service=service, instance_id="a", instance_count=lambda: count[0]
        ).start()
        try:
            assert live.wait_ready(5)
            put(client, service, "cluster", {"*": 100})
            wait_until(lambda: server_limit(gov) == 50, APPLY_WITHIN, "cluster limit applied")

            own.stop()
            assert server_limit(gov) == 50
            count[0] = 4
            live.refresh()  # applies locally; its status write fails quietly
            assert server_limit(gov) == 25
            assert live.status is not None and live.status["state"] == "applied"

            own.start()
            revisions: list[int] = []

            def write() -> bool:  # the client's channel reconnects with its own backoff
                try:
                    revisions.append(put(client, service, "enabled", False))
                except EtcdError:
                    return False
                return True

            wait_until(write, 5.0, "etcd accepting writes again")
            revision = revisions[0]
            wait_until(lambda: not gov.rules.enabled, 5.0, "a rule written after the restart")
            assert server_limit(gov) == 25
            wait_status(client, service, revision, "applied")
        finally:
            live.stop()
            client.close()


def test_cluster_limits_are_split_across_live_instances(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    count = [4]
    gov = Governance()
    live_rules = live(gov, service, instance_count=lambda: count[0])
    put(
        client,
        service,
        "server",
        {"methods": {f"{ECHO}/Unary": {"rate_limit": {"algorithm": "fixed_window", "limit": 1,
                                                       "window": 60}}}},
    )  # fmt: skip
    revision = put(client, service, "cluster", {"*": 100, f"{ECHO}/Unary": 40})
    wait_until(lambda: server_limit(gov) == 25, APPLY_WITHIN, "100 / 4 instances")
    wait_status(client, service, revision, "applied")
    created = gov.rules.server.methods["*"].rate_limit
    assert created is not None and created.algorithm == "token_bucket" and created.window == 1.0
    kept = gov.rules.server.methods[f"{ECHO}/Unary"].rate_limit
    assert kept is not None and (kept.algorithm, kept.window, kept.limit) == ("fixed_window", 60, 10)

    generation = gov.generation
    live_rules.refresh()  # same count: nothing to re-apply
    assert gov.generation == generation
    count[0] = 2
    live_rules.refresh()
    assert server_limit(gov) == 50 and server_limit(gov, f"{ECHO}/Unary") == 20
    count[0] = 0  # no instance registered (yet): this one still counts
    live_rules.refresh()
    assert server_limit(gov) == 100

    bad = put(client, service, "cluster", {"*": 0})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"].startswith("cluster.*: must be > 0")
    assert server_limit(gov) == 100


def test_rate_limits_marked_cluster_are_split_across_live_instances(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    count = [4]
    gov = Governance()
    live_rules = live(gov, service, instance_count=lambda: count[0])
    put(client, service, "server", {"methods": {"*": {"rate_limit": {"limit": 100, "cluster": True}}}})
    wait_until(lambda: server_limit(gov) == 25, APPLY_WITHIN, "100 / 4 instances")
    count[0] = 5
    live_rules.refresh()
    assert server_limit(gov) == 20  # the total is split again, not the previous share


# -- faults ---------------------------------------------------------------------------------------


@pytest.fixture
def faulty_server() -> Iterator[tuple[str, FaultInjector, CollectorRegistry]]:
    """A real sync Echo server with the full concern chain and fault injection last (as the
    handle will build it); a cycling random source makes error_rate 0.5 deterministic."""
    registry = CollectorRegistry()
    tel = telemetry.Telemetry(make_config("faulty"), registry=registry)
    faults = FaultInjector(random=itertools.cycle([0.2, 0.8]).__next__)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4),
        interceptors=[telemetry.ServerInterceptor([*tel.server_concerns(), faults])],
    )
    echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(tel), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", faults, registry
    server.stop(grace=None).wait(5)
    tel.shutdown()


def test_faults_from_etcd_reach_calls_on_a_real_server(
    client: EtcdClient,
    live: StartLive,
    service: str,
    faulty_server: tuple[str, FaultInjector, CollectorRegistry],
) -> None:
    target, faults, registry = faulty_server
    live(Governance(), service, faults=faults)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(target))
    stub.Unary(echo_pb2.EchoRequest(text="warm"), timeout=5)

    put(client, service, "faults", {"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}})
    wait_until(lambda: faults.faults.get("*") == Fault(error_rate=1.0), APPLY_WITHIN, "faults")
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as failed:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (FAULT_KEY, "error") in failed.value.trailing_metadata()
    handled = metric_value(
        registry, "grpc_server_handled_total", grpc_type="unary", grpc_service=ECHO,
        grpc_method="Unary", grpc_code="Unavailable",
    )  # fmt: skip
    assert handled == 3  # the chain saw the injected failures like real ones

    put(client, service, "faults", {"*": {"error_rate": 0.5, "error_code": "INTERNAL"}})
    wait_until(lambda: faults.faults["*"].error_rate == 0.5, APPLY_WITHIN, "error rate 0.5")
    codes = []
    for _ in range(4):
        try:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert codes.count(grpc.StatusCode.INTERNAL) == 2 and codes.count(grpc.StatusCode.OK) == 2

    put(client, service, "faults", {"*": {"error_rate": 0}, f"{ECHO}/Unary": {"latency_ms": 150}})
    wait_until(lambda: f"{ECHO}/Unary" in faults.faults, APPLY_WITHIN, "latency fault")
    started = time.monotonic()
    stub.Unary(echo_pb2.EchoRequest(text="slow"), timeout=5)  # error_rate 0: never fails
    assert time.monotonic() - started >= 0.15

    put(client, service, "faults", {f"{ECHO}/*": {"cpu_burn_ms": 100}})
    wait_until(lambda: f"{ECHO}/*" in faults.faults, APPLY_WITHIN, "cpu fault")
    cpu = time.process_time()
    stub.Unary(echo_pb2.EchoRequest(text="hot"), timeout=5)
    assert time.process_time() - cpu >= 0.1

    put(client, service, "faults", {"*": {"error_rate": 1.0}})
    wait_until(lambda: "*" in faults.faults, APPLY_WITHIN, "failing again")
    client.delete(rules_key(service, "faults"))  # no key: no faults
    wait_until(lambda: not faults.faults, APPLY_WITHIN, "faults cleared")
    stub.Unary(echo_pb2.EchoRequest(text="calm"), timeout=5)


def test_an_invalid_fault_config_is_refused_and_reported(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    faults = FaultInjector()
    gov = Governance()
    live(gov, service, faults=faults)
    put(client, service, "faults", {"*": {"latency_ms": 5}})
    wait_until(lambda: "*" in faults.faults, APPLY_WITHIN, "faults in force")

    bad = put(client, service, "faults", {f"{ECHO}/Unary": {"error_rate": 1.5}})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"] == (f"faults.{ECHO}/Unary.error_rate: must be between 0 and 1, got 1.5")
    assert faults.faults == {"*": Fault(latency_ms=5)}

    # Rules and faults are one whole: a rule change waits until the faults are fixed.
    put(client, service, "server", LIMIT_50)
    code = put(client, service, "faults", {"*": {"error_code": "OK"}})
    rejected = wait_status(client, service, code, "rejected")
    assert rejected["error"].startswith("faults.*.error_code: must be a gRPC status code name")
    assert server_limit(gov) is None
    fixed = put(client, service, "faults", {})
    wait_status(client, service, fixed, "applied")
    assert server_limit(gov) == 50 and not faults.faults


def test_fault_validation_names_the_field() -> None:
    injector = FaultInjector()
    for spec, message in [
        ("{", "faults: not valid JSON"),
        ({"Echo": {}}, "faults.Echo: method pattern must be"),
        ({"*": {"latency": 1}}, "faults.*.latency: unknown field"),
        ({"*": {"latency_ms": -1}}, "faults.*.latency_ms: must be between 0 and 60000"),
        ({"*": {"cpu_burn_ms": True}}, "faults.*.cpu_burn_ms: must be a finite number"),
        ({"*": []}, "faults.*: must be an object"),
    ]:
        with pytest.raises(FaultError, match="^" + message.replace("*", r"\*")):
            injector.configure(spec)  # type: ignore[arg-type]
    assert not injector.faults


def test_aio_injector_never_sleeps_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the module faults calls
    sync = FaultInjector()
    aio = sync.linked(aio=True)  # the same configuration, for a grpc.aio server
    sync.configure({"*": {"latency_ms": 500, "error_rate": 1.0, "error_code": "ABORTED"}})
    state = CallState(MethodInfo(f"/{ECHO}/Unary", RpcKind.UNARY, Side.SERVER), 0.0, None, "")
    with pytest.raises(telemetry.RejectCall) as rejected:
        aio.on_start(state)
    assert slept == []
    with pytest.raises(telemetry.RejectCall):
        sync.on_start(state)
    assert slept == [0.5]  # the sync one does sleep: the check above can fail
    assert rejected.value.code == grpc.StatusCode.ABORTED


# -- trace sampling -------------------------------------------------------------------------------

PARENT_SPAN = "00f067aa0ba902b7"


def call(stub: Any, parent_trace: int | None = None) -> str:
    """One Unary call (a sampled remote parent when ``parent_trace``); the trace id the handler
    saw, sampled or not. A sync server ends its span before replying: no wait is needed after."""
    metadata = None
    if parent_trace is not None:
        metadata = [("traceparent", f"00-{parent_trace:032x}-{PARENT_SPAN}-01")]
    reply = stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5, metadata=metadata)
    return str(reply.hops[0].trace_id)


def traced(spans: SpanCapture, trace_id: str) -> bool:
    return any(format(s.context.trace_id, "032x") == trace_id for s in spans.spans() if s.context)


def live_sampler(echo: Service) -> LiveSampler:
    assert echo.tel.tracing is not None
    return echo.tel.tracing.sampler


def test_sampling_from_etcd_stops_new_traces_but_follows_sampled_parents(
    client: EtcdClient, live: StartLive, service: str, sync_service: Callable[..., Service]
) -> None:
    echo = sync_service("sampled")
    sampler = live_sampler(echo)
    live(Governance(), service, sampler=sampler)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(echo.target))
    assert traced(echo.spans, call(stub))  # configured: parentbased_always_on

    revision = put(client, service, "sampling", {"ratio": 0.0})
    wait_status(client, service, revision, "applied")
    assert sampler.current is not sampler.configured and not sampler.fast_path
    roots = [call(stub) for _ in range(5)]
    assert not any(traced(echo.spans, trace_id) for trace_id in roots)

    parent_trace = random.getrandbits(128) | 1
    followed = call(stub, parent_trace)
    assert followed == f"{parent_trace:032x}"  # the trace continues ...
    (span,) = [s for s in echo.spans.spans() if s.context and s.context.trace_id == parent_trace]
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN  # ... whole

    client.delete(rules_key(service, "sampling"))  # no key: the configured sampler again
    wait_until(lambda: sampler.current is sampler.configured, APPLY_WITHIN, "configured sampler")
    assert sampler.fast_path
    assert traced(echo.spans, call(stub))


def test_an_invalid_sampling_value_is_refused_and_the_previous_sampling_stays(
    client: EtcdClient, live: StartLive, service: str, sync_service: Callable[..., Service]
) -> None:
    echo = sync_service("badsampling")
    sampler = live_sampler(echo)
    gov = Governance()
    live(gov, service, sampler=sampler)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(echo.target))
    good = put(client, service, "sampling", {"ratio": 0.0})
    wait_status(client, service, good, "applied")
    in_force = sampler.current

    bad = put(client, service, "sampling", {"ratio": 1.5})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"] == "sampling.ratio: must be between 0 and 1, got 1.5"
    assert sampler.current is in_force
    assert not traced(echo.spans, call(stub))

    # Rules and sampling are one whole: a rule change waits until the sampling is fixed.
    rule = put(client, service, "server", LIMIT_50)
    rejected = wait_status(client, service, rule, "rejected")
    assert rejected["error"].startswith("sampling.ratio:")
    assert server_limit(gov) is None

    fixed = put(client, service, "sampling", {"traces_per_second": 100})
    wait_status(client, service, fixed, "applied")
    assert server_limit(gov) == 50
    assert sampler.current is not in_force and "RateLimitingSampler{100/s}" in sampler.get_description()
    assert traced(echo.spans, call(stub))

    current = sampler.current
    other = put(client, service, "enabled", False)  # another key: the sampler is not rebuilt
    wait_status(client, service, other, "applied")
    assert not gov.rules.enabled and sampler.current is current


def test_a_handle_with_etcd_applies_live_sampling(
    client: EtcdClient, etcd: EtcdServer, service: str
) -> None:
    tel = telemetry.Telemetry(
        make_config(service), registry=CollectorRegistry(), governance={},
        etcd=etcd.endpoint, instance_id="h1",
    )  # fmt: skip
    try:
        assert tel.live_rules is not None and tel.live_rules.wait_ready(5)
        assert tel.tracing is not None
        sampler = tel.tracing.sampler
        revision = put(client, service, "sampling", {"traces_per_second": 5})
        wait_status(client, service, revision, "applied", "h1")
        assert "RateLimitingSampler{5/s}" in sampler.get_description()
        assert tel.tracing.rpc_tracer.reads_parent_context  # the inline fast path is off
    finally:
        tel.shutdown()
