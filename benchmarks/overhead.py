"""Interceptor overhead: unary calls/s over loopback, server and client in separate processes.

All modes are measured in one run. Machines here are shared and noisy (bare grpcio alone swings
2x between minutes), so every mode keeps its server and client processes up, warmed and idle between
turns, and the run interleaves short slices: bare, mode, bare, mode ... Each mode slice is compared
with the bare slices on either side of it, so slow drift cancels, and the figure is the median of
many such ratios. CPU time per call of the server and client processes (psutil, over each slice)
is reported as a second, steadier view of what each mode adds.

A process's speed also depends on where its memory happens to land (address-space layout, hash
seeds: a few percent, and fixed for its lifetime), so one pair of processes per mode would give
that mode a lucky or unlucky draw for the whole run. Each mode therefore runs ``--pairs`` pairs
(3 by default) and slice i of every mode uses pair i mod pairs.

  bare       plain grpcio
  peer       opentelemetry-instrumentation-grpc server + client interceptors (tracing only)
  tracing    this package, tracing only (the like-for-like comparison with the peer)
  full       this package's full chain: tracing + metrics + access logs + deadlines, 100% sampling
  full_dead  the full chain with the span exporter pointed at a dead collector

Spans go through the real OTLP/gRPC exporters to a sink that discards them; access logs go to a file.
Run: ``python benchmarks/overhead.py`` (``--quick`` for a smoke run, ``--slices N`` for precision).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
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

MODES = ("bare", "peer", "tracing", "full", "full_dead", "no_log", "no_metrics", "no_deadline")
# Concerns each mode of this package leaves out (the last three are diagnostics, not in the default run).
SELECT: dict[str, dict[str, bool]] = {
    "tracing": {"metrics": False, "logging": False, "deadlines": False},
    "no_log": {"logging": False},
    "no_metrics": {"metrics": False},
    "no_deadline": {"deadlines": False},
}
DEFAULT_MODES = ("bare", "peer", "tracing", "full", "full_dead")
CONCURRENCY = (1, 4)


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
        otlp_endpoint=endpoint,
        metrics_port=0 if name.endswith("server") else None,
        metrics_host="127.0.0.1",
        log_stream=open(log_path, "a", encoding="utf-8"),
        access_log=mode != "tracing",
        client_access_log="errors" if mode != "tracing" else "off",
        sampler="always_on",
        export_timeout=5.0,
    )


def serve(mode: str, port: int, endpoint: str, log_path: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import bench_pb2
    import bench_pb2_grpc
    import grpc

    class Bench(bench_pb2_grpc.BenchServicer):
        def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            return bench_pb2.Payload(text=request.text, number=request.number + 1)

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


def client(mode: str, target: str, endpoint: str, log_path: str, server_pid: int) -> None:
    """A worker: connects once, then runs slices on command (``run CONCURRENCY SECONDS``)."""
    import bench_pb2
    import bench_pb2_grpc
    import grpc
    import psutil

    if mode == "bare":
        channel = grpc.insecure_channel(target)
    elif mode == "peer":
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

        _otel_provider(endpoint)
        channel = intercept_channel(grpc.insecure_channel(target), client_interceptor())
    else:
        tel = _init_telemetry("bench-client", mode, endpoint, log_path)
        channel = tel.channel(target, **SELECT.get(mode, {}))
    stub = bench_pb2_grpc.BenchStub(channel)
    request = bench_pb2.Payload(text="x" * 64, number=1)
    stub.Ping(request, timeout=10)  # connect
    me, server = psutil.Process(), psutil.Process(server_pid)

    def cpu_seconds(process: Any) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    def calls_in_threads(concurrency: int, seconds: float) -> int:
        counts = [0] * concurrency
        until = time.perf_counter() + seconds

        def loop(index: int) -> None:
            n = 0
            while time.perf_counter() < until:
                stub.Ping(request, timeout=5)
                n += 1
            counts[index] = n

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts)

    print("READY", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        concurrency, seconds = int(command[1]), float(command[2])
        client_before, server_before = cpu_seconds(me), cpu_seconds(server)
        start = time.perf_counter()
        calls = max(calls_in_threads(concurrency, seconds), 1)
        elapsed = time.perf_counter() - start
        figures = {
            "calls_per_second": calls / elapsed,
            "client_cpu_us": (cpu_seconds(me) - client_before) / calls * 1e6,
            "server_cpu_us": (cpu_seconds(server) - server_before) / calls * 1e6,
        }
        print(json.dumps(figures), flush=True)


class Pair:
    """One mode's server and client processes, kept up for the whole run."""

    def __init__(self, mode: str, endpoint: str, log_path: str) -> None:
        port = free_port()
        self.server = spawn([__file__, "serve", mode, str(port), endpoint, log_path], ready_line="READY")
        self.client = spawn(
            [__file__, "client", mode, f"127.0.0.1:{port}", endpoint, log_path, str(self.server.pid)],
            ready_line="READY",
            stdin=True,
        )

    def slice(self, concurrency: int, seconds: float) -> dict[str, float]:
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(f"run {concurrency} {seconds}\n")
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


def run(slices: int, seconds: float, modes: tuple[str, ...], pair_count: int) -> dict[str, Any]:
    sink = SpanSink()
    dead = f"http://127.0.0.1:{free_port()}"
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    others = [m for m in modes if m != "bare"]
    pairs: dict[str, list[Pair]] = {mode: [] for mode in modes}
    try:
        for mode in modes:
            endpoint = dead if mode == "full_dead" else sink.endpoint
            for _ in range(pair_count):
                pairs[mode].append(Pair(mode, endpoint, str(logs / f"{mode}.log")))
        samples: dict[tuple[str, int], list[Sample]] = {(m, c): [] for m in others for c in CONCURRENCY}
        for concurrency in CONCURRENCY:
            for mode_pairs in pairs.values():  # warm every pair at this concurrency
                for pair in mode_pairs:
                    pair.slice(concurrency, 0.3)
            for index in range(slices):
                order = others if index % 2 == 0 else list(reversed(others))
                bare_pair = pairs["bare"][index % pair_count]
                before = bare_pair.slice(concurrency, seconds)
                for mode in order:
                    figures = pairs[mode][index % pair_count].slice(concurrency, seconds)
                    after = bare_pair.slice(concurrency, seconds)
                    bare = {k: (before[k] + after[k]) / 2 for k in before}
                    samples[(mode, concurrency)].append((figures, bare))
                    before = after
            print(f"c={concurrency}: {slices} slices per mode done", flush=True)
    finally:
        for mode_pairs in pairs.values():
            for pair in mode_pairs:
                pair.close()
        sink.server.stop(None)
    log_lines = sum(1 for p in logs.glob("full.log") for _ in p.open())
    return {"samples": samples, "sink_batches": sink.batches, "full_log_lines": log_lines}


def summarise(
    samples: dict[tuple[str, int], list[Sample]], modes: tuple[str, ...]
) -> tuple[list[list[str]], dict[str, Any]]:
    rows: list[list[str]] = []
    figures: dict[str, Any] = {}
    for concurrency in CONCURRENCY:
        label = "sequential" if concurrency == 1 else f"{concurrency}_clients"
        bare_slices = [b for m in modes if m != "bare" for _, b in samples[(m, concurrency)]]
        bare = {key: median([b[key] for b in bare_slices]) for key in bare_slices[0]}
        rows.append(
            [
                label,
                "bare",
                f"{bare['calls_per_second']:.0f}",
                "100%",
                "",
                f"{bare['server_cpu_us']:.0f}",
                f"{bare['client_cpu_us']:.0f}",
            ]
        )
        figures[label] = {"bare": {k: round(v, 1) for k, v in bare.items()}}
        for mode in modes:
            if mode == "bare":
                continue
            pairs = samples[(mode, concurrency)]
            ratios = sorted(m["calls_per_second"] / b["calls_per_second"] for m, b in pairs)
            quartiles = (ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4])
            added = {
                side: median([m[f"{side}_cpu_us"] - b[f"{side}_cpu_us"] for m, b in pairs])
                for side in ("server", "client")
            }
            rate = median([m["calls_per_second"] for m, _ in pairs])
            rows.append(
                [
                    label,
                    mode,
                    f"{rate:.0f}",
                    f"{median(ratios):.1%}",
                    f"{quartiles[0]:.0%}-{quartiles[1]:.0%}",
                    f"{added['server']:+.0f}",
                    f"{added['client']:+.0f}",
                ]
            )
            figures[label][mode] = {
                "calls_per_second": round(rate),
                "ratio_to_bare": round(median(ratios), 3),
                "ratio_iqr": [round(q, 3) for q in quartiles],
                "server_cpu_us_added": round(added["server"], 1),
                "client_cpu_us_added": round(added["client"], 1),
            }
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve_args = sub.add_parser("serve")
    for name in ("mode", "port", "endpoint", "log_path"):
        serve_args.add_argument(name, type=int if name == "port" else str)
    client_args = sub.add_parser("client")
    for name in ("mode", "target", "endpoint", "log_path", "server_pid"):
        client_args.add_argument(name, type=int if name == "server_pid" else str)
    parser.add_argument("--slices", type=int, default=15, help="slices per mode and concurrency")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one slice")
    parser.add_argument("--pairs", type=int, default=3, help="process pairs per mode")
    parser.add_argument("--quick", action="store_true", help="3 slices of 0.5 s: a smoke run")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"among {', '.join(MODES)}")
    args = parser.parse_args()
    stubs_dir()
    if args.command == "serve":
        serve(args.mode, args.port, args.endpoint, args.log_path)
        return
    if args.command == "client":
        client(args.mode, args.target, args.endpoint, args.log_path, args.server_pid)
        return
    modes = tuple(m for m in args.modes.split(",") if m)
    if set(modes) - set(MODES) or "bare" not in modes or len(modes) < 2:
        parser.error(f"--modes: bare and at least one of {', '.join(MODES[1:])} (got {args.modes})")
    slices, seconds = (3, 0.5) if args.quick else (args.slices, args.seconds)
    pair_count = 1 if args.quick else max(1, args.pairs)
    result = run(slices, seconds, modes, pair_count)
    rows, figures = summarise(result["samples"], modes)
    print_table(
        "Unary calls over loopback, server and client in separate processes. 'vs bare': median\n"
        "ratio of a mode's slice to the bare slices either side of it (interquartile range beside\n"
        "it). CPU: microseconds per call, for bare, then what each mode adds (median difference).",
        ["load", "mode", "calls/s", "vs bare", "ratio IQR", "server cpu us", "client cpu us"],
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
            **figures,
        }
    )


if __name__ == "__main__":
    main()
