"""The concern chain: which hooks it runs, in which order, per method, and what a refusal undoes."""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

import grpc
import pytest

from telemetry.computed_cache import ComputedCache
from telemetry.rpc.call import CallState, MethodInfo, RejectCall, RpcKind, Side, current_call
from telemetry.rpc.concern import ConcernChain


class Recorder:
    """A concern with every hook, recording what ran."""

    def __init__(self, name: str, log: list[str], refuse: bool = False) -> None:
        self.name = name
        self.log = log
        self.refuse = refuse

    def prepare(self, info: MethodInfo) -> None:
        self.log.append(f"{self.name}.prepare")

    def on_start(self, state: CallState) -> None:
        self.log.append(f"{self.name}.start")
        if self.refuse:
            raise RejectCall(grpc.StatusCode.RESOURCE_EXHAUSTED, "refused")

    def on_message(self, state: CallState, received: bool) -> None:
        self.log.append(f"{self.name}.message")

    def on_finish(self, state: CallState) -> None:
        self.log.append(f"{self.name}.finish:{state.code.name}")


class FinishOnly:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_finish(self, state: CallState) -> None:
        self.log.append("finish-only.finish")


class PerMethod:
    """Hands each method its own part; sits out methods of the service ``skipped``."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def for_method(self, info: MethodInfo) -> Recorder | None:
        return None if info.service == "skipped" else Recorder(f"part[{info.method}]", self.log)


def _call(chain: ConcernChain, method: str = "/svc.S/M", kind: RpcKind = RpcKind.UNARY) -> CallState:
    info = chain.prepare(MethodInfo(method, kind, Side.SERVER))
    return CallState(info, perf_counter(), None, "ipv4:127.0.0.1:1")


def test_hooks_run_in_order_and_finish_in_reverse_only_where_defined() -> None:
    log: list[str] = []
    chain = ConcernChain([Recorder("a", log), FinishOnly(log), Recorder("b", log)])
    state = _call(chain)
    assert log == ["a.prepare", "b.prepare"]
    log.clear()
    chain.start(state)
    chain.finish(state)
    assert log == ["a.start", "b.start", "b.finish:OK", "finish-only.finish", "a.finish:OK"]
    assert state.duration > 0


def test_for_method_parts_serve_their_method_and_none_sits_it_out() -> None:
    log: list[str] = []
    chain = ConcernChain([PerMethod(log)])
    for method in ("/svc.S/One", "/svc.S/Two", "/skipped/Three"):
        state = _call(chain, method)
        chain.start(state)
        chain.finish(state)
    # The chain prepares concerns, not the parts they hand it.
    assert log == [
        "part[One].start", "part[One].finish:OK", "part[Two].start", "part[Two].finish:OK",
    ]  # fmt: skip


def test_a_refusal_finishes_the_concerns_ahead_of_it_with_its_code() -> None:
    log: list[str] = []
    chain = ConcernChain(
        [Recorder("a", log), FinishOnly(log), Recorder("no", log, refuse=True), Recorder("c", log)]
    )
    state = _call(chain)
    log.clear()
    with pytest.raises(RejectCall):
        chain.start(state)
    assert log == ["a.start", "no.start", "finish-only.finish", "a.finish:RESOURCE_EXHAUSTED"]


def test_messages_reach_hooks_for_streams_only() -> None:
    log: list[str] = []
    chain = ConcernChain([Recorder("a", log)])
    unary, stream = _call(chain), _call(chain, "/svc.S/S", RpcKind.BIDI_STREAM)
    log.clear()
    chain.message(unary, True)
    chain.message(stream, False)
    assert log == ["a.message"]
    assert (unary.msgs_received, stream.msgs_sent) == (1, 1)


def test_a_failing_hook_is_reported_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []

    class Broken:
        def on_start(self, state: CallState) -> None:
            raise KeyError("bug")

    chain = ConcernChain([Broken(), Recorder("a", log)])
    state = _call(chain)
    with caplog.at_level(logging.ERROR, logger="telemetry"):
        chain.start(state)
    assert "a.start" in log
    assert "Broken.on_start failed" in caplog.text


def test_a_serving_chain_makes_the_call_current_until_it_finishes() -> None:
    seen: list[Any] = []

    class Looks:
        def on_start(self, state: CallState) -> None:
            seen.append(current_call.get())

        def on_finish(self, state: CallState) -> None:
            seen.append(current_call.get())

    serving = ConcernChain([Looks()], serving=True)
    state = _call(serving)
    serving.start(state)
    serving.finish(state)
    assert seen == [state, state]
    assert current_call.get() is None

    seen.clear()
    calling = ConcernChain([Looks()])
    state = _call(calling)
    calling.start(state)
    calling.finish(state)
    assert seen == [None, None]


def test_computed_cache_computes_once_and_stays_bounded() -> None:
    computed: list[int] = []

    def square(n: int) -> int:
        computed.append(n)
        return n * n

    cache = ComputedCache(square, size=3)
    assert [cache[2], cache[2], cache[3]] == [4, 4, 9]
    assert computed == [2, 3]
    for n in range(10):
        assert cache[n] == n * n
    assert len(cache) <= 3
    with pytest.raises(ValueError, match="size"):
        ComputedCache(square, size=0)
