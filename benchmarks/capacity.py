"""Capacity: the capacity test's C against the capacity measured independently, on the native stack,
and the recommended limit applied at 2x that capacity.

On a fresh native stack (no panel, free ports) the load generator is set to place orders only
(``{"mix": {"place_order": 1}, "scraper_rate": 0}``) and ``order`` is made CPU-bound with its fault
knob (``/governance/order/faults``: ``{"demoshop.v1.Order/PlaceOrder": {"cpu_burn_ms": N}}``); its
governance stays as shipped (services/config/order.yaml: the adaptive limiter on, shedding at 80%
CPU). Goodput counts calls served: neither a server error nor shed (RESOURCE_EXHAUSTED, HTTP 429).
Why order: every order of the shop passes through it, it runs one instance (inventory and payment
run two), and it is a grpc.aio server, so the burn blocks its event loop and one instance serves
one order at a time: its CPU is what limits the shop (about ``1000 / (N + its own ms)`` orders/s),
not the gateway's (an HTTP server whose calls cost a few ms) or the two inventory instances'.

1. Unloaded latency: one caller, closed loop, through the gateway (``POST /orders``).
2. Independent capacity: ``--callers`` closed-loop callers (each sends its next order when the last
   one is answered: the saturation method of ``benchmarks/overload.py``), answered calls per second.
3. The capacity test, with the runner's own functions (:mod:`telemetry.panel.capacity`:
   ``LoadDriver``, ``measure_step``; :func:`telemetry.load.stepping.run_steps`,
   :func:`telemetry.load.capacity.analyse`): steps of the load generator from 0.25x to 1.5x the
   manual estimate ``1000 / N``, ``order`` measured from Prometheus; A, B, C and the limit
   (``--choose``, ``--headroom``).
4. At 2x the independent capacity, open loop, one phase each: order's own governance only (no
   cluster limit); then the limit recommended at each ``--headrooms`` (with its burst) applied as
   the cluster-wide limit of every method of order (``/governance/order/cluster``,
   ``{"*": {"limit": L, "burst": B}}``) through the audited control plane, as the panel's *Apply*
   does; then the ``--headroom`` limit with the token bucket's default burst (one second's worth);
   last, no cluster limit but a cap on calls in flight on order, all its methods together (a
   server ``bulkhead`` on ``*``, shared: the panel's second *Apply*, written with the same
   transform, ``telemetry.panel.controls.set_concurrency_cap``): the cap the capacity test
   recommends, then one less and one more (``--concurrency`` names caps instead). Per phase:
   goodput (served: neither a server error nor shed) as a share of capacity, and the admitted
   calls' p99 against the unloaded p99.

Goals (issue 21): C within +-15% of the independent capacity; at 2x, goodput >= 90% of capacity
and admitted p99 <= 2x the unloaded p99. Every process is stopped by PID (the stack's own stop).

    python benchmarks/capacity.py            # about 6 minutes
    python benchmarks/capacity.py --quick    # a smoke run, about 3 minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _capacity_callers import Calls, closed_loop, figures, open_loop, percentile
from _common import command_output, emit_json, print_table, sigterm_as_interrupt

from services.stack import NativeStack
from telemetry.control.live_rules import CLUSTER, FAULTS, read_all_statuses
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.capacity import CapacityPoints, Step, analyse, manual_estimate
from telemetry.load.live import read_load_status
from telemetry.load.stepping import RunResult, StepPlan, run_steps
from telemetry.panel.capacity import LoadDriver, measure_step, render
from telemetry.panel.control_plane import LOAD, LOADGEN, ControlPlane
from telemetry.panel.controls import set_cluster_limit, set_concurrency_cap
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus, PrometheusError

SERVICE = "order"
PLACE_ORDER = "demoshop.v1.Order/PlaceOrder"
ACTOR = "capacity-benchmark"
_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[capacity {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def wait_applied(client: EtcdClient, revision: int, timeout: float = 15.0) -> None:
    """Until every instance of order reports its rules applied at ``revision`` or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = read_all_statuses(client).get(SERVICE, {})
        if statuses and all(
            s.get("state") == "applied" and int(s.get("revision") or 0) >= revision
            for s in statuses.values()
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{SERVICE} did not apply revision {revision} within {timeout:g} s")


def wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, PrometheusError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no {what} within {timeout:g} s")


def capacity_test(
    plane: ControlPlane, live: LiveQueries, plan: StepPlan, args: argparse.Namespace
) -> tuple[RunResult, CapacityPoints]:
    driver = LoadDriver(plane, reason="capacity benchmark")

    def measure(offered: float, seconds: float) -> Step | None:
        try:
            step = measure_step(live, SERVICE)(offered, seconds)
        except PrometheusError as exc:
            log(f"  step at {offered:g}/s not measured: {exc}")
            return None
        if step is not None:
            log(f"  {offered:g}/s offered: goodput {step.goodput:.1f}/s, p99 {step.p99 * 1000:.0f} ms, "
                f"errors {step.error_ratio:.1%}")  # fmt: skip
        return step

    result = run_steps(plan, driver.set_rate, measure, driver.restore)
    return result, analyse(result.steps, choice=args.choose, headroom=args.headroom)


def run(stack: NativeStack, args: argparse.Namespace) -> dict[str, Any]:
    client = EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,), timeout=2.0))
    plane = ControlPlane(client)
    live = LiveQueries(Prometheus(stack.prometheus_url))
    url = stack.gateway_url
    try:
        wait_for("load generator status", lambda: read_load_status(client) is not None, 30)
        plane.set(LOADGEN, LOAD, {"rate": 0, "scraper_rate": 0, "mix": {"place_order": 1}},
                  actor=ACTOR, reason="orders only, paused")  # fmt: skip
        faults = {PLACE_ORDER: {"cpu_burn_ms": args.burn_ms}}
        wait_applied(
            client, plane.set(SERVICE, FAULTS, faults, actor=ACTOR, reason="CPU-bound").revision
        )
        log(f"order burns {args.burn_ms:g} ms of CPU per PlaceOrder")
        closed_loop(url, 1, 0.0, warmup=3.0)  # warm every connection and cache
        unloaded = closed_loop(url, 1, args.phase)
        unloaded_p99 = percentile(unloaded.ok, 0.99)
        log(f"unloaded: {unloaded.goodput:.1f}/s, p99 {ms(unloaded_p99)} ms")
        saturated = closed_loop(url, args.callers, args.phase, warmup=2.0)
        capacity = saturated.goodput
        log(f"independent capacity ({args.callers} closed-loop callers): {capacity:.1f} orders/s")
        wait_for("order p99 in Prometheus",
                 lambda: live.prometheus.query(live.latency(SERVICE, 0.99, "30s")), 60)  # fmt: skip
        estimate = manual_estimate(args.burn_ms, 1.0)
        plan = StepPlan(start=round(0.25 * estimate, 1), ceiling=round(1.5 * estimate, 1),
                        steps=args.steps, hold_seconds=args.hold, settle_seconds=args.settle,
                        max_seconds=180)  # fmt: skip
        result, points = capacity_test(plane, live, plan, args)
        print(render(result, points))
        offered = 2 * capacity
        loaded = [at_twice(url, offered, args, Phase("2x, no cluster limit"))]  # order's own only
        # Each headroom's limit with its recommended burst, then the chosen one with the token
        # bucket's default burst (one second's worth): what the burst is for.
        trials = [(h, True) for h in args.headrooms] + [(args.headroom, False)]
        for headroom, with_burst in trials:
            chosen = analyse(result.steps, choice=args.choose, headroom=headroom)
            if chosen.limit is None:
                log(f"no limit to apply at headroom {headroom:g}: {chosen.reason}")
                continue
            if not with_burst:
                chosen = dataclasses.replace(chosen, burst=None)
            recommended = set_cluster_limit("*", chosen.limit, chosen.burst)
            why = f"capacity benchmark: recommended {chosen.limit:g}/s"
            change = plane.update(SERVICE, CLUSTER, recommended, actor=ACTOR, reason=why)
            wait_applied(client, change.revision)
            loaded.append(at_twice(url, offered, args, Phase(f"2x, headroom {headroom:g}", chosen)))
        caps = args.concurrency or _around(points.concurrency)
        if caps:
            loaded += concurrency_caps(client, plane, url, offered, args, caps, points.concurrency)
        else:
            log(f"no cap to apply: {points.reason}")
        return report(args, capacity, unloaded, saturated, loaded, result, points, offered)
    finally:
        client.close()


@dataclasses.dataclass
class Phase:
    """One 2x phase: its name, the recommendation in force (None: no cluster limit) or the
    concurrency cap on PlaceOrder, and, once run, what callers saw."""

    name: str
    chosen: CapacityPoints | None = None
    cap: int | None = None
    calls: Calls | None = None

    @property
    def limit(self) -> str:
        rate = None if self.chosen is None else f"{self.chosen.limit:g} / {_burst(self.chosen)}"
        cap = None if self.cap is None else f"{self.cap} in flight"
        return " + ".join(part for part in (rate, cap) if part) or "-"


def at_twice(url: str, offered: float, args: argparse.Namespace, phase: Phase) -> Phase:
    log(f"offering {offered:.1f}/s open loop: {phase.name} ({phase.limit})")
    phase.calls = open_loop(url, offered, args.phase * 1.5)
    return phase


def concurrency_caps(
    client: EtcdClient, plane: ControlPlane, url: str, offered: float, args: argparse.Namespace,
    caps: list[int], recommended: int | None,
) -> list[Phase]:  # fmt: skip
    """At 2x, no cluster limit and each of ``caps`` in turn as the cap on calls in flight on order
    (all its methods together), applied as the panel's *Apply* writes it."""
    change = plane.set(SERVICE, CLUSTER, None, actor=ACTOR, reason="no cluster limit")
    wait_applied(client, change.revision)
    phases = []
    for cap in caps:
        why = f"capacity benchmark: {cap} calls in flight at most"
        change = plane.update(SERVICE, "server", set_concurrency_cap(cap), actor=ACTOR, reason=why)
        wait_applied(client, change.revision)
        name = f"2x, cap {cap}" + (" (recommended)" if cap == recommended else "")
        phases.append(at_twice(url, offered, args, Phase(name, cap=cap)))
    plane.update(SERVICE, "server", set_concurrency_cap(None), actor=ACTOR, reason="caps measured")
    return phases


def _around(cap: int | None) -> list[int]:
    """The recommended cap, then its neighbours (one less, when that is a cap at all; one more)."""
    return [] if cap is None else [cap, *([cap - 1] if cap > 1 else []), cap + 1]


def report(
    args: argparse.Namespace, capacity: float, unloaded: Calls, saturated: Calls,
    loaded: list[Phase], result: RunResult, points: CapacityPoints, offered: float,
) -> dict[str, Any]:  # fmt: skip
    unloaded_p99 = percentile(unloaded.ok, 0.99)
    c = points.c.goodput if points.c is not None else None
    rows = [
        ["unloaded (1 caller)", "-", f"{unloaded.goodput:.1f}", "-", ms(unloaded_p99), "-"],
        [f"saturated ({args.callers} callers)", "-", f"{capacity:.1f}", "-",
         ms(percentile(saturated.ok, 0.99)), f"{saturated.failed}"],
    ]  # fmt: skip
    phases = []
    for phase in loaded:
        chosen, calls = phase.chosen, phase.calls
        assert calls is not None
        p99 = percentile(calls.ok, 0.99)
        found = figures(
            c=c, capacity=capacity, goodput=calls.goodput, p99=p99, unloaded_p99=unloaded_p99
        )
        rows.append([phase.name, phase.limit, f"{calls.goodput:.1f}", f"{calls.shed}", ms(p99),
                     f"{calls.failed}"])  # fmt: skip
        phases.append({
            "name": phase.name,
            "headroom": None if chosen is None else chosen.headroom,
            "limit": None if chosen is None else chosen.limit,
            "burst": None if chosen is None else chosen.burst,
            "concurrency_cap": phase.cap,
            "goodput": round(calls.goodput, 2), "shed": calls.shed, "failed": calls.failed,
            "p99_ms": p99 and round(p99 * 1000, 1), **found,
        })  # fmt: skip
    columns = ["phase", "limit / burst", "goodput/s", "shed (429)", "p99 ms", "failed"]
    print_table(f"order CPU-bound ({args.burn_ms:g} ms per PlaceOrder), through the gateway",
                columns, rows)  # fmt: skip
    first = phases[0]
    print(f"\nC {c if c is None else round(c, 1)} vs independent capacity {capacity:.1f}: "
          f"{signed(first['c_vs_capacity'])} (goal +-15%)")  # fmt: skip
    for found_phase in phases:
        share, ratio = found_phase["goodput_share"], found_phase["p99_ratio"]
        what = found_phase["name"].removeprefix("2x, ")
        print(f"at 2x ({offered:.1f}/s offered), {what}: goodput "
              f"{share if share is None else f'{share:.1%}'} of capacity (goal >= 90%), admitted p99 "
              f"{ratio if ratio is None else f'{ratio:.2f}'}x unloaded (goal <= 2x)")  # fmt: skip
    return {
        "capacity": round(capacity, 2), "c": c, "c_vs_capacity": first["c_vs_capacity"],
        "offered_2x": round(offered, 2), "phases_2x": phases,
        "unloaded_p99_ms": unloaded_p99 and round(unloaded_p99 * 1000, 1),
        "capacity_test_seconds": round(result.seconds, 1), "capacity_test_stopped": result.stopped,
        "points": points.to_dict(),
    }  # fmt: skip


def _burst(chosen: CapacityPoints) -> str:
    return "1 s" if chosen.burst is None else str(chosen.burst)


def signed(share: float | None) -> str:
    return "-" if share is None else f"{share:+.1%}"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--burn-ms", type=float, default=25.0, help="CPU ms order burns per PlaceOrder")
    p.add_argument("--callers", type=int, default=8, help="closed-loop callers that saturate")
    p.add_argument("--phase", type=float, default=15.0, help="seconds of each measured phase")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--hold", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--choose", choices=("A", "B"), default="B")
    p.add_argument("--headroom", type=float, default=0.9, help="the recommendation printed")
    p.add_argument("--headrooms", default="0.95,0.9,0.85,0.8",
                   help="each applied in turn at 2x (fractions of the point's goodput)")  # fmt: skip
    p.add_argument("--concurrency", default="",
                   help="caps of order's calls in flight (a server bulkhead on all its methods), "
                        "applied in turn at 2x after the limits (default: the capacity test's "
                        "recommended cap, one less and one more)")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the stack's work directory (logs)")
    args = p.parse_args(argv)
    try:
        args.concurrency = [int(n) for n in args.concurrency.split(",") if n.strip()]
    except ValueError:
        p.error(f"--concurrency: comma-separated counts, got {args.concurrency!r}")
    if not all(n >= 1 for n in args.concurrency):
        p.error(f"--concurrency: each at least 1, got {args.concurrency}")
    try:
        args.headrooms = [float(h) for h in args.headrooms.split(",") if h.strip()]
    except ValueError:
        p.error(f"--headrooms: comma-separated fractions, got {args.headrooms!r}")
    if not all(0 < h <= 1 for h in args.headrooms):
        p.error(f"--headrooms: each within (0, 1], got {args.headrooms}")
    if args.quick:
        args.phase, args.steps, args.hold, args.settle = 6.0, 5, 5.0, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="capacity-"))
    stack = NativeStack(workdir, loadgen_rate=1.0, panel=False, standard_ports=False, otlp_endpoint=None)
    started = time.monotonic()
    try:
        with sigterm_as_interrupt():
            stack.start()
            log(f"stack up in {time.monotonic() - started:.1f} s ({workdir})")
            found = run(stack, args)
    finally:
        stack.stop()  # every child, by PID
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    emit_json({
        "benchmark": "capacity",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": command_output(["git", "rev-parse", "--short", "HEAD"]),
        "nproc": int(command_output(["nproc"]) or os.cpu_count() or 0),
        "seconds": round(time.monotonic() - started, 1),
        "parameters": {k: v for k, v in vars(args).items() if k != "keep"},
        **found,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
