"""Chaos: what the demo shop's customers see when a part of it fails, with the demo's governance
rules (``governed``) and with governance switched off (``ungoverned``), on the native stack.

For each scenario, twice in one run (governed, ungoverned; the order alternates between scenarios so
drift on a shared machine favours neither; the two payment scenarios a third time, ``no_deferral``:
governed, but order's charges not deferred, which shows the breakers' own recovery), a FRESH
native stack (``services/stack.py``: etcd, Prometheus, the span receiver, gateway, order, 2
inventory, 2 payment, recommendation, notification; no load generator, no panel) is started in a
temporary directory. ``ungoverned`` writes ``false`` to ``/governance/<service>/enabled`` for every
service and waits (up to 15 s) until every instance's
``/governance-status/`` shows it applied; ``governed`` runs the rules as shipped
(``services/config/*.yaml``). An open-loop generator in this process then sends ``POST /orders``
at ``--rate`` per second (a send is never delayed by a slow answer; at most 512 requests in flight,
the others counted as failed, "skipped"), ``x-request-timeout-ms: 2000``, 20 users, 1-3 catalogue
SKUs per order. Phases: warm-up (``--warmup``), fault (``--fault``), after (``--after``).

Scenarios (the fault starts at t = 0 and ends at t = fault):

- ``payment_slow``: ``/governance/payment/faults`` = ``{"*": {"latency_ms": 2000}}``, deleted at
  the end (both payment instances answer 2 s late; order gives payment 1.5 s).
- ``payment_failing``: ``{"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}}`` on payment.
- ``recommendation_failing``: ``{"*": {"error_rate": 1.0}}`` on recommendation (non-core: orders
  should still be placed, with the default recommendations: "degraded" in the JSON).
- ``inventory_kill``: ``stack.kill("inventory-1")`` (SIGKILL: no deregistration, no drain), at
  once ``stack.stop_process("inventory-1")`` so the supervisor holds it down instead of
  restarting it; at the end ``start_process`` + ``wait_ready``.
- ``payment_sigterm``: ``stack.stop_process("payment-1")`` (SIGTERM: deregisters, drains; held
  down), ``start_process("payment-1")`` at the end.
- ``etcd_stopped``: ``stack.stop_process("etcd")``; ``start_process("etcd")`` at the end.
- ``etcd_wiped``: ``stack.restart_etcd(wipe=True)`` at t = 0 (registrations and rules lost; the
  fault window is the ``--fault`` seconds after it). In ``ungoverned`` the ``enabled: false`` keys
  are written again once etcd is back (an operator restoring the configuration), so the mode stays
  what it says; until the services see them again they may run the rules they started with.
- ``oversized_fields``: during the fault a second open-loop sender posts 20 orders/s whose SKU is
  20 KB long, as user ``mallory``; only the legitimate orders count in the figures, the hostile
  ones' statuses are reported apart (``hostile``).

Figures, per scenario and mode (a request counts by its SEND time; "failed" = any answer but 201,
no answer, or skipped):

- ``failed_during`` / ``sent_during``: orders sent in ``[0, fault)`` that failed.
- ``failed_after`` / ``sent_after``: orders sent in ``[fault, fault + after)`` that failed.
- ``recovery_s``: the smallest t >= 0 such that >= 95% of the orders sent in
  ``[fault + t, fault + t + 5 s)`` succeeded (candidates: t = 0 and each send after the fault's end;
  the window must end before the run does); ``never`` (None) when no such window exists; 0 when
  nothing fails after the fault.
- ``p99_ok_ms``: p99 latency (nearest rank) of the successful orders of the whole run (warm-up
  included); ``p99_ok_during_ms``: of those sent during the fault.
- ``amplification``: downstream calls per upstream request during the fault, read from the
  services' own Prometheus counters (each instance's ``/metrics``, read just before the fault
  starts and at its end, instance by instance: a killed instance adds nothing, a restarted one
  what it counted since): per hop, the calls that REACHED the callee (its
  ``grpc_server_started_total``: ``gateway->order`` PlaceOrder, ``order->inventory`` Reserve,
  ``order->payment`` Charge) over the requests the caller received (gateway: the orders this
  benchmark sent during the fault, hostile ones included -- the gateway's own HTTP histogram counts
  a request when it ends, which lags during a slow fault; order:
  ``grpc_server_started_total{grpc_method="PlaceOrder"}``). A call the caller's breaker refuses
  locally never reaches the callee and is not counted; every retry that goes out is. The table
  shows the largest hop; the JSON has all (None: the caller received nothing). The retry budget
  bounds it by ``1 + ratio`` (0.1) plus its floor (1 retry/s per caller: at 10 orders/s another
  0.1).

How to read it: governance should turn a failing dependency into fast, bounded failures (a low p99
during the fault, amplification near 1) and a quick recovery (the breaker half-opens and closes
again); a non-core failure (recommendation) should cost no orders at all. Compare ``governed``
with ``ungoverned`` on the same row of the comparison lines; the charts
(``benchmarks/chaos/<scenario>.png``) show per 1 s bin the success rate and the p99 latency of the
successful orders, both modes, the fault window shaded, and each mode's recovery point.

    python benchmarks/chaos.py                      # 8 scenarios x 2 modes, about 20 minutes
    python benchmarks/chaos.py --quick              # 3 scenarios, 5/8/12 s phases, about 4 min
    python benchmarks/chaos.py --scenarios payment_slow,etcd_wiped --rate 20

Only 127.0.0.1 is contacted; every stack is stopped (also on Ctrl-C or SIGTERM); a table, one
comparison line per scenario and ONE JSON line are printed to stdout, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _chaos_report import comparison, table_rows
from _chaos_run import run_all
from _chaos_scenarios import NO_DEFERRAL, QUICK_SCENARIOS, SCENARIOS, Phases
from _chaos_stack import INSTANCES, log
from _chaos_traffic import HOSTILE_RATE, HOSTILE_SKU_BYTES, MAX_IN_FLIGHT, TIMEOUT_MS
from _common import command_output, emit_json, print_table, sigterm_as_interrupt

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Phases, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"5/8/12 s phases and {', '.join(QUICK_SCENARIOS)}")  # fmt: skip
    parser.add_argument("--scenarios", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--rate", type=float, default=10.0, help="orders per second (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds (default 10; --quick 5)")
    parser.add_argument("--fault", type=float, help="seconds (default 20; --quick 8)")
    parser.add_argument("--after", type=float, help="seconds (default 30; --quick 12)")
    parser.add_argument("--out", type=Path, default=HERE / "chaos", help="where the charts go")
    parser.add_argument("--keep", action="store_true", help="keep the stacks' work directories")
    args = parser.parse_args(argv)
    default = (5.0, 8.0, 12.0) if args.quick else (10.0, 20.0, 30.0)
    phases = Phases(
        args.warmup if args.warmup is not None else default[0],
        args.fault if args.fault is not None else default[1],
        args.after if args.after is not None else default[2],
    )
    if args.rate <= 0 or min(phases.warmup, phases.fault, phases.after) <= 0:
        parser.error("--rate and the phases must be > 0")
    if not args.scenarios:
        return args, phases, list(QUICK_SCENARIOS if args.quick else SCENARIOS)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown} (known: {', '.join(SCENARIOS)})")
    return args, phases, names


def main(argv: list[str] | None = None) -> int:
    args, phases, names = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    per_run = phases.warmup + phases.fault + phases.after + 30
    log(f"{len(names)} scenarios x 2 modes, about {len(names) * 2 * per_run / 60:.0f} min; "
        f"work directories under {root}")  # fmt: skip
    failed = True
    try:
        with sigterm_as_interrupt():
            results, charts, failed = run_all(names, phases, args.rate, root, args.out)
    finally:
        if args.keep or failed:
            log(f"work directories (logs) kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(
        f"Chaos on the native demo stack: {args.rate:g} orders/s open loop, timeout {TIMEOUT_MS} ms, "
        f"warm-up {phases.warmup:g} s, fault {phases.fault:g} s, after {phases.after:g} s",
        ["scenario", "mode", "failed during", "failed after", "recovery s", "p99 ok ms",
         "p99 during ms", "amplification (max hop)"],
        table_rows(results),
    )  # fmt: skip
    print()
    for name, entry in results.items():
        print(comparison(name, entry))
        if NO_DEFERRAL in entry:
            print(comparison(name, entry, NO_DEFERRAL))
    emit_json({
        "benchmark": "chaos",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": command_output(["git", "rev-parse", "--short", "HEAD"]),
        "nproc": int(command_output(["nproc"]) or os.cpu_count() or 0),
        "parameters": {
            "rate": args.rate, "warmup_s": phases.warmup, "fault_s": phases.fault,
            "after_s": phases.after, "timeout_ms": TIMEOUT_MS, "max_in_flight": MAX_IN_FLIGHT,
            "recovery_window_s": 5.0, "recovery_threshold": 0.95, "instances": INSTANCES,
            "hostile_rate": HOSTILE_RATE, "hostile_sku_bytes": HOSTILE_SKU_BYTES,
            "quick": args.quick, "scenarios": names,
        },
        "scenarios": results,
        "charts": charts,
    })  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
