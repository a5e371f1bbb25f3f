"""Interceptor overhead over loopback, server and client in separate processes: sync and grpc.aio,
unary and streaming.

All modes are measured in one run. Machines here are shared and noisy (bare grpcio alone swings
2x between minutes), so every mode keeps its server and client processes up, warmed and idle between
turns, and the run interleaves short slices: bare, mode, bare, mode ... Each mode slice is compared
with the bare slices on either side of it (same runtime, same workload), so slow drift cancels, and
the figure is the median of many such ratios. CPU time of the server and client processes (psutil,
over each slice) per call, and for streams per message, is reported as a second, steadier view of
what each mode adds.

Each server is pinned to one CPU and each client to another (``--no-pin`` to leave it to the
scheduler), as a Python service is usually deployed (one process per core: the GIL lets a process use
about one). Unpinned, a process's grpc and Python threads wake each other across cores: on this
2-vCPU host bare sequential calls ran at 1,555-2,000 calls/s depending only on where the scheduler
put each pair's threads, and at 3,400-3,590 pinned; that placement luck outweighed every effect
measured here.

A process's speed also depends on where its memory happens to land (address-space layout, hash
seeds: a few percent, and fixed for its lifetime), so one pair of processes per mode would give
that mode a lucky or unlucky draw for the whole run. Each mode therefore runs ``--pairs`` pairs
(3 by default) and slice i of every mode uses pair i mod pairs.

Modes:

  bare       plain grpcio (``grpc.server``/``grpc.insecure_channel``, or ``grpc.aio``'s)
  peer       opentelemetry-instrumentation-grpc server + client interceptors (tracing only; for
             grpc.aio its ``aio_server_interceptor``/``aio_client_interceptors``)
  tracing    this package, tracing only (the like-for-like comparison with the peer)
  full       this package's full chain: tracing + metrics + access logs + deadlines, 100% sampling
  full_dead  the full chain with the span exporter pointed at a dead collector

Workloads (``--workloads``, each ``<runtime>_<kind>``, runtime ``sync`` or ``aio``):

  unary          Ping: one message each way; the rate is calls/s, CPU per call
  server_stream  Stream: one request, 100 replies; the rate is messages/s, CPU per message
  bidi           PingPong: 100 request/reply round trips on one stream; messages (round trips)/s

Loads: 1 client (sequential) and 4 concurrent clients (threads for sync, tasks for aio).
Spans go through the real OTLP/gRPC exporters to a sink that discards them; access logs go to a file.

  python benchmarks/overhead.py                                   # every workload, ~30 min
  python benchmarks/overhead.py --workloads sync_unary            # the historical figure, ~5 min
  python benchmarks/overhead.py --workloads aio_unary,aio_bidi --modes bare,peer,full
  python benchmarks/overhead.py --quick                           # a smoke run
  python benchmarks/overhead.py --no-pin                          # threads where the scheduler puts them
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SpanSink,
    emit_json,
    median,
    print_table,
    spawn,
    stop,
    stubs_dir,
)

from telemetry.testing import free_port

MODES = ("bare", "peer", "tracing", "full", "full_dead", "no_log", "no_metrics", "no_deadline",
         "tracing_unexported")  # fmt: skip
# Concerns each mode of this package leaves out (the last four are diagnostics, not in the default
# run; tracing_unexported: spans made and ended but not exported, OTEL_TRACES_EXPORTER=none).
SELECT: dict[str, dict[str, bool]] = {
    "tracing": {"metrics": False, "logging": False, "deadlines": False},
    "tracing_unexported": {"metrics": False, "logging": False, "deadlines": False},
    "no_log": {"logging": False},
    "no_metrics": {"metrics": False},
    "no_deadline": {"deadlines": False},
}
DEFAULT_MODES = ("bare", "peer", "tracing", "full", "full_dead")
RUNTIMES = ("sync", "aio")
KINDS = ("unary", "server_stream", "bidi")
WORKLOADS = tuple(f"{runtime}_{kind}" for runtime in RUNTIMES for kind in KINDS)
CONCURRENCY = (1, 4)
STREAM_MESSAGES = 100  # per streaming call: the replies of Stream, the round trips of PingPong


def _otel_provider(endpoint: str) -> None:
    """The peer's SDK pipeline, configured exactly like this package's (same queue and batching)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=5),
            max_queue_size=2048,
            max_export_batch_size=512,
            schedule_delay_millis=1000,
        )
    )
    trace.set_tracer_provider(provider)


def _init_telemetry(name: str, mode: str, endpoint: str, log_path: str) -> Any:
    import telemetry

    return telemetry.init(
        service_name=name,
        traces_exporter="none" if mode == "tracing_unexported" else "otlp",
        otlp_endpoint=endpoint,
        metrics_port=0 if name.endswith("server") else None,
        metrics_host="127.0.0.1",
        log_stream=open(log_path, "a", encoding="utf-8"),
        access_log=not mode.startswith("tracing"),
        client_access_log="off" if mode.startswith("tracing") else "errors",
        sampler="always_on",
        export_timeout=5.0,
    )


# -- servers ----------------------------------------------------------------------------------------


def pin_to(cpu: int) -> None:
    """Run this process on one CPU (-1: anywhere); called first, so every thread started later
    inherits it."""
    if cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def cpus_for_pairs(pin: bool) -> tuple[int, int]:
    """(server CPU, client CPU): two distinct CPUs this process may use, or (-1, -1)."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return -1, -1
    usable = sorted(os.sched_getaffinity(0))
    return (usable[0], usable[1]) if len(usable) >= 2 else (-1, -1)


def serve(runtime: str, mode: str, port: int, endpoint: str, log_path: str) -> None:
    import bench_pb2

    if runtime == "aio":
        asyncio.run(_serve_aio(mode, port, endpoint, log_path, bench_pb2))
    else:
        _serve_sync(mode, port, endpoint, log_path, bench_pb2)


def _serve_sync(mode: str, port: int, endpoint: str, log_path: str, pb: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import bench_pb2_grpc
    import grpc

    class Bench(bench_pb2_grpc.BenchServicer):
        def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.Payload(text=request.text, number=request.number + 1)

        def Stream(self, request: Any, context: Any) -> Any:  # noqa: N802
            reply = pb.Payload(text=request.text)
            for _ in range(request.number):
                yield reply

        def PingPong(self, requests: Any, context: Any) -> Any:  # noqa: N802
            for request in requests:
                yield pb.Payload(text=request.text, number=request.number + 1)

    if mode == "bare":
        server = grpc.server(ThreadPoolExecutor(16))
    elif mode == "peer":
        from opentelemetry.instrumentation.grpc import server_interceptor

        _otel_provider(endpoint)
        server = grpc.server(ThreadPoolExecutor(16), interceptors=[server_interceptor()])
    else:
        tel = _init_telemetry("bench-server", mode, endpoint, log_path)
        server = tel.server(max_workers=16, **SELECT.get(mode, {}))
    bench_pb2_grpc.add_BenchServicer_to_server(Bench(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()


async def _serve_aio(mode: str, port: int, endpoint: str, log_path: str, pb: Any) -> None:
    import bench_pb2_grpc
    import grpc.aio

    class Bench(bench_pb2_grpc.BenchServicer):
        async def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.Payload(text=request.text, number=request.number + 1)

        async def Stream(self, request: Any, context: Any) -> Any:  # noqa: N802
            reply = pb.Payload(text=request.text)
            for _ in range(request.number):
                yield reply

        async def PingPong(self, requests: Any, context: Any) -> Any:  # noqa: N802
            async for request in requests:
                yield pb.Payload(text=request.text, number=request.number + 1)

    if mode == "bare":
        server = grpc.aio.server()
    elif mode == "peer":
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        _otel_provider(endpoint)
        server = grpc.aio.server(interceptors=[aio_server_interceptor()])
    else:
        tel = _init_telemetry("bench-server", mode, endpoint, log_path)
        server = tel.aio_server(**SELECT.get(mode, {}))
    bench_pb2_grpc.add_BenchServicer_to_server(Bench(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


# -- clients ----------------------------------------------------------------------------------------


def _cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _sync_calls(stub: Any, pb: Any) -> dict[str, Callable[[], int]]:
    """Per workload kind: one call, returning the messages it exchanged (1 for unary)."""
    request = pb.Payload(text="x" * 64, number=1)
    stream_request = pb.Payload(text="x" * 64, number=STREAM_MESSAGES)

    def unary() -> int:
        stub.Ping(request, timeout=5)
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


def _aio_calls(stub: Any, pb: Any) -> dict[str, Callable[[], Any]]:
    request = pb.Payload(text="x" * 64, number=1)
    stream_request = pb.Payload(text="x" * 64, number=STREAM_MESSAGES)

    async def unary() -> int:
        await stub.Ping(request, timeout=5)
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

    if mode == "bare":
        return grpc.insecure_channel(target)
    if mode == "peer":
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

        _otel_provider(endpoint)
        return intercept_channel(grpc.insecure_channel(target), client_interceptor())
    tel = _init_telemetry("bench-client", mode, endpoint, log_path)
    return tel.channel(target, **SELECT.get(mode, {}))


def _aio_channel(mode: str, target: str, endpoint: str, log_path: str) -> Any:
    import grpc.aio

    if mode == "bare":
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

    calls = _sync_calls(bench_pb2_grpc.BenchStub(_sync_channel(mode, target, endpoint, log_path)),
                        bench_pb2)  # fmt: skip
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

    calls = _aio_calls(bench_pb2_grpc.BenchStub(_aio_channel(mode, target, endpoint, log_path)),
                       bench_pb2)  # fmt: skip
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


# -- the run ----------------------------------------------------------------------------------------


class Pair:
    """One mode's server and client processes for one runtime, kept up for the whole run."""

    def __init__(
        self, runtime: str, mode: str, endpoint: str, log_path: str, cpus: tuple[int, int]
    ) -> None:
        port = free_port()
        self.server = spawn([__file__, "serve", runtime, mode, str(port), endpoint, log_path,
                             f"--cpu={cpus[0]}"], ready_line="READY")  # fmt: skip
        self.client = spawn(
            [__file__, "client", runtime, mode, f"127.0.0.1:{port}", endpoint, log_path,
             str(self.server.pid), f"--cpu={cpus[1]}"],
            ready_line="READY",
            stdin=True,
        )  # fmt: skip

    def slice(self, kind: str, concurrency: int, seconds: float) -> dict[str, float]:
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(f"run {kind} {concurrency} {seconds}\n")
        self.client.stdin.flush()
        line = self.client.stdout.readline()
        if not line:
            raise RuntimeError("benchmark client exited")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.client.stdin is not None:
            self.client.stdin.write("quit\n")
            self.client.stdin.close()
        stop(self.client)
        stop(self.server)


Sample = tuple[dict[str, float], dict[str, float]]  # (a mode slice, the mean of its bare neighbours)
Samples = dict[tuple[str, str, int], list[Sample]]  # (workload, mode, concurrency) -> samples


def run(
    slices: int,
    seconds: float,
    modes: tuple[str, ...],
    workloads: tuple[str, ...],
    pair_count: int,
    cpus: tuple[int, int],
) -> dict[str, Any]:
    sink = SpanSink()
    dead = f"http://127.0.0.1:{free_port()}"
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    others = [m for m in modes if m != "bare"]
    runtimes = sorted({w.split("_", 1)[0] for w in workloads}, key=RUNTIMES.index)
    pairs: dict[tuple[str, str], list[Pair]] = {}
    samples: Samples = {(w, m, c): [] for w in workloads for m in others for c in CONCURRENCY}
    try:
        for runtime in runtimes:
            for mode in modes:
                endpoint = dead if mode == "full_dead" else sink.endpoint
                log_path = str(logs / f"{runtime}-{mode}.log")
                pairs[(runtime, mode)] = [Pair(runtime, mode, endpoint, log_path, cpus)
                                          for _ in range(pair_count)]  # fmt: skip
        for workload in workloads:
            runtime, kind = workload.split("_", 1)
            for concurrency in CONCURRENCY:
                for mode in modes:  # warm every pair on this workload and concurrency
                    for pair in pairs[(runtime, mode)]:
                        pair.slice(kind, concurrency, 0.3)
                for index in range(slices):
                    order = others if index % 2 == 0 else list(reversed(others))
                    bare_pair = pairs[(runtime, "bare")][index % pair_count]
                    before = bare_pair.slice(kind, concurrency, seconds)
                    for mode in order:
                        figures = pairs[(runtime, mode)][index % pair_count].slice(
                            kind, concurrency, seconds
                        )
                        after = bare_pair.slice(kind, concurrency, seconds)
                        bare = {k: (before[k] + after[k]) / 2 for k in before}
                        samples[(workload, mode, concurrency)].append((figures, bare))
                        before = after
                print(f"{workload} c={concurrency}: {slices} slices per mode done", flush=True)
    finally:
        for mode_pairs in pairs.values():
            for pair in mode_pairs:
                pair.close()
        sink.server.stop(None)
    log_lines = sum(1 for p in logs.glob("*-full.log") for _ in p.open())
    return {"samples": samples, "sink_batches": sink.batches, "full_log_lines": log_lines}


def summarise(
    samples: Samples, modes: tuple[str, ...], workloads: tuple[str, ...]
) -> tuple[list[list[str]], dict[str, Any]]:
    rows: list[list[str]] = []
    figures: dict[str, Any] = {}
    for workload in workloads:
        streaming = not workload.endswith("unary")
        rate_key = "messages_per_second" if streaming else "calls_per_second"
        figures[workload] = {}
        for concurrency in CONCURRENCY:
            label = "sequential" if concurrency == 1 else f"{concurrency}_clients"
            bare_slices = [
                b for m in modes if m != "bare" for _, b in samples[(workload, m, concurrency)]
            ]
            bare = {key: median([b[key] for b in bare_slices]) for key in bare_slices[0]}
            rows.append([workload, label, "bare", f"{bare[rate_key]:.0f}", "100%", "",
                         f"{bare['server_cpu_us']:.1f}", f"{bare['client_cpu_us']:.1f}"])  # fmt: skip
            entry: dict[str, Any] = {"bare": {k: round(v, 1) for k, v in bare.items()}}
            for mode in modes:
                if mode == "bare":
                    continue
                pairs = samples[(workload, mode, concurrency)]
                ratios = sorted(m[rate_key] / b[rate_key] for m, b in pairs)
                quartiles = (ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4])
                added = {
                    side: median([m[f"{side}_cpu_us"] - b[f"{side}_cpu_us"] for m, b in pairs])
                    for side in ("server", "client")
                }
                rate = median([m[rate_key] for m, _ in pairs])
                rows.append([workload, label, mode, f"{rate:.0f}", f"{median(ratios):.1%}",
                             f"{quartiles[0]:.0%}-{quartiles[1]:.0%}", f"{added['server']:+.1f}",
                             f"{added['client']:+.1f}"])  # fmt: skip
                entry[mode] = {
                    rate_key: round(rate),
                    "ratio_to_bare": round(median(ratios), 3),
                    "ratio_iqr": [round(q, 3) for q in quartiles],
                    "server_cpu_us_added": round(added["server"], 2),
                    "client_cpu_us_added": round(added["client"], 2),
                }
            figures[workload][label] = entry
    return rows, figures


def _names(
    raw: str, known: tuple[str, ...], what: str, parser: argparse.ArgumentParser
) -> tuple[str, ...]:
    names = tuple(n for n in raw.split(",") if n)
    if not names or set(names) - set(known):
        parser.error(f"--{what}: among {', '.join(known)} (got {raw})")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve_args = sub.add_parser("serve")
    for name in ("runtime", "mode", "port", "endpoint", "log_path"):
        serve_args.add_argument(name, type=int if name == "port" else str)
    serve_args.add_argument("--cpu", type=int, default=-1)
    client_args = sub.add_parser("client")
    for name in ("runtime", "mode", "target", "endpoint", "log_path", "server_pid"):
        client_args.add_argument(name, type=int if name == "server_pid" else str)
    client_args.add_argument("--cpu", type=int, default=-1)
    parser.add_argument("--slices", type=int, default=15, help="slices per mode, workload and load")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one slice")
    parser.add_argument("--pairs", type=int, default=3, help="process pairs per mode and runtime")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and clients to CPUs")
    parser.add_argument("--quick", action="store_true", help="3 slices of 0.5 s, 1 pair: a smoke run")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"among {', '.join(MODES)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"among {', '.join(WORKLOADS)}")
    args = parser.parse_args()
    stubs_dir()
    if args.command == "serve":
        pin_to(args.cpu)
        serve(args.runtime, args.mode, args.port, args.endpoint, args.log_path)
        return
    if args.command == "client":
        pin_to(args.cpu)
        client(args.runtime, args.mode, args.target, args.endpoint, args.log_path, args.server_pid)
        return
    modes = _names(args.modes, MODES, "modes", parser)
    if "bare" not in modes or len(modes) < 2:
        parser.error(f"--modes: bare and at least one of {', '.join(MODES[1:])} (got {args.modes})")
    workloads = _names(args.workloads, WORKLOADS, "workloads", parser)
    slices, seconds = (3, 0.5) if args.quick else (args.slices, args.seconds)
    pair_count = 1 if args.quick else max(1, args.pairs)
    cpus = cpus_for_pairs(not args.no_pin)
    result = run(slices, seconds, modes, workloads, pair_count, cpus)
    rows, figures = summarise(result["samples"], modes, workloads)
    print_table(
        "Over loopback, server and client in separate processes. 'rate': calls/s for unary,\n"
        f"messages/s for streams ({STREAM_MESSAGES} per call). 'vs bare': median ratio of a mode's\n"
        "slice to the bare slices either side of it (interquartile range beside it). CPU:\n"
        "microseconds per call (unary) or per message (streams), for bare, then what each mode\n"
        "adds (median difference). "
        + (f"Servers on CPU {cpus[0]}, clients on CPU {cpus[1]}." if cpus[0] >= 0 else "Not pinned."),
        ["workload", "load", "mode", "rate", "vs bare", "ratio IQR", "server cpu us", "client cpu us"],
        rows,
    )
    print(
        f"\nspan batches received by the sink: {result['sink_batches']}; "
        f"access-log lines written in full mode: {result['full_log_lines']}"
    )
    emit_json(
        {
            "benchmark": "overhead",
            "slices": slices,
            "slice_seconds": seconds,
            "pairs": pair_count,
            "pinned_cpus": list(cpus) if cpus[0] >= 0 else None,
            "stream_messages": STREAM_MESSAGES,
            "workloads": figures,
        }
    )


if __name__ == "__main__":
    main()
