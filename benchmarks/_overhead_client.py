"""The overhead benchmark's client process: connects once (plain or with a mode's interceptors),
then runs timed slices on command from stdin (``run KIND CONCURRENCY SECONDS``), answering each with
one JSON line of rates and the CPU of both processes per message. ``overhead.py client ...`` runs it."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from _overhead_modes import SELECT, STREAM_MESSAGES, _init_telemetry, _otel_provider


def _cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _sync_calls(stub: Any, pb: Any, metadata: Any = None) -> dict[str, Callable[[], int]]:
    """Per workload kind: one call, returning the messages it exchanged (1 for unary)."""
    request = pb.Payload(text="x" * 64, number=1)
    stream_request = pb.Payload(text="x" * 64, number=STREAM_MESSAGES)

    def unary() -> int:
        stub.Ping(request, timeout=5, metadata=metadata)
        return 1

    def server_stream() -> int:
        return sum(1 for _ in stub.Stream(stream_request, timeout=5))

    def bidi() -> int:
        # Ping-pong: the next request goes only after the previous reply arrived.
        turn = threading.Semaphore(1)
        replies = 0

        def requests() -> Any:
            for _ in range(STREAM_MESSAGES):
                turn.acquire()
                yield request

        for _ in stub.PingPong(requests(), timeout=5):
            replies += 1
            turn.release()
        return replies

    return {"unary": unary, "server_stream": server_stream, "bidi": bidi}


def _aio_calls(stub: Any, pb: Any, metadata: Any = None) -> dict[str, Callable[[], Any]]:
    request = pb.Payload(text="x" * 64, number=1)
    stream_request = pb.Payload(text="x" * 64, number=STREAM_MESSAGES)

    async def unary() -> int:
        await stub.Ping(request, timeout=5, metadata=metadata)
        return 1

    async def server_stream() -> int:
        return sum([1 async for _ in stub.Stream(stream_request, timeout=5)])

    async def bidi() -> int:
        call = stub.PingPong(timeout=5)
        for _ in range(STREAM_MESSAGES):
            await call.write(request)
            await call.read()
        await call.done_writing()
        await call.read()  # the end of the stream (grpc.aio.EOF) and its status
        return STREAM_MESSAGES

    return {"unary": unary, "server_stream": server_stream, "bidi": bidi}


def _sync_channel(mode: str, target: str, endpoint: str, log_path: str) -> Any:
    import grpc

    if mode in ("bare", "header"):
        return grpc.insecure_channel(target)
    if mode == "peer":
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

        _otel_provider(endpoint)
        return intercept_channel(grpc.insecure_channel(target), client_interceptor())
    if mode == "floor":
        from _overhead_floor import PassThroughClientInterceptor

        return grpc.intercept_channel(grpc.insecure_channel(target), PassThroughClientInterceptor())
    tel = _init_telemetry("bench-client", mode, endpoint, log_path)
    return tel.channel(target, **SELECT.get(mode, {}))


def _aio_channel(mode: str, target: str, endpoint: str, log_path: str) -> Any:
    import grpc.aio

    if mode in ("bare", "header"):
        return grpc.aio.insecure_channel(target)
    if mode == "peer":
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        _otel_provider(endpoint)
        return grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors())
    tel = _init_telemetry("bench-client", mode, endpoint, log_path)
    return tel.aio_channel(target, **SELECT.get(mode, {}))


def client(runtime: str, mode: str, target: str, endpoint: str, log_path: str, server_pid: int) -> None:
    """A worker: connects once, then runs slices on command (``run KIND CONCURRENCY SECONDS``)."""
    import psutil

    processes = (psutil.Process(), psutil.Process(server_pid))
    if runtime == "aio":
        asyncio.run(_aio_client(mode, target, endpoint, log_path, processes))
    else:
        _sync_client(mode, target, endpoint, log_path, processes)


def _sync_client(mode: str, target: str, endpoint: str, log_path: str, processes: Any) -> None:
    import bench_pb2
    import bench_pb2_grpc
    from _overhead_floor import TRACEPARENT

    header = (TRACEPARENT,)
    calls = _sync_calls(bench_pb2_grpc.BenchStub(_sync_channel(mode, target, endpoint, log_path)),
                        bench_pb2, header if mode == "header" else None)  # fmt: skip
    for call in calls.values():  # connect, and each method's first-call setup
        call()

    def run(kind: str, concurrency: int, seconds: float) -> tuple[int, int]:
        counts = [(0, 0)] * concurrency
        until = time.perf_counter() + seconds

        def loop(index: int) -> None:
            n = messages = 0
            while time.perf_counter() < until:
                messages += calls[kind]()
                n += 1
            counts[index] = (n, messages)

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    meter = _Meter(processes)
    print("READY", flush=True)
    for line in sys.stdin:
        command = _command(line)
        if command is None:
            break
        meter.start()
        print(json.dumps(meter.figures(*run(*command))), flush=True)


async def _aio_client(mode: str, target: str, endpoint: str, log_path: str, processes: Any) -> None:
    import bench_pb2
    import bench_pb2_grpc
    from _overhead_floor import TRACEPARENT

    calls = _aio_calls(bench_pb2_grpc.BenchStub(_aio_channel(mode, target, endpoint, log_path)),
                       bench_pb2, (TRACEPARENT,) if mode == "header" else None)  # fmt: skip
    for call in calls.values():
        await call()

    async def run(kind: str, concurrency: int, seconds: float) -> tuple[int, int]:
        until = time.perf_counter() + seconds

        async def loop() -> tuple[int, int]:
            n = messages = 0
            while time.perf_counter() < until:
                messages += await calls[kind]()
                n += 1
            return n, messages

        counts = await asyncio.gather(*(loop() for _ in range(concurrency)))
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    loop = asyncio.get_running_loop()
    meter = _Meter(processes)
    print("READY", flush=True)
    while True:
        command = _command(await loop.run_in_executor(None, sys.stdin.readline))
        if command is None:
            break
        meter.start()
        print(json.dumps(meter.figures(*await run(*command))), flush=True)


def _command(line: str) -> tuple[str, int, float] | None:
    """``run KIND CONCURRENCY SECONDS`` as arguments; None for ``quit`` or the end of input."""
    words = line.split()
    if not words or words[0] == "quit":
        return None
    return words[1], int(words[2]), float(words[3])


class _Meter:
    """One slice's rates, and CPU of both processes per message (per call for unary: there each
    call is one message)."""

    def __init__(self, processes: Any) -> None:
        self._processes = processes
        self._before = (0.0, 0.0)
        self._start = 0.0

    def start(self) -> None:
        me, server = self._processes
        self._before = (_cpu_seconds(me), _cpu_seconds(server))
        self._start = time.perf_counter()

    def figures(self, calls: int, messages: int) -> dict[str, float]:
        elapsed = time.perf_counter() - self._start
        me, server = self._processes
        messages = max(messages, 1)
        return {
            "calls_per_second": calls / elapsed,
            "messages_per_second": messages / elapsed,
            "client_cpu_us": (_cpu_seconds(me) - self._before[0]) / messages * 1e6,
            "server_cpu_us": (_cpu_seconds(server) - self._before[1]) / messages * 1e6,
        }
