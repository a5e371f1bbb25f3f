"""The capacity test from a script: drive the load generator in steps, measure each step from
Prometheus, find the three points of the curve (A, B, C) and recommend a limit.

    python -m telemetry.panel.capacity --service gateway --start 10 --ceiling 200 --steps 12 \\
        --hold 10 [--etcd 127.0.0.1:2379] [--prometheus http://127.0.0.1:9090] [--choose A|B] \\
        [--headroom 0.8] [--cores 1] [--max-seconds 180] [--apply none|limit|cap]

The load generator must be running and following etcd (``/loadgen/status`` present). The test writes
steady rates to ``/loadgen/settings`` through the audited control plane (actor ``capacity-test``;
the scenario mix and scraper rate in force stay), holds each for ``--settle`` + ``--hold`` seconds,
and reads that hold's goodput, p99, error ratio and CPU for ``--service`` (the value of the
``--label`` label, ``job`` by default) with the panel's own PromQL over a window of ``--hold``
seconds. The load generator offers the whole shop through the gateway: ``--service gateway``
measures the shop, another service measures that service under the shop's load (its offered rate
is then the generator's, not the calls it receives). It stops by itself (see
:mod:`telemetry.load.stepping`: collapse, ceiling, ``--max-seconds``), puts back the settings that
were in force before (also after Ctrl-C or an error), then prints a table of the steps, the three
points (:mod:`telemetry.load.capacity`), the recommendations (a limit for the whole service with
its burst, a cap on calls in flight per instance) beside the manual estimate, and last one JSON
line (``{"service", "stopped", "seconds", "points": {...}, "applied"}``) for scripts. ``--apply
limit`` or ``--apply cap`` then writes one of them through the audited control plane as the panel's
*Apply* does (use one or the other: together they admitted too little on the demo).

Exit status: 0 with a recommendation, 1 without one (not enough data, no A/B), 2 refused
(bad flags, no load generator, etcd or Prometheus unreachable), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from telemetry.config import ConfigError
from telemetry.control.live_rules import CLUSTER
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.capacity import CapacityPoints, Step, analyse
from telemetry.load.live import read_load_status
from telemetry.load.stepping import RunResult, StepPlan, run_steps
from telemetry.panel.control_plane import LOAD, LOADGEN, ControlPlane, describe
from telemetry.panel.controls import set_cluster_limit, set_concurrency_cap
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus, PrometheusError

__all__ = ["LoadDriver", "apply", "main", "measure_step", "render"]

ACTOR = "capacity-test"
EXIT_NO_RECOMMENDATION, EXIT_REFUSED, EXIT_INTERRUPTED = 1, 2, 130


class LoadDriver:
    """Steady rates for the load generator through the audited control plane, and the settings
    in force before put back by :meth:`restore`."""

    def __init__(self, plane: ControlPlane, reason: str = "capacity test", actor: str = ACTOR) -> None:
        self._plane = plane
        self._reason = reason
        self._actor = actor
        self.previous, _ = plane.read(LOADGEN, LOAD)
        """The value of ``/loadgen/settings`` before the test (None: the key was absent)."""

    def set_rate(self, rate: float) -> None:
        base = dict(self.previous) if isinstance(self.previous, dict) else {}
        value = {**base, "rate": rate, "profile": {"kind": "steady"}}
        self._plane.set(LOADGEN, LOAD, value, actor=self._actor, reason=f"{self._reason}: {rate:g}/s")

    def restore(self) -> None:
        self._plane.set(LOADGEN, LOAD, self.previous, actor=self._actor, reason=f"{self._reason}: done")


def measure_step(live: LiveQueries, service: str) -> Callable[[float, float], Step | None]:
    """``measure(offered, seconds)``: the service's figures over the last ``seconds`` (None when
    Prometheus has no calls of it in that window)."""

    def measure(offered: float, seconds: float) -> Step | None:
        window = f"{max(round(seconds), 12)}s"  # two 5 s scrapes in it, whatever the phase
        rate = _one(live, live.request_rate(service, window))
        if rate is None or rate <= 0:
            return None
        errors = _one(live, live.error_ratio(service, window)) or 0.0
        goodput = _one(live, live.goodput_rate(service, window)) or 0.0
        p99 = _one(live, live.latency(service, 0.99, window))
        if p99 is None:
            return None
        cpu = live.prometheus.query(live.cpu(service, window))
        return Step(
            offered=offered,
            goodput=goodput,
            p99=p99,
            error_ratio=errors,
            cpu=sum(s.value for s in cpu) if cpu else None,
            instances=len(cpu) or None,
        )

    return measure


def _one(live: LiveQueries, expr: str) -> float | None:
    samples = live.prometheus.query(expr)
    return samples[0].value if samples else None


def render(result: RunResult, points: CapacityPoints) -> str:
    """The table of steps, the three points and the recommendation, for people."""
    marks: dict[int, str] = {}
    for name, step in (("A", points.a), ("B", points.b), ("C", points.c)):
        if step is not None:
            marks[id(step)] = marks.get(id(step), "") + name
    # "server errors": calls a limit refused (shed) count in neither column: goodput is served calls.
    lines = [f"{'offered/s':>10} {'goodput/s':>10} {'p99 ms':>9} {'srv err':>7} {'cpu':>6}  point"]
    for step in points.steps:
        cpu = f"{step.cpu:.2f}" if step.cpu is not None else "-"
        lines.append(
            f"{step.offered:>10.4g} {step.goodput:>10.4g} {step.p99 * 1000:>9.4g} "
            f"{step.error_ratio:>7.1%} {cpu:>6}  {marks.get(id(step), '')}"
        )
    lines.append(f"stopped: {result.stopped} ({result.seconds:.0f} s)")
    for name, step in (("A", points.a), ("B", points.b), ("C", points.c)):
        shown = "-" if step is None else f"{step.goodput:.4g} calls/s at {step.offered:.4g} offered"
        lines.append(f"{name}: {shown}")
    lines.append(points.reason)
    if points.limit is not None:
        burst = "" if points.burst is None else f", burst {points.burst}"
        lines.append(f"limit for the whole service: {points.limit:g} calls/s{burst} "
                     "(--apply limit, or the panel's Apply, writes it)")  # fmt: skip
    if points.concurrency is not None:
        lines.append(
            f"cap in flight per instance: {points.concurrency} (--apply cap, or the panel's "
            "second Apply, writes it for every method of the service; use the cap or the limit, "
            "not both)"
        )
    if points.manual is not None:
        lines.append(
            f"manual estimate (1000 / CPU ms per call x cores x instances): {points.manual:g} calls/s"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    defaults = StepPlan()
    p = argparse.ArgumentParser(
        prog="python -m telemetry.panel.capacity",
        description="Find a service's capacity with a stepped load test.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--etcd",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="etcd endpoint (repeatable; default: ETCD_ENDPOINTS or 127.0.0.1:2379)",
    )
    p.add_argument("--prometheus", default=None, help="default: PROMETHEUS_URL or http://127.0.0.1:9090")
    p.add_argument("--service", default="gateway", help="the service measured (default: gateway)")
    p.add_argument("--label", default="job", help="the Prometheus label naming services")
    p.add_argument("--start", type=float, default=defaults.start, help="first offered rate, calls/s")
    p.add_argument("--ceiling", type=float, default=defaults.ceiling, help="highest offered rate")
    p.add_argument("--steps", type=int, default=defaults.steps, help="steps from start to ceiling")
    p.add_argument("--hold", type=float, default=defaults.hold_seconds, help="seconds measured per step")
    p.add_argument(
        "--settle", type=float, default=defaults.settle_seconds, help="seconds before measuring"
    )
    p.add_argument(
        "--max-seconds", type=float, default=defaults.max_seconds, help="the whole run at most"
    )
    p.add_argument("--choose", choices=("A", "B"), default="A", help="recommend from A or B")
    p.add_argument("--headroom", type=float, default=0.8, help="fraction of the point's goodput")
    p.add_argument("--cores", type=float, default=1.0, help="cores per instance (manual estimate)")
    p.add_argument(
        "--apply",
        choices=("none", "limit", "cap"),
        default="none",
        help="write the recommendation through the audited control plane, as the panel's Apply "
        "does: the cluster-wide limit (with its burst) or the cap on calls in flight per instance",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        plan = StepPlan(
            start=args.start,
            ceiling=args.ceiling,
            steps=args.steps,
            hold_seconds=args.hold,
            settle_seconds=args.settle,
            max_seconds=args.max_seconds,
        )
        analyse((), choice=args.choose, headroom=args.headroom)  # checks the analysis flags early
        etcd = EtcdConfig.from_env(**({"endpoints": tuple(args.etcd)} if args.etcd else {}))
        prometheus = Prometheus(args.prometheus or _env("PROMETHEUS_URL", "http://127.0.0.1:9090"))
    except (ValueError, ConfigError) as exc:
        return _refuse(str(exc))
    client = EtcdClient(etcd)
    try:
        return _run(args, plan, client, LiveQueries(prometheus, service_label=args.label))
    except KeyboardInterrupt:
        print("interrupted: the load settings in force before the test are back", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        client.close()


def _run(args: argparse.Namespace, plan: StepPlan, client: EtcdClient, live: LiveQueries) -> int:
    try:
        if read_load_status(client) is None:
            return _refuse("no load generator reports a status in etcd (/loadgen/status)")
        problem = live.prometheus.healthy()
        if problem is not None:
            return _refuse(problem)
        driver = LoadDriver(ControlPlane(client))
    except Exception as exc:  # etcd unreachable, most often
        return _refuse(f"{type(exc).__name__}: {exc}")
    rates = plan.rates()
    each = plan.settle_seconds + plan.hold_seconds
    print(
        f"stepping {args.service} from {rates[0]:.4g} to {rates[-1]:.4g}/s offered in {len(rates)} "
        f"steps of {each:g} s: at most {min(len(rates) * each, plan.max_seconds):.0f} s, fewer if "
        "p99 or errors collapse first",
        file=sys.stderr,
        flush=True,
    )
    result = run_steps(
        plan,
        driver.set_rate,
        _tolerant(measure_step(live, args.service)),
        driver.restore,
        on_step=_progress,
    )
    points = analyse(result.steps, choice=args.choose, headroom=args.headroom, cores=args.cores)
    print(render(result, points))
    applied = apply(ControlPlane(client), args.service, points, args.apply)
    line: dict[str, Any] = {
        "service": args.service,
        "stopped": result.stopped,
        "seconds": round(result.seconds, 1),
        "points": points.to_dict(),
        "applied": applied,
    }
    print(json.dumps(line, sort_keys=True))
    return 0 if points.limit is not None else EXIT_NO_RECOMMENDATION


def apply(plane: ControlPlane, service: str, points: CapacityPoints, what: str) -> dict[str, Any] | None:
    """``--apply``: the recommended ``limit`` (the ``cluster`` key, pattern ``*``, with its burst)
    or ``cap`` (the ``server`` section: :func:`~telemetry.panel.controls.set_concurrency_cap`),
    written through the audited control plane as the actor ``capacity-test``, as the panel's
    *Apply* does. What was written (key and etcd revision), or None."""
    if what == "none":
        return None
    if what == "limit" and points.limit is not None:
        key, transform = CLUSTER, set_cluster_limit("*", points.limit, points.burst)
    elif what == "cap" and points.concurrency is not None:
        key, transform = "server", set_concurrency_cap(points.concurrency)
    else:
        print(f"not applied: no recommended {what}", file=sys.stderr)
        return None
    change = plane.update(service, key, transform, actor=ACTOR, reason=f"capacity test: {what}")
    print(f"applied: /governance/{service}/{key} at etcd revision {change.revision} "
          f"({describe(change)})")  # fmt: skip
    return {"key": key, "revision": change.revision, "value": change.after}


def _tolerant(measure: Callable[[float, float], Step | None]) -> Callable[[float, float], Step | None]:
    """A step Prometheus could not answer for is left out, not the end of the test."""

    def wrapped(offered: float, seconds: float) -> Step | None:
        try:
            step = measure(offered, seconds)
        except PrometheusError as exc:
            print(f"step at {offered:g}/s not measured: {exc}", file=sys.stderr)
            return None
        if step is None:
            print(f"step at {offered:g}/s not measured: no calls in Prometheus yet", file=sys.stderr)
        return step

    return wrapped


def _progress(step: Step) -> None:
    print(
        f"measured {step.offered:.4g}/s offered: goodput {step.goodput:.4g}/s, p99 "
        f"{step.p99 * 1000:.4g} ms, server errors {step.error_ratio:.1%}",
        file=sys.stderr,
        flush=True,
    )


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _refuse(message: str) -> int:
    print(f"capacity: {message}", file=sys.stderr)
    return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
