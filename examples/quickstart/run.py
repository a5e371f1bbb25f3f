"""Run the two-service example: an OTLP receiver, inventory (sync), order (aio) and a load loop.

    python examples/quickstart/run.py              # until Ctrl-C
    python examples/quickstart/run.py --duration 10

Everything listens on loopback, on free ports. Spans land in .run/quickstart/spans.jsonl (one JSON
object per span), each service's JSON logs in .run/quickstart/logs/, and each service serves
Prometheus metrics (the URLs are printed).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from telemetry.testing import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.spans_file = workdir / "spans.jsonl"
        self.spans_file.unlink(missing_ok=True)
        taken: set[int] = set()

        def distinct_port() -> int:  # the kernel may hand the same free port out twice in a row
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            return port

        self.ports = {name: distinct_port() for name in ("otlp_grpc", "otlp_http", "inventory", "order")}
        self.metrics = {"inventory": distinct_port(), "order": distinct_port()}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.workdir / "logs" / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=ROOT,
        )

    def stop(self, *names: str) -> None:
        """SIGTERM the named processes (all when none are named) and wait for them to exit."""
        chosen = [proc for name, proc in self.procs.items() if not names or name in names]
        for proc in chosen:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in chosen:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    def wait_ready(self, name: str, target: str, timeout: float = 30) -> None:
        """Until ``target`` accepts gRPC connections; fails at once, with the log's tail, if the
        process ``name`` exited (a port taken between choosing and binding it, say)."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(target) as channel:
            ready = grpc.channel_ready_future(channel)
            while True:
                try:
                    ready.result(timeout=0.5)
                except grpc.FutureTimeoutError:
                    pass
                else:
                    return
                exited = self.procs[name].poll()
                if exited is not None or time.monotonic() > deadline:
                    log = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace")
                    tail = "\n".join(log.splitlines()[-30:])
                    state = f"exited ({exited})" if exited is not None else f"not ready in {timeout} s"
                    raise RuntimeError(f"{name} ({target}) {state}; its log ends:\n{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=0, help="seconds to run (0: until Ctrl-C)")
    parser.add_argument("--rate", type=float, default=20, help="orders per second")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / "quickstart")
    args = parser.parse_args()

    from telemetry.testing.protoc import compile_protos

    stubs = compile_protos(HERE / "protos", args.workdir / "stubs")
    stack = Stack(args.workdir)
    pythonpath = os.pathsep.join([str(stubs), str(HERE), os.environ.get("PYTHONPATH", "")])
    common = {
        "PYTHONPATH": pythonpath,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{stack.ports['otlp_grpc']}",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "TELEMETRY_METRICS_HOST": "127.0.0.1",
        "INVENTORY_ADDRESS": f"127.0.0.1:{stack.ports['inventory']}",
        "INVENTORY_TARGET": f"127.0.0.1:{stack.ports['inventory']}",
        "ORDER_ADDRESS": f"127.0.0.1:{stack.ports['order']}",
    }
    stop_requested = False

    def request_stop(*_: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start(
            "otlp-receiver",
            [
                "-m",
                "telemetry.testing.otlp_receiver",
                "--grpc-port",
                str(stack.ports["otlp_grpc"]),
                "--http-port",
                str(stack.ports["otlp_http"]),
                "--out",
                str(stack.spans_file),
            ],
            common,
        )
        for name in ("inventory", "order"):
            env = {**common, "TELEMETRY_METRICS_PORT": str(stack.metrics[name])}
            stack.start(name, [str(HERE / f"{name}.py")], env)
        for name, port_name in (("otlp-receiver", "otlp_grpc"), ("inventory", "inventory"),
                                ("order", "order")):  # fmt: skip
            stack.wait_ready(name, f"127.0.0.1:{stack.ports[port_name]}")
        print("quickstart is up:")
        for name, port in stack.metrics.items():
            print(f"  {name:<10} metrics  http://127.0.0.1:{port}/metrics")
        print(f"  spans      {stack.spans_file}")
        print(f"  logs       {args.workdir / 'logs'}/*.log")
        codes, last_trace = drive(stack, args, lambda: stop_requested, pythonpath)
        # Services flush their spans and logs as they stop; the receiver is still up to take them.
        stack.stop("order", "inventory")
        return summarise(stack, args, codes, last_trace)
    finally:
        stack.stop()


def drive(
    stack: Stack, args: argparse.Namespace, stopped: Any, pythonpath: str
) -> tuple[collections.Counter[str], str]:
    """Place orders until the duration ends or a stop is requested; status codes and a trace id."""
    sys.path[:0] = [p for p in pythonpath.split(os.pathsep) if p]
    import shop_pb2
    import shop_pb2_grpc

    import telemetry

    tel = telemetry.init(
        service_name="loadgen",
        metrics_port=None,
        otlp_endpoint=f"http://127.0.0.1:{stack.ports['otlp_grpc']}",
        span_schedule_delay=0.5,
        log_stream=(args.workdir / "logs" / "loadgen.log").open("a"),
    )
    stub = shop_pb2_grpc.OrderStub(tel.channel(f"127.0.0.1:{stack.ports['order']}"))
    codes: collections.Counter[str] = collections.Counter()
    last_trace = ""
    started = last_report = time.monotonic()
    interval = 1.0 / args.rate
    while not stopped() and (not args.duration or time.monotonic() - started < args.duration):
        invalid = sum(codes.values()) % 20 == 0  # every 20th (the first too) shows INVALID_ARGUMENT
        request = shop_pb2.PlaceOrderRequest(
            user="" if invalid else f"user-{random.randint(1, 50)}",
            sku=random.choice(["apple", "pear", "plum"]),
            quantity=1,
        )
        with tel.tracer.start_as_current_span("place order") as span:
            try:
                stub.PlaceOrder(request, timeout=2)
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
            last_trace = format(span.get_span_context().trace_id, "032x")
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            print(f"  sent {sum(codes.values())}: {dict(codes)}; spans received {count_lines(stack)}")
        time.sleep(interval)
    tel.shutdown()  # flushes the loadgen's own spans
    return codes, last_trace


def summarise(
    stack: Stack, args: argparse.Namespace, codes: collections.Counter[str], last_trace: str
) -> int:
    print(f"done: {dict(codes)}; spans received {count_lines(stack)}")
    if last_trace:
        services = sorted({s["service_name"] for s in read_spans(stack) if s["trace_id"] == last_trace})
        print(f"last trace {last_trace} spans services {services}")
        print(f"  its log lines: grep {last_trace} {args.workdir / 'logs'}/*.log")
    unexpected = {code for code in codes if code not in ("OK", "INVALID_ARGUMENT")}
    return 0 if codes["OK"] and not unexpected else 1


def read_spans(stack: Stack) -> list[dict[str, Any]]:
    if not stack.spans_file.exists():
        return []
    return [json.loads(line) for line in stack.spans_file.read_text().splitlines() if line]


def count_lines(stack: Stack) -> int:
    return len(read_spans(stack))


if __name__ == "__main__":
    sys.exit(main())
