"""Governance across a chain of real services on loopback: breakers judge their own target only
(relayed refusals), status details are bounded, retries run at one layer and obey pushback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from helpers import make_config, metric_value, trailers, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.discovery.balancer import RoundRobinBalancer
from telemetry.discovery.instance import Instance
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.governance.breaker import BreakerState
from telemetry.rpc.relay import RELAYED_KEY
from telemetry.rpc.status import MAX_STATUS_DETAILS

ECHO = "telemetry.test.Echo"


def breaker_rules(**fields: Any) -> dict[str, Any]:
    return {"client": {"methods": {"*": {"breaker": fields}}}}


class Failing(echo_pb2_grpc.EchoServicer):
    """Fails every call with ``code`` (its own failure, no governance mark); counts calls."""

    def __init__(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.code = code
        self.calls = 0
        self.mode = "fail"  # "fail", "relay" (answers as a relaying server would), "ok"
        self._lock = threading.Lock()

    def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        with self._lock:
            self.calls += 1
        if self.mode == "relay":
            context.set_trailing_metadata(((RELAYED_KEY, "breaker"),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "dependency: breaker: call refused locally")
        if self.mode == "fail":
            context.abort(self.code, "injected fault")
        return echo_pb2.EchoReply(text="ok")


@pytest.fixture
def client() -> Iterator[Any]:
    """``client(rules)``: a Telemetry handle with governance, for the calling side."""
    made: list[telemetry.Telemetry] = []

    def start(rules: dict[str, Any]) -> telemetry.Telemetry:
        tel = telemetry.Telemetry(make_config("a"), registry=CollectorRegistry(), governance=rules)
        made.append(tel)
        return tel

    yield start
    for tel in made:
        tel.shutdown()


def only_breaker(tel: telemetry.Telemetry, target: str) -> Any:
    assert tel.governance is not None
    found = [b for t, _method, b in tel.governance.breakers() if t == target]
    assert len(found) == 1, found
    return found[0]


# -- breakers in series ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "aio"])
async def test_a_breaker_upstream_of_a_refusing_breaker_stays_closed(
    flavour: str, sync_service: Any, aio_service: Any, client: Any
) -> None:
    """a -> b -> c with c failing: b's breaker on c opens and b fails fast; a's breaker on b does
    not count those relayed refusals, so it stays closed and reaches b as soon as c recovers."""
    c_servicer = Failing()
    c = sync_service("c", servicer=c_servicer)
    b_rules = breaker_rules(minimum_calls=4, window_size=8, open_wait=30)
    b = (
        sync_service("b", governance=b_rules)
        if flavour == "sync"
        else await aio_service("b", governance=b_rules)
    )
    a = client(breaker_rules(minimum_calls=10, window_size=20, open_wait=30))
    stub = echo_pb2_grpc.EchoStub(a.channel(b.target))
    relayed = 0
    for _ in range(30):
        with pytest.raises(grpc.RpcError) as failed:
            await _unary(stub, echo_pb2.EchoRequest(text="x", hops=[c.target]))
        trailing = dict(trailers(failed.value))
        relayed += trailing.get(RELAYED_KEY) == "breaker"
    assert c_servicer.calls == 4  # b's breaker opened after its minimum calls
    assert only_breaker(b.tel, c.target).state is BreakerState.OPEN
    assert relayed == 26  # every call after that relayed b's refusal
    assert only_breaker(a, b.target).state is BreakerState.CLOSED
    assert metric_value(a.registry, "governance_breaker_state", target=b.target,
                        method=f"/{ECHO}/Unary") == 0.0  # fmt: skip


async def _unary(stub: Any, request: Any) -> Any:
    """A sync call from a thread: the aio server of the test shares this loop."""
    import asyncio

    return await asyncio.to_thread(stub.Unary, request, timeout=5)


def test_a_probe_answered_by_a_relayed_refusal_does_not_reopen(sync_service: Any, client: Any) -> None:
    b_servicer = Failing()
    b = sync_service("b", servicer=b_servicer)
    a = client(breaker_rules(consecutive_failures=2, open_wait=0.3, backoff_multiplier=4,
                             half_open_probes=1, ramp_steps=[1.0]))  # fmt: skip
    stub = echo_pb2_grpc.EchoStub(a.channel(b.target))
    request = echo_pb2.EchoRequest(text="x")
    for _ in range(2):  # b's own failures open a's breaker
        with pytest.raises(grpc.RpcError):
            stub.Unary(request, timeout=5)
    breaker = only_breaker(a, b.target)
    assert breaker.state == BreakerState.OPEN
    b_servicer.mode = "relay"
    wait_until(lambda: breaker.retry_after() == 0.0, timeout=5, message="open wait over")
    for _ in range(3):  # each probe reaches b, which relays a refusal from further down
        with pytest.raises(grpc.RpcError) as relayed:
            stub.Unary(request, timeout=5)
        assert relayed.value.details() == "dependency: breaker: call refused locally"
        assert breaker.state == BreakerState.HALF_OPEN  # not reopened, the wait not grown
    assert b_servicer.calls == 5
    b_servicer.mode = "ok"
    assert stub.Unary(request, timeout=5).text == "ok"
    assert breaker.state == BreakerState.CLOSED


# -- bounded status details ------------------------------------------------------------------------


class Echoing(echo_pb2_grpc.EchoServicer):
    """Puts the request's text into its error, as a careless handler does ("no such sku: ...")."""

    def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.fail == "set":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"no such thing: {request.text}")
            return echo_pb2.EchoReply()
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such thing: {request.text}")


class AioEchoing(echo_pb2_grpc.EchoServicer):
    async def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.fail == "set":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"no such thing: {request.text}")
            return echo_pb2.EchoReply()
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no such thing: {request.text}")


@pytest.mark.parametrize("flavour", ["sync", "aio"])
@pytest.mark.parametrize("how", ["abort", "set"])
async def test_huge_status_details_are_truncated_not_a_transport_failure(
    flavour: str, how: str, sync_service: Any, aio_service: Any
) -> None:
    if flavour == "sync":
        server = sync_service("b", servicer=Echoing())
    else:
        server = await aio_service("b", servicer=AioEchoing())
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(server.target))
    sku = "é" * 10_000  # 20 KB of UTF-8: far past grpc's 8 KiB metadata limit
    with pytest.raises(grpc.RpcError) as failed:
        await _unary(stub, echo_pb2.EchoRequest(text=sku, fail="" if how == "abort" else "set"))
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND  # the handler's status, not UNAVAILABLE
    details = failed.value.details()
    assert details is not None
    assert details.startswith("no such thing: éé")
    assert len(details.encode()) <= MAX_STATUS_DETAILS
    assert details.endswith(" bytes]") and "[truncated" in details


# -- one retry layer, pushback ---------------------------------------------------------------------


class StaticSource:
    def __init__(self, instances: list[Instance]) -> None:
        self.current = tuple(instances)

    def instances(self, service: str) -> tuple[Instance, ...]:
        return self.current


def balanced(tel: telemetry.Telemetry, targets: list[str]) -> ServiceChannel:
    """A balanced channel wired as ``tel.channel("echo")`` wires one with etcd discovery: the
    instance channels do not retry, governance's plan for the service does."""
    governance = tel.governance
    assert governance is not None
    return ServiceChannel(
        service="echo",
        source=StaticSource(
            [Instance(service="echo", id=f"n{i}", address=t) for i, t in enumerate(targets)]
        ),
        make_channel=lambda address: tel.channel(address, retries=False),
        balancer=RoundRobinBalancer(),
        retry_plans=lambda method: governance.retry_plan(method, "echo"),
    )


def test_retries_run_at_one_layer_with_one_budget(sync_service: Any, client: Any) -> None:
    servicers = [Failing(), Failing()]
    nodes = [sync_service(f"n{i}", servicer=s) for i, s in enumerate(servicers)]
    retry = {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.02}
    a = client({"client": {"methods": {"*": {"idempotent": True, "retry": retry}}}})
    with balanced(a, [n.target for n in nodes]) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    # Three attempts in all (not 3 x 3: the instance channels do not retry underneath), spread
    # over both instances.
    assert sum(s.calls for s in servicers) == 3
    assert all(s.calls >= 1 for s in servicers)
    retried = metric_value(a.registry, "governance_decisions_total", mechanism="retry",
                           outcome="retried", grpc_service=ECHO, grpc_method="Unary")  # fmt: skip
    assert retried == 2


def test_a_per_user_limit_refusal_is_not_retried_on_another_instance(
    sync_service: Any, client: Any
) -> None:
    limit = {"algorithm": "fixed_window", "limit": 1, "window": 3600, "key": "metadata:x-user"}
    rules = {"server": {"methods": {"*": {"rate_limit": limit}}}}
    nodes = [sync_service(f"n{i}", governance=rules) for i in range(2)]
    a = client({"client": {"methods": {"*": {"idempotent": True, "retry": {"max_attempts": 3}}}}})
    metadata = (("x-user", "ada"),)
    with balanced(a, [n.target for n in nodes]) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for _ in range(2):  # one call on each instance: each has its own per-user limiter
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5, metadata=metadata)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5, metadata=metadata)
        assert time.monotonic() - start < 1.0
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(trailers(refused.value))["grpc-retry-pushback-ms"] == "-1"
    refusals = [
        metric_value(
            n.registry,
            "grpc_server_handled_total",
            grpc_type="unary",
            grpc_service=ECHO,
            grpc_method="Unary",
            grpc_code="ResourceExhausted",
        )
        for n in nodes
    ]
    assert sorted(refusals) == [0.0, 1.0]  # one attempt: never tried on the other instance


def test_an_instance_whose_own_breaker_refuses_is_ejected(sync_service: Any, client: Any) -> None:
    """The instance channel's governance breaker on a failing instance refuses locally: that is
    about the instance, so the balanced channel ejects it instead of picking it (and failing over)
    on every other call."""
    sick, well = Failing(), Failing()
    well.mode = "ok"
    nodes = [sync_service("sick", servicer=sick), sync_service("well", servicer=well)]
    a = client(breaker_rules(consecutive_failures=2, open_wait=30))
    with balanced(a, [n.target for n in nodes]) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        replies = [stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5).text for _ in range(20)]
        assert replies == ["ok"] * 20  # every failure went on to the well instance
        assert channel._core.ejected() == [nodes[0].target]
    assert sick.calls == 2  # its governance breaker opened; then ejected, it is not even picked
