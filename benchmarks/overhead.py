"""Interceptor overhead: unary calls/s over loopback, server and client in separate processes.

Modes, all measured in one run. Machines here are shared and noisy (bare grpcio alone varies 2x
between minutes), so every mode runs next to its own bare run in each round and the figure is the
median over rounds of those paired ratios. CPU time per call of the server and client processes,
sampled over the measured window only, is reported as a steadier view of what each mode adds.

  bare       plain grpcio
  peer       opentelemetry-instrumentation-grpc server + client interceptors (tracing only)
  tracing    this package, tracing only (the like-for-like comparison with the peer)
  full       this package's full chain: tracing + metrics + access logs + deadlines, 100% sampling
  full_dead  the full chain with the span exporter pointed at a dead collector

Spans go through the real OTLP/gRPC exporter and BatchSpanProcessor to a sink process that discards
them; access logs go to a file. Run: ``python benchmarks/overhead.py`` (``--quick`` for a smoke run).
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
    free_port,
    median,
    print_table,
    spawn,
    stop,
    stubs_dir,
)

MODES = ("bare", "peer", "tracing", "full", "full_dead")
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
        if mode == "tracing":
            server = grpc.server(
                ThreadPoolExecutor(16),
                interceptors=[tel.server_interceptor(metrics=False, logging=False, deadlines=False)],
            )
        else:
            server = tel.server()
    bench_pb2_grpc.add_BenchServicer_to_server(Bench(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("READY", flush=True)
    server.wait_for_termination()


def client(
    mode: str,
    target: str,
    endpoint: str,
    log_path: str,
    seconds: float,
    warmup: float,
    server_pid: int,
) -> None:
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
        if mode == "tracing":
            interceptor = tel.client_interceptor(target, metrics=False, logging=False, deadlines=False)
            channel = grpc.intercept_channel(grpc.insecure_channel(target), interceptor)
        else:
            channel = tel.channel(target)
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

    results: dict[int, dict[str, float]] = {}
    for concurrency in CONCURRENCY:
        calls_in_threads(concurrency, warmup)
        client_before, server_before = cpu_seconds(me), cpu_seconds(server)
        start = time.perf_counter()
        calls = max(calls_in_threads(concurrency, seconds), 1)
        elapsed = time.perf_counter() - start
        results[concurrency] = {
            "calls_per_second": calls / elapsed,
            "client_cpu_us": (cpu_seconds(me) - client_before) / calls * 1e6,
            "server_cpu_us": (cpu_seconds(server) - server_before) / calls * 1e6,
        }
    print(json.dumps({"results": results}), flush=True)


def measure(mode: str, endpoint: str, log_path: str, seconds: float, warmup: float) -> dict[int, Any]:
    """One server process and one client process for ``mode``; figures per concurrency."""
    port = free_port()
    server = spawn([__file__, "serve", mode, str(port), endpoint, log_path], ready_line="READY")
    try:
        args = [mode, f"127.0.0.1:{port}", endpoint, log_path, str(seconds), str(warmup)]
        child = spawn([__file__, "client", *args, str(server.pid)])
        out, _ = child.communicate(timeout=seconds * 10 + 60)
        if child.returncode != 0:
            raise RuntimeError(f"client {mode} failed: {out}")
        line = next(ln for ln in out.splitlines() if ln.startswith("{"))
        return {int(c): figures for c, figures in json.loads(line)["results"].items()}
    finally:
        stop(server)


Pair = tuple[dict[str, float], dict[str, float]]  # (a mode's figures, its paired bare run's)


def run(rounds: int, seconds: float, warmup: float, modes: tuple[str, ...]) -> dict[str, Any]:
    sink = SpanSink()
    dead = f"http://127.0.0.1:{free_port()}"
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    others = [m for m in modes if m != "bare"]
    samples: dict[tuple[str, int], list[Pair]] = {(m, c): [] for m in others for c in CONCURRENCY}
    for round_index in range(rounds):
        forward = round_index % 2 == 0
        for mode in others if forward else list(reversed(others)):
            endpoint = dead if mode == "full_dead" else sink.endpoint
            order = ("bare", mode) if forward else (mode, "bare")
            figures = {m: measure(m, endpoint, str(logs / f"{m}.log"), seconds, warmup) for m in order}
            for concurrency in CONCURRENCY:
                samples[(mode, concurrency)].append(
                    (figures[mode][concurrency], figures["bare"][concurrency])
                )
            summary = "  ".join(
                f"c={c}: {figures[mode][c]['calls_per_second']:.0f}/s"
                f" (bare {figures['bare'][c]['calls_per_second']:.0f}/s)"
                for c in CONCURRENCY
            )
            print(f"round {round_index + 1}/{rounds} {mode:<9} {summary}", flush=True)
    sink.server.stop(None)
    log_lines = sum(1 for p in logs.glob("full.log") for _ in p.open())
    return {"samples": samples, "sink_batches": sink.batches, "full_log_lines": log_lines}


def summarise(
    samples: dict[tuple[str, int], list[Pair]], modes: tuple[str, ...]
) -> tuple[list[Any], dict[str, Any]]:
    rows: list[list[str]] = []
    figures: dict[str, Any] = {}
    for concurrency in CONCURRENCY:
        label = "sequential" if concurrency == 1 else f"{concurrency}_clients"
        bare_runs = [b for m in modes if m != "bare" for _, b in samples[(m, concurrency)]]
        bare = {key: median([b[key] for b in bare_runs]) for key in bare_runs[0]}
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
            ratios = [m["calls_per_second"] / b["calls_per_second"] for m, b in pairs]
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
                    f"{min(ratios):.0%}-{max(ratios):.0%}",
                    f"{added['server']:+.0f}",
                    f"{added['client']:+.0f}",
                ]
            )
            figures[label][mode] = {
                "calls_per_second": round(rate),
                "ratio_to_bare": round(median(ratios), 3),
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
    for name in ("mode", "target", "endpoint", "log_path", "seconds", "warmup", "server_pid"):
        kind = float if name in ("seconds", "warmup") else int if name == "server_pid" else str
        client_args.add_argument(name, type=kind)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke run")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of modes")
    args = parser.parse_args()
    stubs_dir()
    if args.command == "serve":
        serve(args.mode, args.port, args.endpoint, args.log_path)
        return
    if args.command == "client":
        client(
            args.mode,
            args.target,
            args.endpoint,
            args.log_path,
            args.seconds,
            args.warmup,
            args.server_pid,
        )
        return
    modes = tuple(m for m in args.modes.split(",") if m)
    if set(modes) - set(MODES) or "bare" not in modes or len(modes) < 2:
        parser.error(f"--modes: bare and at least one of {', '.join(MODES[1:])} (got {args.modes})")
    rounds, seconds, warmup = (1, 1.0, 0.3) if args.quick else (args.rounds, args.seconds, args.warmup)
    result = run(rounds, seconds, warmup, modes)
    rows, figures = summarise(result["samples"], modes)
    print_table(
        "Unary calls over loopback, server and client in separate processes. 'vs bare': median over\n"
        "rounds of the ratio to the bare run paired with it. CPU: microseconds per call, bare, then\n"
        "what each mode adds (median of paired differences).",
        ["load", "mode", "calls/s", "vs bare", "ratio range", "server cpu us", "client cpu us"],
        rows,
    )
    print(
        f"\nspan batches received by the sink: {result['sink_batches']}; "
        f"access-log lines written in full mode: {result['full_log_lines']}"
    )
    emit_json({"benchmark": "overhead", "rounds": rounds, "seconds": seconds, **figures})


if __name__ == "__main__":
    main()
