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

Diagnostics (not in the default run): no_log, no_metrics, no_deadline (the full chain less one
concern), tracing_unexported (spans made, not exported), adapter (this package's server and
channel wrapping with no concern); and, unary only, with no telemetry: header (bare calls carrying
a ``traceparent`` header) and, sync only, floor (grpcio's interceptor hooks passing calls through
with that header), the floor under any interceptor-based tracing.

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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import stubs_dir
from _overhead_client import client
from _overhead_modes import DEFAULT_MODES, MODES, SYNC_ONLY, UNARY_ONLY, WORKLOADS
from _overhead_report import report
from _overhead_run import cpus_for_pairs, pin_to, run
from _overhead_server import serve


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
    if set(modes) & set(UNARY_ONLY) and set(workloads) - {"sync_unary", "aio_unary"}:
        parser.error(f"--modes {', '.join(UNARY_ONLY)}: with unary workloads only")
    if set(modes) & set(SYNC_ONLY) and workloads != ("sync_unary",):
        parser.error(f"--modes {', '.join(SYNC_ONLY)}: with --workloads sync_unary only")
    slices, seconds = (3, 0.5) if args.quick else (args.slices, args.seconds)
    pair_count = 1 if args.quick else max(1, args.pairs)
    cpus = cpus_for_pairs(not args.no_pin)
    result = run(slices, seconds, modes, workloads, pair_count, cpus)
    report(result, modes, workloads, slices=slices, seconds=seconds, pair_count=pair_count, cpus=cpus)


if __name__ == "__main__":
    main()
