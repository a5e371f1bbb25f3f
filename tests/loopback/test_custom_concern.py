"""A concern written from docs/extending.md's description alone, on a real server: it sees every
call with its status and duration and keeps its per-call values in ``state.extras``; a misspelt hook
is an error when the chain is built, not a hook silently skipped."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from echo_service import SyncEcho
from helpers import make_config

import telemetry
from telemetry import CallState, InvalidConcernError, MethodInfo, RejectCall, RpcKind, Side
from telemetry.rpc.concern import ConcernChain


class SlowCallCounter:
    """Counts calls per method and code, and those slower than a threshold: docs/extending.md's hooks."""

    def __init__(self, slow_after: float) -> None:
        self.slow_after = slow_after
        self.calls: dict[tuple[str, str], int] = {}
        self.slow = 0
        self.prepared: list[str] = []
        self._lock = threading.Lock()

    def prepare(self, info: MethodInfo) -> None:
        self.prepared.append(info.full_method)

    def on_start(self, state: CallState) -> None:
        state.extras[self] = time.monotonic()
        if dict(state.metadata).get("x-refuse") == "yes":
            raise RejectCall(grpc.StatusCode.PERMISSION_DENIED, "refused by the custom concern")

    def on_finish(self, state: CallState) -> None:
        took = time.monotonic() - state.extras[self]
        with self._lock:
            key = (state.info.full_method, state.code.name)
            self.calls[key] = self.calls.get(key, 0) + 1
            self.slow += took >= self.slow_after


def test_a_concern_from_the_readme_sees_every_call() -> None:
    tel = telemetry.Telemetry(make_config("custom"))
    counter = SlowCallCounter(slow_after=0.05)
    interceptor = telemetry.ServerInterceptor([*tel.server_concerns(), counter])
    server = grpc.server(ThreadPoolExecutor(4), interceptors=[interceptor])
    echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(tel), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=10)
            stub.Unary(echo_pb2.EchoRequest(text="x", sleep_seconds=0.1), timeout=10)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Unary(echo_pb2.EchoRequest(text="x"), metadata=[("x-refuse", "yes")], timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        server.stop(None)
        tel.shutdown()
    method = "/telemetry.test.Echo/Unary"
    assert counter.prepared == [method]
    # The call it refused never started for it, so it does not finish it either.
    assert counter.calls == {(method, "OK"): 2}
    assert counter.slow == 1


class Misspelt:
    def on_start(self, state: CallState) -> None:
        pass

    def on_finsh(self, state: CallState) -> None:  # the typo the chain must not skip silently
        pass


class NearMiss:
    def prepar(self, info: MethodInfo) -> None:
        pass


class NotCallable:
    on_finish = 3


class WrongArguments:
    def on_message(self, state: CallState) -> None:  # on_message takes (state, received)
        pass


@pytest.mark.parametrize(
    ("concern", "message"),
    [
        (Misspelt(), "Misspelt.on_finsh is not a concern hook .*did you mean on_finish"),
        (NearMiss(), "NearMiss.prepar is not a concern hook .*did you mean prepare"),
        (NotCallable(), "NotCallable.on_finish is a hook name but not callable"),
        (
            WrongArguments(),
            r"WrongArguments.on_message must take 2 positional arguments \(state, received\)",
        ),
    ],
)
def test_a_bad_hook_is_an_error_when_the_chain_is_built(concern: Any, message: str) -> None:
    tel = telemetry.Telemetry(make_config("custom"))
    with pytest.raises(InvalidConcernError, match=message):
        telemetry.ServerInterceptor([*tel.server_concerns(), concern])
    with pytest.raises(InvalidConcernError, match=message):
        telemetry.ClientInterceptor([*tel.client_concerns(), concern])
    tel.shutdown()


class PerMethod:
    """Hands out a per-method part whose hook is misspelt: found when the method is prepared."""

    def for_method(self, info: MethodInfo) -> Misspelt:
        return Misspelt()


def test_a_bad_per_method_part_sits_its_method_out_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = ConcernChain([PerMethod()])  # for_method itself is a good hook
    info = chain.prepare(MethodInfo("/pkg.Svc/Method", RpcKind.UNARY, Side.SERVER))
    assert info.starters == () and info.finishers == ()
    assert "Misspelt.on_finsh is not a concern hook" in caplog.text
