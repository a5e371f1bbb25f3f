"""ServiceChannel / AioServiceChannel on real loopback servers: spread, ejection and readmission,
retries on another instance, canary routing by baggage, no instances, channels of removed instances."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from helpers import make_config, wait_until, wait_until_async
from opentelemetry import baggage
from opentelemetry import context as otel_context
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.discovery.aio_service_channel import AioServiceChannel
from telemetry.discovery.balancer import P2CBalancer, RoundRobinBalancer, WeightedRandomBalancer
from telemetry.discovery.instance import Instance
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.retry import RetryBudget

SERVICE = "echo"
# Client channels reconnect fast, so a restarted server is reachable again within the test's time.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
)


class Node(echo_pb2_grpc.EchoServicer):
    """An Echo instance answering with its name; fails with ``failing`` while set; counts calls;
    unary calls wait for ``gate`` when one is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing: grpc.StatusCode | None = None
        self.gate: threading.Event | None = None
        self.calls = 0
        self._lock = threading.Lock()

    def _enter(self, context: Any) -> None:
        with self._lock:
            self.calls += 1
        if self.failing is not None:
            context.abort(self.failing, f"{self.name}: injected fault")

    def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._enter(context)
        if self.gate is not None:
            self.gate.wait(5)
        return echo_pb2.EchoReply(text=self.name)

    def ServerStream(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        self._enter(context)
        for _ in range(max(request.count, 1)):
            yield echo_pb2.EchoReply(text=self.name)

    def ClientStream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        self._enter(context)
        return echo_pb2.EchoReply(text=f"{self.name}:{sum(1 for _ in request_iterator)}")

    def Bidi(self, request_iterator: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        self._enter(context)
        for _ in request_iterator:
            yield echo_pb2.EchoReply(text=self.name)


class StaticSource:
    """An InstanceSource over a list the test swaps; the same tuple until it does."""

    def __init__(self, instances: Sequence[Instance]) -> None:
        self.current = tuple(instances)

    def instances(self, service: str) -> tuple[Instance, ...]:
        return self.current if service == SERVICE else ()


def instance(name: str, target: str, group: str = "") -> Instance:
    return Instance(service=SERVICE, id=name, address=target, group=group)


def source_of(made: list[Node], services: list[Any]) -> StaticSource:
    """Every node as an instance of SERVICE, in order."""
    return StaticSource([instance(n.name, s.target) for n, s in zip(made, services, strict=True)])


def running_calls(channel: ServiceChannel | AioServiceChannel) -> int:
    """Calls holding an instance of ``channel`` (every call releases its instance when it ends)."""
    return sum(endpoint.active for endpoint in channel._core._view.endpoints.values())


def quick_breaker() -> CircuitBreaker:
    """Ejects after 2 failures in a row for 0.2 s; one good probe readmits fully."""
    return CircuitBreaker(
        consecutive_failures=2,
        open_wait=0.2,
        backoff_multiplier=1.0,
        half_open_probes=1,
        ramp_steps=(),
    )


REQUEST = echo_pb2.EchoRequest(text="hi")


@pytest.fixture
def client_tel() -> Iterator[telemetry.Telemetry]:
    tel = telemetry.Telemetry(make_config("client"), registry=CollectorRegistry())
    yield tel
    tel.shutdown()


@pytest.fixture
def nodes(sync_service: Any) -> Callable[..., tuple[list[Node], list[Any]]]:
    """``nodes(3)``: that many running Echo instances and their services."""

    def start(count: int) -> tuple[list[Node], list[Any]]:
        made = [Node(f"n{i}") for i in range(count)]
        return made, [sync_service(node.name, servicer=node) for node in made]

    return start


def make_sync(
    client_tel: telemetry.Telemetry,
    source: StaticSource,
    made: list[Any] | None = None,
    **kwargs: Any,
) -> ServiceChannel:
    def make_channel(address: str) -> grpc.Channel:
        channel = client_tel.channel(address, options=FAST_RECONNECT)
        if made is not None:
            made.append(channel)
        return channel

    kwargs.setdefault("balancer", RoundRobinBalancer())
    kwargs.setdefault("breaker_factory", quick_breaker)
    return ServiceChannel(service=SERVICE, source=source, make_channel=make_channel, **kwargs)


def call(stub: Any) -> str:
    return str(stub.Unary(REQUEST, timeout=5).text)


# -- spread, kinds ----------------------------------------------------------------------------------


def test_calls_spread_over_every_instance(nodes: Any, client_tel: telemetry.Telemetry) -> None:
    made, services = nodes(3)
    source = source_of(made, services)
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        assert Counter(call(stub) for _ in range(30)) == {"n0": 10, "n1": 10, "n2": 10}
    with make_sync(client_tel, source, balancer=WeightedRandomBalancer()) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        assert set(Counter(call(stub) for _ in range(60))) == {"n0", "n1", "n2"}


def test_every_rpc_kind_goes_through_one_instance(nodes: Any, client_tel: telemetry.Telemetry) -> None:
    made, services = nodes(2)
    source = source_of(made, services)
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        streamed = [r.text for r in stub.ServerStream(echo_pb2.EchoRequest(count=3), timeout=5)]
        assert len(streamed) == 3
        assert len(set(streamed)) == 1
        text = stub.ClientStream(iter([REQUEST, REQUEST]), timeout=5).text
        assert text.endswith(":2")
        assert stub.ClientStream.future(iter([REQUEST]), timeout=5).result().text.endswith(":1")
        assert len({r.text for r in stub.Bidi(iter([REQUEST] * 3), timeout=5)}) == 1
        assert stub.Unary.future(REQUEST, timeout=5).result().text in {"n0", "n1"}
        response, grpc_call = stub.Unary.with_call(REQUEST, timeout=5)
        assert response.text in {"n0", "n1"}
        assert grpc_call.code() == grpc.StatusCode.OK
        # Every call above finished and released its instance.
        wait_until(lambda: running_calls(channel) == 0, message="every call released its instance")
        assert all(b.state is BreakerState.CLOSED for b in channel.breakers().values())


def test_concurrent_calls_with_p2c(nodes: Any, client_tel: telemetry.Telemetry) -> None:
    made, services = nodes(3)
    source = source_of(made, services)
    balancer = P2CBalancer()
    with make_sync(client_tel, source, balancer=balancer) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        with futures.ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(lambda _: call(stub), range(200)))
        assert len(replies) == 200
        assert set(replies) <= {"n0", "n1", "n2"}
        assert sum(n.calls for n in made) == 200
        assert all(load.in_flight == 0 for load in balancer.stats().values())


# -- ejection, retries, readmission -----------------------------------------------------------------


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE])
def test_failing_instance_is_ejected_retried_around_and_readmitted(
    nodes: Any, client_tel: telemetry.Telemetry, code: grpc.StatusCode
) -> None:
    made, services = nodes(3)
    source = source_of(made, services)
    bad = made[1]
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        bad.failing = code
        replies = [call(stub) for _ in range(12)]
        # Every call succeeded on another instance; the bad one saw exactly the two failures that
        # ejected it, then no traffic.
        assert "n1" not in replies
        assert len(replies) == 12
        assert bad.calls == 2
        assert channel.ejected() == [services[1].target]

        bad.failing = None
        wait_until(
            lambda: call(stub) != "" and bad.calls > 2 and not channel.ejected(),
            timeout=5,
            message="the recovered instance readmitted",
        )
        assert Counter(call(stub) for _ in range(30))["n1"] == 10


def test_a_limit_answering_is_retried_elsewhere_but_never_ejects(
    nodes: Any, client_tel: telemetry.Telemetry
) -> None:
    """RESOURCE_EXHAUSTED is a server's limit speaking (a per-user one, say), not a sick instance."""
    made, services = nodes(3)
    source = source_of(made, services)
    limited = made[1]
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        limited.failing = grpc.StatusCode.RESOURCE_EXHAUSTED
        replies = [call(stub) for _ in range(12)]
        assert "n1" not in replies and len(replies) == 12  # retried on another instance
        assert limited.calls >= 4  # still picked in turn (retries advance the round robin too)
        assert channel.ejected() == []


def test_when_every_instance_is_ejected_calls_still_reach_them(
    nodes: Any, client_tel: telemetry.Telemetry
) -> None:
    """Panic mode: all instances failing at once usually means a shared cause (their dependency is
    down); refusing locally would hide every recovery and turn a partial outage into a total one."""
    made, services = nodes(2)
    source = source_of(made, services)
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for node in made:
            node.failing = grpc.StatusCode.UNAVAILABLE
        for _ in range(20):
            with pytest.raises(grpc.RpcError) as failed:
                call(stub)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert sorted(channel.ejected()) == sorted(s.target for s in services)
        calls_before = sum(node.calls for node in made)
        with pytest.raises(grpc.RpcError) as failed:
            call(stub)
        assert "injected fault" in (failed.value.details() or "")  # answered by a server, not locally
        assert sum(node.calls for node in made) == calls_before + 1
        for node in made:
            node.failing = None
        assert call(stub) in {"n0", "n1"}  # the recovery is seen at once


def test_stopped_instance_is_ejected_and_readmitted_when_it_comes_back(
    nodes: Any, client_tel: telemetry.Telemetry
) -> None:
    made, services = nodes(3)
    source = source_of(made, services)
    dead = services[0]
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        assert len({call(stub) for _ in range(3)}) == 3  # every channel connected
        dead.server.stop(grace=None).wait(5)
        assert {call(stub) for _ in range(20)} == {"n1", "n2"}
        assert channel.ejected() == [dead.target]

        revived = Node("n0-again")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        echo_pb2_grpc.add_EchoServicer_to_server(revived, server)
        assert server.add_insecure_port(dead.target) != 0
        server.start()
        try:
            wait_until(
                lambda: call(stub) != "" and revived.calls > 0 and not channel.ejected(),
                timeout=5,
                message="the restarted instance readmitted",
            )
        finally:
            server.stop(grace=None).wait(5)


def test_non_retryable_status_reaches_the_caller_and_does_not_eject(
    nodes: Any, client_tel: telemetry.Telemetry
) -> None:
    made, services = nodes(1)
    made[0].failing = grpc.StatusCode.NOT_FOUND
    source = StaticSource([instance("n0", services[0].target)])
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Unary(REQUEST, timeout=5)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert made[0].calls == 3
        assert channel.ejected() == []


def test_retries_stop_when_the_budget_is_spent(nodes: Any, client_tel: telemetry.Telemetry) -> None:
    made, services = nodes(2)
    made[0].failing = grpc.StatusCode.UNAVAILABLE
    source = source_of(made, services)
    no_budget = RetryBudget(ratio=0.0, min_per_second=0.0)
    with make_sync(client_tel, source, retry_budget=no_budget) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(call(stub))
            except grpc.RpcError as error:
                outcomes.append(error.code().name)
        assert sorted(outcomes) == ["UNAVAILABLE", "n1"]  # the failed call was not retried


# -- routing ----------------------------------------------------------------------------------------


def test_canary_routing_by_baggage(nodes: Any, client_tel: telemetry.Telemetry) -> None:
    _, services = nodes(3)
    source = StaticSource(
        [
            instance("n0", services[0].target),
            instance("n1", services[1].target),
            instance("n2", services[2].target, group="canary"),
        ]
    )
    with make_sync(client_tel, source) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        assert {call(stub) for _ in range(10)} == {"n0", "n1"}
        token = otel_context.attach(baggage.set_baggage("group", "canary"))
        try:
            assert {call(stub) for _ in range(5)} == {"n2"}
        finally:
            otel_context.detach(token)
        # A group with no instance falls back to the default pool.
        token = otel_context.attach(baggage.set_baggage("group", "blue"))
        try:
            assert {call(stub) for _ in range(4)} == {"n0", "n1"}
        finally:
            otel_context.detach(token)


# -- membership -------------------------------------------------------------------------------------


def test_no_instances_fails_unavailable_without_network(client_tel: telemetry.Telemetry) -> None:
    made: list[Any] = []
    with make_sync(client_tel, StaticSource([]), made) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Unary(REQUEST, timeout=5)
        error = caught.value
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "'echo'" in error.details()
        with pytest.raises(grpc.RpcError):
            list(stub.ServerStream(REQUEST))
        assert stub.Unary.future(REQUEST).exception().code() == grpc.StatusCode.UNAVAILABLE
    assert made == []  # no channel was ever made


def test_removed_instance_channel_closes_after_its_running_calls(nodes: Any) -> None:
    made, services = nodes(2)
    channels: dict[str, grpc.Channel] = {}

    def make_channel(address: str) -> grpc.Channel:
        channels[address] = grpc.insecure_channel(address)
        return channels[address]

    def closed(address: str) -> bool:
        """Starting a call on a closed grpc channel raises at once; an open one's call is cancelled."""
        probe: grpc.UnaryUnaryMultiCallable[bytes, bytes]
        probe = channels[address].unary_unary("/telemetry.test.Echo/NoSuchMethod")
        try:
            probe.future(b"", timeout=5).cancel()
        except ValueError:  # grpc: "Cannot invoke RPC on closed channel!"
            return True
        return False

    first, second = (instance(n.name, s.target) for n, s in zip(made, services, strict=True))
    source = StaticSource([first])
    channel = ServiceChannel(
        service=SERVICE, source=source, make_channel=make_channel, balancer=RoundRobinBalancer()
    )
    stub = echo_pb2_grpc.EchoStub(channel)
    gate = made[0].gate = threading.Event()
    running = stub.Unary.future(REQUEST, timeout=5)  # held in n0 until the gate opens
    wait_until(lambda: made[0].calls == 1)

    source.current = (second,)
    assert call(stub) == "n1"  # membership reconciled; n0 retired but busy
    assert not closed(first.address)
    gate.set()
    assert running.result().text == "n0"
    wait_until(lambda: closed(first.address), message="the removed instance's channel closed")
    channel.close()
    assert closed(second.address)
    with pytest.raises(ValueError, match="closed channel"):
        call(stub)


# -- grpc.aio ---------------------------------------------------------------------------------------


async def test_aio_service_channel_balances_retries_and_fails_without_instances(
    nodes: Any, client_tel: telemetry.Telemetry
) -> None:
    made, services = nodes(3)
    source = source_of(made, services)
    channel = AioServiceChannel(
        service=SERVICE,
        source=source,
        make_channel=lambda address: client_tel.aio_channel(address, options=FAST_RECONNECT),
        balancer=RoundRobinBalancer(),
        breaker_factory=quick_breaker,
    )
    assert channel.get_state() == grpc.ChannelConnectivity.IDLE  # no instance channel yet
    await asyncio.wait_for(channel.channel_ready(), 5)
    assert channel.get_state() == grpc.ChannelConnectivity.READY
    stub = echo_pb2_grpc.EchoStub(channel)
    replies = [(await stub.Unary(REQUEST, timeout=5)).text for _ in range(6)]
    assert Counter(replies) == {"n0": 2, "n1": 2, "n2": 2}

    made[2].failing = grpc.StatusCode.UNAVAILABLE
    for _ in range(6):
        pending = stub.Unary(REQUEST, timeout=5)
        assert (await pending).text in {"n0", "n1"}
        assert await pending.code() == grpc.StatusCode.OK
    assert made[2].calls == 2 + 2  # two good calls, then the two failures that ejected it
    assert channel.ejected() == [services[2].target]

    texts = [r.text async for r in stub.ServerStream(echo_pb2.EchoRequest(count=2), timeout=5)]
    assert len(texts) == 2
    assert texts[0] in {"n0", "n1"}

    source.current = source.current[:2]  # n2 retired: its channel closes (in a task)
    assert (await stub.ClientStream(iter([REQUEST, REQUEST]), timeout=5)).text in {"n0:2", "n1:2"}
    texts = [r.text async for r in stub.Bidi(iter([REQUEST] * 3), timeout=5)]
    assert len(texts) == 3
    assert len(set(texts)) == 1
    assert texts[0] in {"n0", "n1"}
    await wait_until_async(lambda: running_calls(channel) == 0, message="every call released")
    assert channel.breakers().keys() == {services[0].target, services[1].target}

    source.current = ()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Unary(REQUEST, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "'echo'" in str(caught.value.details())
    with pytest.raises(grpc.aio.AioRpcError):
        [r async for r in stub.ServerStream(REQUEST)]
    await channel.close()
    assert channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN
