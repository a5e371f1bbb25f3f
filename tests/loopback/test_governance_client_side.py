"""Client-side governance against real loopback servers, sync and aio: an open (or forced) breaker
fails fast without reaching the server, default and last-good fallbacks, retries of idempotent
calls within their budget (one set of attempts however often an aio call is awaited), none for
other calls, bulkheads per downstream, a breaker opened by injected faults recovering through its
ramp without reopening, and deferred calls sent once the breaker closes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from governance_loopback import ECHO, decisions
from helpers import make_config, metric_value, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.governance import BreakerState


def started(service: Any, method: str = "Unary", kind: str = "unary") -> float:
    return metric_value(
        service.registry,
        "grpc_server_started_total",
        grpc_type=kind,
        grpc_service=ECHO,
        grpc_method=method,
    )


class Client:
    """A client-only handle with its own governance, for calling the test services."""

    def __init__(self, governance: Any) -> None:
        self.registry = CollectorRegistry()
        self.tel = telemetry.Telemetry(
            make_config("client"), registry=self.registry, governance=governance
        )
        self.gov = self.tel.governance
        assert self.gov is not None

    def stub(self, target: str) -> Any:
        return echo_pb2_grpc.EchoStub(self.tel.channel(target))

    def aio_stub(self, target: str) -> Any:
        return echo_pb2_grpc.EchoStub(self.tel.aio_channel(target))


@pytest.fixture
def client() -> Iterator[Callable[[Any], Client]]:
    made: list[Client] = []

    def make(governance: Any) -> Client:
        made.append(Client(governance))
        return made[-1]

    yield make
    for c in made:
        c.tel.shutdown()


class Flaky(echo_pb2_grpc.EchoServicer):
    """Unary fails with ``code`` while it is set; counts calls. Sync and aio in one class."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.fail_next = 0  # fail this many calls, then succeed
        self.calls = 0
        self._lock = threading.Lock()

    def _outcome(self) -> grpc.StatusCode | None:
        with self._lock:
            self.calls += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return grpc.StatusCode.UNAVAILABLE
            return self.code

    def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        code = self._outcome()
        if code is not None:
            context.abort(code, "injected fault")
        return echo_pb2.EchoReply(text=f"live:{request.text}")


class AioFlaky(Flaky):
    async def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        code = self._outcome()
        if code is not None:
            await context.abort(code, "injected fault")
        return echo_pb2.EchoReply(text=f"live:{request.text}")


async def flaky_service(flavour: str, sync_service: Any, aio_service: Any) -> tuple[Flaky, Any]:
    """A Flaky Echo service of the given flavour, and the service running it."""
    if flavour == "sync":
        flaky = Flaky()
        return flaky, sync_service("b", servicer=flaky)
    aio_flaky = AioFlaky()
    return aio_flaky, await aio_service("b", servicer=aio_flaky)


# -- client side: breaker, fallback, retry --------------------------------------------------------


def breaker_rules(**breaker: Any) -> dict[str, Any]:
    settings = {"minimum_calls": 4, "window_size": 4, "failure_rate_threshold": 0.5, "open_wait": 30.0}
    settings.update(breaker)
    return {"client": {"methods": {"*": {"breaker": settings}}}}


def test_sync_open_breaker_fails_fast_without_reaching_the_server(
    sync_service: Any, client: Any
) -> None:
    flaky = Flaky()
    b = sync_service("b", servicer=flaky)
    c = client(breaker_rules())
    stub = c.stub(b.target)
    flaky.code = grpc.StatusCode.UNAVAILABLE
    for _ in range(4):
        with pytest.raises(grpc.RpcError):
            stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert flaky.calls == 4
    [(_target, _method, breaker)] = list(c.gov.breakers())
    assert breaker.state == BreakerState.OPEN
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.calls == 4  # never reached the network
    assert started(b) == 4
    assert decisions(c.registry, "breaker", "rejected") == 1
    assert (
        metric_value(c.registry, "governance_breaker_state", target=b.target, method=f"/{ECHO}/Unary")
        == 2
    )


async def test_aio_open_breaker_fails_fast_without_reaching_the_server(
    aio_service: Any, client: Any
) -> None:
    flaky = AioFlaky()
    b = await aio_service("b", servicer=flaky)
    c = client(breaker_rules())
    stub = c.aio_stub(b.target)
    flaky.code = grpc.StatusCode.UNAVAILABLE
    for _ in range(4):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Unary(echo_pb2.EchoRequest(text="x"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.calls == 4


def test_breaker_forced_open_by_rule(sync_service: Any, client: Any) -> None:
    b = sync_service("b")
    c = client(breaker_rules(force="open"))
    with pytest.raises(grpc.RpcError) as refused:
        c.stub(b.target).Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert started(b) == 0
    c.gov.apply(breaker_rules())
    assert c.stub(b.target).Unary(echo_pb2.EchoRequest(text="x")).text == "x"


def fallback_rules(mode: str, **extra: Any) -> dict[str, Any]:
    rules = breaker_rules()
    rules["client"]["methods"]["*"]["fallback"] = {"mode": mode, **extra}
    return rules


@pytest.mark.parametrize("flavour", ["sync", "aio"])
async def test_client_fallbacks_default_and_last_good(
    sync_service: Any, aio_service: Any, client: Any, flavour: str
) -> None:
    flaky, b = await flaky_service(flavour, sync_service, aio_service)
    c = client(fallback_rules("last_good"))
    c.gov.register_fallback(f"{ECHO}/Unary", default=echo_pb2.EchoReply(text="default"))
    stub = c.stub(b.target) if flavour == "sync" else c.aio_stub(b.target)

    async def call(text: str) -> str:
        if flavour == "sync":
            return str(stub.Unary(echo_pb2.EchoRequest(text=text)).text)
        return str((await stub.Unary(echo_pb2.EchoRequest(text=text))).text)

    assert await call("a") == "live:a"
    flaky.code = grpc.StatusCode.INTERNAL
    assert await call("a") == "live:a"  # downstream failed: the last good response for "a"
    assert await call("b") == "default"  # nothing cached for "b": the registered default
    assert await call("b") == "default"  # 3 failures in 4 calls: the breaker opens
    assert flaky.calls == 4
    assert await call("a") == "live:a"  # breaker open: answered from the cache, no network call
    assert await call("c") == "default"
    assert flaky.calls == 4
    assert decisions(c.registry, "breaker", "fallback") == 2
    assert decisions(c.registry, "fallback", "fallback") == 3

    # The caller can tell a fallback from the server's answer, sync and aio alike.
    async def decision(text: str) -> str:
        request = echo_pb2.EchoRequest(text=text)
        if flavour == "sync":
            _, call_ = stub.Unary.with_call(request)
            return str(dict(call_.trailing_metadata())["x-governance"])
        aio_call = stub.Unary(request)
        await aio_call
        return str(dict(await aio_call.trailing_metadata())["x-governance"])

    assert await decision("c") == "fallback:breaker"


@pytest.mark.parametrize("flavour", ["sync", "aio"])
async def test_a_fallback_after_a_failed_call_is_marked_as_one(
    sync_service: Any, aio_service: Any, client: Any, flavour: str
) -> None:
    """The failure reached the server and came back; governance answered with the default. The
    caller reads the same mark as for a breaker's fallback (the demo's order service tells a
    deferred charge from a real one by it)."""
    flaky, b = await flaky_service(flavour, sync_service, aio_service)
    c = client(fallback_rules("default"))
    c.gov.register_fallback(f"{ECHO}/Unary", default=echo_pb2.EchoReply(text="default"))
    flaky.code = grpc.StatusCode.UNAVAILABLE
    request = echo_pb2.EchoRequest(text="x")
    if flavour == "sync":
        reply, call = c.stub(b.target).Unary.with_call(request)
        code, trailing = call.code(), dict(call.trailing_metadata())
    else:
        aio_call = c.aio_stub(b.target).Unary(request)
        reply = await aio_call
        code, trailing = await aio_call.code(), dict(await aio_call.trailing_metadata())
    assert reply.text == "default" and flaky.calls == 1
    assert code == grpc.StatusCode.OK
    assert trailing["x-governance"].startswith("fallback:")


@pytest.mark.parametrize("flavour", ["sync", "aio"])
async def test_idempotent_calls_are_retried_within_budget(
    sync_service: Any, aio_service: Any, client: Any, flavour: str
) -> None:
    flaky, b = await flaky_service(flavour, sync_service, aio_service)
    retry = {"max_attempts": 3, "initial_backoff": 0.001, "max_backoff": 0.01}
    c = client({"client": {"methods": {
        f"{ECHO}/Unary": {"retry": retry, "idempotent": True},
        f"{ECHO}/*": {"retry": retry, "idempotent": False},
    }}})  # fmt: skip

    stub = c.stub(b.target) if flavour == "sync" else c.aio_stub(b.target)

    async def call() -> str:
        if flavour == "sync":
            return str(stub.Unary(echo_pb2.EchoRequest(text="x")).text)
        return str((await stub.Unary(echo_pb2.EchoRequest(text="x"))).text)

    flaky.fail_next = 2
    assert await call() == "live:x"
    assert flaky.calls == 3
    assert decisions(c.registry, "retry", "retried") == 2
    flaky.fail_next = 5  # more failures than attempts: the caller sees the last error
    with pytest.raises(grpc.RpcError) as failed:
        await call()
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert flaky.calls == 6


async def test_an_aio_call_awaited_twice_while_it_retries_runs_one_set_of_attempts(
    aio_service: Any, client: Any
) -> None:
    """Two coroutines awaiting one call share its attempts: one retry, every attempt finished
    once (in-flight back to 0; a leaked attempt would also hold a bulkhead permit forever)."""
    flaky, b = await flaky_service("aio", lambda *a, **k: None, aio_service)
    retry = {"max_attempts": 3, "initial_backoff": 0.001, "max_backoff": 0.01}
    c = client({"client": {"methods": {f"{ECHO}/Unary": {"retry": retry, "idempotent": True}}}})
    flaky.fail_next = 1
    call = c.aio_stub(b.target).Unary(echo_pb2.EchoRequest(text="x"))

    async def wait() -> Any:  # gather(call, call) would await one future for both
        return await call

    first, second = await asyncio.gather(wait(), wait())
    assert first.text == second.text == "live:x"
    assert flaky.calls == 2
    assert decisions(c.registry, "retry", "retried") == 1
    unary = {"grpc_type": "unary", "grpc_service": ECHO, "grpc_method": "Unary"}
    assert metric_value(c.registry, "grpc_client_in_flight", **unary) == 0
    assert metric_value(c.registry, "grpc_client_started_total", **unary) == 2


def test_non_idempotent_calls_are_not_retried(sync_service: Any, client: Any) -> None:
    flaky = Flaky()
    b = sync_service("b", servicer=flaky)
    c = client({"client": {"methods": {"*": {"retry": {"initial_backoff": 0.001}}}}})
    flaky.fail_next = 1
    with pytest.raises(grpc.RpcError):
        c.stub(b.target).Unary(echo_pb2.EchoRequest(text="x"))
    assert flaky.calls == 1


def test_bulkhead_caps_concurrent_calls_per_downstream(sync_service: Any, client: Any) -> None:
    b = sync_service("b")
    c = client({"client": {"methods": {"*": {"bulkhead": {"max_concurrent": 2}}}}})
    stub = c.stub(b.target)
    slow = [stub.Unary.future(echo_pb2.EchoRequest(text="x", sleep_seconds=0.5)) for _ in range(2)]
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for future in slow:
        assert future.result().text == "x"
    assert stub.Unary(echo_pb2.EchoRequest(text="x")).text == "x"


# -- fault injection: open within a window, recover through the ramp without reopening -----------


def test_breaker_opens_on_fault_and_recovers_through_the_ramp(sync_service: Any, client: Any) -> None:
    flaky = Flaky()
    b = sync_service("b", servicer=flaky)
    rules = breaker_rules(
        window_size=10, minimum_calls=10, open_wait=0.2, half_open_probes=2,
        ramp_steps=[0.25, 0.5, 1.0], ramp_step_duration=0.2,
    )  # fmt: skip
    c = client(rules)
    stub = c.stub(b.target)

    def call() -> bool:
        try:
            stub.Unary(echo_pb2.EchoRequest(text="x"))
        except grpc.RpcError:
            return False
        return True

    for _ in range(20):
        assert call()
    flaky.code = grpc.StatusCode.UNAVAILABLE  # the downstream starts failing
    calls_before = flaky.calls
    [(_t, _m, breaker)] = list(c.gov.breakers())
    attempts = 0
    while breaker.state != BreakerState.OPEN:
        call()
        attempts += 1
        assert attempts <= 10, "breaker did not open within one window"
    assert flaky.calls - calls_before == attempts
    flaky.code = None  # the fault clears
    wait_until(
        lambda: call() and breaker.state == BreakerState.CLOSED, timeout=20, message="breaker closed"
    )
    for _ in range(20):
        assert call()
    opened = [n for (_t, _m, state), n in c.gov.recorder.transitions().items() if state == "open"]
    assert opened == [1], "the breaker reopened during recovery"


# -- deferral: refused calls are queued and sent when the target recovers ------------------------


def test_deferred_calls_are_sent_when_the_breaker_closes(sync_service: Any, client: Any) -> None:
    flaky = Flaky()
    b = sync_service("b", servicer=flaky)
    rules = breaker_rules(open_wait=0.2, half_open_probes=1, ramp_steps=[1.0], ramp_step_duration=0.1)
    rules["client"]["methods"]["*"].update(
        {"fallback": {"mode": "default", "on": ["breaker"]}, "defer": True, "defer_max_items": 4}
    )
    c = client(rules)
    c.gov.register_fallback(f"{ECHO}/Unary", default=echo_pb2.EchoReply(text="queued"))
    stub = c.stub(b.target)

    def call(text: str) -> str:
        try:
            return str(stub.Unary(echo_pb2.EchoRequest(text=text)).text)
        except grpc.RpcError as error:
            return str(error.code().name)

    flaky.code = grpc.StatusCode.UNAVAILABLE
    assert [call(f"n{i}") for i in range(4)] == ["queued"] * 4  # failed: queued, caller answered
    assert flaky.calls == 4  # and the breaker is open now
    assert call("n5") == "RESOURCE_EXHAUSTED"  # the queue holds 4: refused explicitly, not lost
    assert decisions(c.registry, "deferral", "rejected") == 1
    pending = {"target": b.target, "method": f"/{ECHO}/Unary"}
    assert metric_value(c.registry, "governance_deferred_pending", **pending) == 4
    flaky.code = None  # the target recovers: a probe closes the breaker, then the queue drains
    wait_until(lambda: call("probe") == "live:probe", timeout=10, message="breaker closed")
    wait_until(lambda: flaky.calls >= 4 + 1 + 4, timeout=10, message="deferred calls sent")
    assert decisions(c.registry, "deferral", "deferred") == 4
    wait_until(
        lambda: metric_value(c.registry, "governance_deferred_pending", **pending) == 0,
        timeout=10,
        message="the queue gauge drained",
    )
