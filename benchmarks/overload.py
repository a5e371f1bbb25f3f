"""Overload: goodput and tail latency of a CPU-bound service offered 0.5x-4x its capacity, with and
without the adaptive limiter, and with the limiter behind callers that throttle themselves.

Server and load generator run in separate processes over loopback. The service burns ``--work-ms``
of CPU per call in Python (so one core, the GIL, is its capacity). First its capacity is measured
(closed loop, enough concurrent callers to keep it busy) and its unloaded latency (one caller).
Then an open-loop generator (calls sent on a fixed schedule, whatever the server does, as real
traffic arrives) offers 0.5x, 1x, 2x and 4x capacity for ``--seconds`` each, against a fresh server
with the limiter off (``no_limiter``), on (``limiter``), and on with the generator calling through a
channel of this package with client-side adaptive throttling (``limiter+sre``: Google SRE's throttle,
``{"client": {"methods": {"*": {"throttle": {}}}}}``, which refuses locally, with UNAVAILABLE, the
share of calls the server would refuse). Every call has a deadline (``--deadline-ms``).

- goodput: calls that succeeded within their deadline, per second, and as a share of capacity;
- p99: 99th percentile latency of the admitted (successful) calls;
- shed: calls refused by the limiter (RESOURCE_EXHAUSTED, fast), late: DEADLINE_EXCEEDED,
  throttled: calls the caller's throttle refused without sending them (UNAVAILABLE).

The sync service runs one handler thread (``--workers``), as a CPU-bound Python service should:
one process computes on one core (the GIL), so more threads add no capacity and make admitted calls
time-slice the GIL, each taking as long as all of them; with one thread the call the limiter admits
beyond the running one waits its turn in grpc's queue (FIFO) instead. ``--workers 4`` or ``32`` show
what time-slicing costs (benchmarks/RESULTS.md).

Target (issue 3): with the limiter, at 2x and 4x, goodput >= 90% of capacity and p99 <= 2x the
unloaded p99 (checked for ``limiter`` and ``limiter+sre`` separately).

    python benchmarks/overload.py --seconds 6   # about 2.5 minutes
    python benchmarks/overload.py --quick    # a smoke run
    python benchmarks/overload.py --adaptive '{"cool_off": 2.0}'   # other limiter rule fields
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, print_table, spawn, stop, stubs_dir

from telemetry.testing import free_port

MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)
MODES = ("no_limiter", "limiter", "limiter+sre")


def _governance_only(service_name: str, rules: dict[str, Any] | None) -> Any:
    """This package set up for governance alone (no tracing, metrics or access log): what the
    benchmark measures is the limiter (and throttle), not telemetry's cost."""
    import telemetry

    return telemetry.init(
        service_name=service_name,
        tracing_enabled=False,
        metrics_port=None,
        access_log=False,
        log_level="error",
        governance=rules,
    )


# -- server process -----------------------------------------------------------------------------


def serve(port: int, limiter: bool, work_ms: float, flavour: str, workers: int, adaptive: str) -> None:
    stubs_dir()
    import bench_pb2
    import bench_pb2_grpc

    rules = {"adaptive": {"enabled": True, **json.loads(adaptive)}} if limiter else None
    tel = _governance_only("overload", rules)
    from telemetry.control.faults import burn_cpu

    work = work_ms / 1000

    def burn() -> None:
        # A fixed amount of this thread's CPU (not wall time: handlers sharing the GIL must not
        # finish each other's work), holding the GIL as real Python code does.
        burn_cpu(work)

    class Service(bench_pb2_grpc.BenchServicer):
        def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            burn()
            return bench_pb2.Payload(number=request.number)

    class AioService(bench_pb2_grpc.BenchServicer):
        async def Ping(self, request: Any, context: Any) -> Any:  # noqa: N802
            burn()  # blocks the loop, as CPU-bound code in an async handler does
            return bench_pb2.Payload(number=request.number)

    if flavour == "sync":
        server = tel.server(max_workers=workers)
        bench_pb2_grpc.add_BenchServicer_to_server(Service(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        server.stop(grace=None)
    else:

        async def main() -> None:
            server = tel.aio_server()
            bench_pb2_grpc.add_BenchServicer_to_server(AioService(), server)
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            await server.stop(None)

        asyncio.run(main())
    tel.shutdown()


# -- load generator process ---------------------------------------------------------------------


async def _closed_loop(stub: Any, bench_pb2: Any, callers: int, seconds: float) -> dict[str, float]:
    """Throughput with ``callers`` back-to-back callers; latency percentiles of the calls."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < end:
            started = time.perf_counter()
            await stub.Ping(bench_pb2.Payload(number=1), timeout=30)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    return {"calls_per_second": len(latencies) / elapsed, **_percentiles(latencies)}


async def _open_loop(
    stub: Any, bench_pb2: Any, rate: float, seconds: float, deadline: float, warmup: float
) -> dict[str, Any]:
    """Send calls at ``rate``/s on a fixed schedule for ``warmup + seconds``; report the last
    ``seconds`` (calls scheduled after the warm-up)."""
    import grpc

    loop = asyncio.get_running_loop()
    results: list[tuple[str, float]] = []
    start = loop.time() + 0.05
    total = int(rate * (warmup + seconds))

    async def one(scheduled: float) -> None:
        began = time.perf_counter()
        try:
            await stub.Ping(bench_pb2.Payload(number=1), timeout=deadline)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        if scheduled >= start + warmup:
            results.append((code, time.perf_counter() - began))

    tasks = []
    for i in range(total):
        at = start + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    ok = [latency for code, latency in results if code == "OK" and latency <= deadline]
    codes: dict[str, int] = {}
    for code, _ in results:
        codes[code] = codes.get(code, 0) + 1
    return {
        "offered_per_second": rate,
        "sent": len(results),
        "goodput_per_second": len(ok) / seconds,
        "codes": codes,
        **_percentiles(ok),
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(latencies)

    def pick(quantile: float) -> float:
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000

    return {"p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2)}


def load(target: str, job: str) -> None:
    stubs_dir()
    import bench_pb2
    import bench_pb2_grpc
    import grpc

    spec = json.loads(job)
    # The generator keeps every call's task until the end; its own garbage collections (up to
    # ~25 ms for a full one, measured) would stall the loop and add to the latencies it measures.
    gc.freeze()
    gc.disable()

    def open_channel() -> Any:
        if not spec.get("throttle"):
            return grpc.aio.insecure_channel(target)
        # Governance only: the generator must stay as cheap per call as the plain channel.
        tel = _governance_only("overload-load", {"client": {"methods": {"*": {"throttle": {}}}}})
        return tel.aio_channel(target, tracing=False, metrics=False, logging=False, deadlines=False)

    async def main() -> dict[str, Any]:
        async with open_channel() as channel:
            stub = bench_pb2_grpc.BenchStub(channel)
            await stub.Ping(bench_pb2.Payload(number=0), timeout=30)  # connect
            if spec["kind"] == "closed":
                return await _closed_loop(stub, bench_pb2, spec["callers"], spec["seconds"])
            return await _open_loop(
                stub, bench_pb2, spec["rate"], spec["seconds"], spec["deadline"], spec["warmup"]
            )

    print(json.dumps(asyncio.run(main())), flush=True)


# -- orchestration ------------------------------------------------------------------------------


class Server:
    def __init__(
        self, limiter: bool, work_ms: float, flavour: str, workers: int, adaptive: str = "{}"
    ) -> None:
        self.port = free_port()
        self.proc = spawn(
            [__file__, "--role", "server", "--port", str(self.port), "--work-ms", str(work_ms)]
            + ["--server", flavour, "--workers", str(workers), "--adaptive", adaptive]
            + (["--limiter"] if limiter else []),
            ready_line="ready",
            stdin=True,
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        stop(self.proc)


def run_load(target: str, spec: dict[str, Any]) -> dict[str, Any]:
    proc = spawn([__file__, "--role", "load", "--target", target, "--job", json.dumps(spec)])
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(
    seconds: float, work_ms: float, deadline_ms: float, flavour: str, workers: int, adaptive: str
) -> dict[str, Any]:
    server = Server(limiter=False, work_ms=work_ms, flavour=flavour, workers=workers)
    try:
        unloaded = run_load(server.target, {"kind": "closed", "callers": 1, "seconds": seconds})
        saturated = run_load(server.target, {"kind": "closed", "callers": 8, "seconds": seconds})
    finally:
        server.close()
    capacity = saturated["calls_per_second"]
    rows: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        for multiplier in MULTIPLIERS:
            server = Server(mode != "no_limiter", work_ms, flavour, workers, adaptive)
            try:
                spec = {
                    "kind": "open", "rate": capacity * multiplier, "seconds": seconds,
                    "deadline": deadline_ms / 1000, "warmup": min(2.0, seconds / 2),
                    "throttle": mode == "limiter+sre",
                }  # fmt: skip
                result = run_load(server.target, spec)
            finally:
                server.close()
            result["goodput_share"] = round(result["goodput_per_second"] / capacity, 3)
            rows[f"{mode}@{multiplier}x"] = result
    return {"capacity": saturated, "unloaded": unloaded, "runs": rows}


def report(
    figures: dict[str, Any],
    work_ms: float,
    deadline_ms: float,
    seconds: float,
    flavour: str,
    workers: int,
) -> None:
    capacity = figures["capacity"]["calls_per_second"]
    unloaded_p99 = figures["unloaded"]["p99_ms"]
    print(
        f"CPU-bound {flavour} service ({work_ms} ms of Python CPU per call"
        + (f", {workers} handler thread{'s' if workers > 1 else ''}" if flavour == "sync" else "")
        + "), loopback, separate processes.\n"
        f"capacity {capacity:.0f} calls/s (8 closed-loop callers); unloaded p50 "
        f"{figures['unloaded']['p50_ms']} ms, p99 {unloaded_p99} ms; deadline {deadline_ms:.0f} ms; "
        f"{seconds:.0f} s per run after warm-up"
    )
    rows = []
    target_met = {"limiter": True, "limiter+sre": True}
    for name, result in figures["runs"].items():
        mode, multiplier = name.split("@")
        p99_ratio = result["p99_ms"] / unloaded_p99 if unloaded_p99 else 0.0
        codes = result["codes"]
        rows.append([
            mode, multiplier, f"{result['offered_per_second']:.0f}",
            f"{result['goodput_per_second']:.0f}", f"{result['goodput_share'] * 100:.0f}%",
            result["p50_ms"], result["p99_ms"], f"{p99_ratio:.1f}x",
            codes.get("RESOURCE_EXHAUSTED", 0), codes.get("DEADLINE_EXCEEDED", 0),
            codes.get("UNAVAILABLE", 0),
        ])  # fmt: skip
        if mode != "no_limiter" and multiplier in ("2.0x", "4.0x"):
            met = result["goodput_share"] >= 0.9 and p99_ratio <= 2.0
            result["target_met"] = met
            target_met[mode] = target_met[mode] and met
    print_table(
        "Open-loop offered load: no limiter, the adaptive limiter, the limiter + throttled callers",
        ["mode", "load", "offered/s", "goodput/s", "of capacity", "p50 ms", "p99 ms", "p99 vs unloaded",
         "shed", "late", "throttled"],
        rows,
    )  # fmt: skip
    figures["target_met"] = target_met
    for mode, met in target_met.items():
        print(f"\ntarget ({mode}, 2x and 4x: goodput >= 90% of capacity, p99 <= 2x unloaded): "
              f"{'met' if met else 'NOT met'}", end="")  # fmt: skip
    print()
    emit_json(
        {
            "benchmark": "overload",
            "server": flavour,
            "workers": workers if flavour == "sync" else None,
            "work_ms": work_ms,
            "deadline_ms": deadline_ms,
            **figures,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=["main", "server", "load"], default="main")
    parser.add_argument("--port", type=int)
    parser.add_argument("--limiter", action="store_true")
    parser.add_argument("--target")
    parser.add_argument("--job")
    parser.add_argument("--work-ms", type=float, default=10.0)
    parser.add_argument("--deadline-ms", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="3-second runs")
    parser.add_argument("--server", choices=["sync", "aio"], default="sync", help="server flavour")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="sync server handler threads (1, as a CPU-bound Python service should run: see above)",
    )  # fmt: skip
    parser.add_argument(
        "--adaptive", default="{}", help='adaptive rule fields for the limiter runs, as JSON: '
        '\'{"cool_off": 2.0}\''
    )  # fmt: skip
    args = parser.parse_args()
    if args.role == "server":
        serve(args.port, args.limiter, args.work_ms, args.server, args.workers, args.adaptive)
    elif args.role == "load":
        load(args.target, args.job)
    else:
        seconds = 3.0 if args.quick else args.seconds
        figures = run(seconds, args.work_ms, args.deadline_ms, args.server, args.workers, args.adaptive)
        figures["adaptive_rule"] = json.loads(args.adaptive)
        report(figures, args.work_ms, args.deadline_ms, seconds, args.server, args.workers)


if __name__ == "__main__":
    main()
