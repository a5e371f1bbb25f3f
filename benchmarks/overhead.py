"""Interceptor overhead: unary calls/s over loopback, server and client in separate processes.

Modes, all measured in one run and alternated round by round (medians reported):
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

from _common import (  # noqa: E402
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
        log_stream=open(log_path, "a", encoding="utf-8"),  # noqa: SIM115 - lives as long as the process
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

    class Bench(bench_pb2_grpc.BenchServicer):  # type: ignore[misc]
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


def client(mode: str, target: str, endpoint: str, log_path: str, seconds: float, warmup: float) -> None:
    import bench_pb2
    import bench_pb2_grpc
    import grpc

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

    results: dict[int, float] = {}
    for concurrency in CONCURRENCY:
        counts = [0] * concurrency

        def loop(index: int, until: float) -> None:
            n = 0
            while time.perf_counter() < until:
                stub.Ping(request, timeout=5)
                n += 1
            counts[index] = n

        threads_warm = [
            threading.Thread(target=loop, args=(i, time.perf_counter() + warmup))
            for i in range(concurrency)
        ]
        for t in threads_warm:
            t.start()
        for t in threads_warm:
            t.join()
        start = time.perf_counter()
        threads = [threading.Thread(target=loop, args=(i, start + seconds)) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results[concurrency] = sum(counts) / (time.perf_counter() - start)
    print(json.dumps({"calls_per_second": results}), flush=True)


def run(rounds: int, seconds: float, warmup: float, modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    sink = SpanSink()
    dead = f"http://127.0.0.1:{free_port()}"
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    samples: dict[tuple[str, int], list[float]] = {(m, c): [] for m in modes for c in CONCURRENCY}
    for round_index in range(rounds):
        order = modes if round_index % 2 == 0 else tuple(reversed(modes))
        for mode in order:
            endpoint = dead if mode == "full_dead" else sink.endpoint
            port = free_port()
            log_path = str(logs / f"{mode}.log")
            server = spawn([__file__, "serve", mode, str(port), endpoint, log_path], ready_line="READY")
            try:
                child = spawn(
                    [
                        __file__,
                        "client",
                        mode,
                        f"127.0.0.1:{port}",
                        endpoint,
                        log_path,
                        str(seconds),
                        str(warmup),
                    ]
                )
                out, _ = child.communicate(timeout=seconds * 10 + 60)
                if child.returncode != 0:
                    raise RuntimeError(f"client {mode} failed: {out}")
                line = next(ln for ln in out.splitlines() if ln.startswith("{"))
                figures = json.loads(line)["calls_per_second"]
                for concurrency in CONCURRENCY:
                    samples[(mode, concurrency)].append(float(figures[str(concurrency)]))
                print(
                    f"round {round_index + 1}/{rounds} {mode:<9} "
                    + "  ".join(f"c={c}: {figures[str(c)]:.0f}/s" for c in CONCURRENCY),
                    flush=True,
                )
            finally:
                stop(server)
    sink.server.stop(None)
    log_lines = sum(1 for p in logs.glob("full.log") for _ in p.open())
    return {"samples": samples, "sink_batches": sink.batches, "full_log_lines": log_lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("mode")
    s.add_argument("port", type=int)
    s.add_argument("endpoint")
    s.add_argument("log_path")
    c = sub.add_parser("client")
    c.add_argument("mode")
    c.add_argument("target")
    c.add_argument("endpoint")
    c.add_argument("log_path")
    c.add_argument("seconds", type=float)
    c.add_argument("warmup", type=float)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke run")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of modes")
    args = parser.parse_args()
    stubs_dir()
    if args.command == "serve":
        serve(args.mode, args.port, args.endpoint, args.log_path)
        return
    if args.command == "client":
        client(args.mode, args.target, args.endpoint, args.log_path, args.seconds, args.warmup)
        return
    rounds, seconds, warmup = (1, 1.0, 0.3) if args.quick else (args.rounds, args.seconds, args.warmup)
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = set(modes) - set(MODES)
    if unknown or "bare" not in modes:
        parser.error(f"--modes: choose from {', '.join(MODES)}, including bare (got {args.modes})")
    result = run(rounds, seconds, warmup, modes)
    samples = result["samples"]
    medians = {key: median(values) for key, values in samples.items()}
    rows = []
    figures: dict[str, Any] = {"benchmark": "overhead", "rounds": rounds, "seconds": seconds}
    for concurrency in CONCURRENCY:
        bare = medians[("bare", concurrency)] or 1.0
        label = "sequential" if concurrency == 1 else f"{concurrency}_clients"
        figures[label] = {}
        for mode in modes:
            value = medians[(mode, concurrency)]
            spread = samples[(mode, concurrency)]
            rows.append(
                [
                    label,
                    mode,
                    f"{value:.0f}",
                    f"{value / bare:.1%}",
                    f"{min(spread):.0f}-{max(spread):.0f}",
                ]
            )
            figures[label][mode] = {
                "calls_per_second": round(value),
                "ratio_to_bare": round(value / bare, 3),
            }
    print_table(
        "Unary calls/s over loopback, server and client in separate processes (median of rounds)",
        ["load", "mode", "calls/s", "vs bare", "range"],
        rows,
    )
    print(
        f"\nspan batches received by the sink: {result['sink_batches']}; "
        f"access-log lines written in full mode: {result['full_log_lines']}"
    )
    emit_json(figures)


if __name__ == "__main__":
    main()
