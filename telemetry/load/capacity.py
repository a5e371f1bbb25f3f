"""The capacity test's analysis: the three points of a load test's curve, and a limit chosen from them.

A load test raises the offered load in steps and measures, per step, the goodput (calls/s answered
without a server error), the p99 latency and the error ratio. Plotted against the offered load, the
response time stays flat while the service has spare capacity, then rises steeply as requests queue,
and finally the goodput itself falls (collapse). This is the curve of queueing theory (the "hockey
stick" of response time against utilisation; Brendan Gregg, *Systems Performance*, 2nd ed., ch. 2,
"Queueing theory" and "Capacity planning") and of the Universal Scalability Law, whose throughput
rises, flattens at its maximum and then retrogrades (Neil Gunther, *Guerrilla Capacity Planning*,
2007; http://www.perfdynamics.com/Manifesto/USLscalability.html). Gil Tene's "How NOT to measure
latency" (Strange Loop 2015) explains why the curve must be measured open-loop at a chosen offered
rate (as the load generator does) and read at a high percentile, not the mean.

On that curve :func:`analyse` finds three points:

* **A, the best-performance point**: the highest step where the goodput still rises with the
  offered load and p99 is still flat (at most ``flat`` times the baseline, the median p99 of the
  lowest steps at low load: goodput at most half of C's);
* **B, the edge of collapse**: the highest step up to C where p99 is already high (at least
  ``high`` times the baseline) but the goodput still holds (at least ``hold`` of the best goodput,
  errors at most ``max_errors``); None when the test never pushed p99 that high (raise the
  ceiling). Past C the goodput falls: that is the collapse itself;
* **C, the highest goodput** (often B's step: A <= B <= C in offered load).

The recommendation is ``headroom`` (default 0.8) of A's or B's goodput, the caller's choice, rounded
down to two significant digits: a rate limit errs on the safe side. It comes with the token bucket's
burst: the calls arriving at the limit's rate within the low-load p99 (Little's law, L = lambda W),
at least one. A bucket's usual burst of one second's worth would let a second of work in at once
after any lull, and near capacity every admitted call then waits behind it (measured on the demo:
p99 0.9 s at the 2x load where the smaller burst keeps it near 2x the unloaded p99,
benchmarks/RESULTS.md "capacity"); a burst of about one latency's worth adds at most about one
low-load latency of queue. With B found (the test reached the service's capacity), it also
recommends a cap on calls in flight per instance: C's goodput per instance times the low-load p99,
rounded up (:func:`recommended_concurrency`): the work in flight that keeps an instance at its
highest goodput (Little's law, L = lambda W, with the p99 for W as room for the slower calls; the
bandwidth-delay product BBR keeps in flight: Cardwell et al., "BBR: Congestion-Based Congestion
Control", ACM Queue 14(5), 2016). On an event loop a call waits for the work in flight ahead of it,
which a rate bounds only on average and a cap bounds outright (measured on the demo over four runs:
at 2x load the recommended cap of 3 kept p99 at 2.0-2.7x the unloaded one, where a rate limit of
about the same goodput let 2.7-10.8x; benchmarks/RESULTS.md "capacity"). Beside them,
:func:`manual_estimate` is the estimate without a load test: ``1000 / per-call ms x cores`` (two
10 ms database calls on 4 cores: 1000 / 20 x 4 = 200 calls/s), from the CPU time per call
measured at low load and the number of instances.

Pure and deterministic: no grpc, no Prometheus, no etcd (the runner in
:mod:`telemetry.panel.capacity` measures the steps).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "CapacityPoints", "Step", "analyse", "manual_estimate", "recommended_burst",
    "recommended_concurrency", "round_down",
]  # fmt: skip

Choice = Literal["A", "B"]
_BASELINE_STEPS = 3
"""The baseline p99 is the median of (at most) this many lowest-load steps, among those at low load:
goodput at most half the highest (or the lowest step alone, when none is that low)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the test, measured over its hold."""

    offered: float
    """Calls per second the load generator offered (the x of the curve)."""
    goodput: float
    """Calls per second the service answered without a server error."""
    p99: float
    """Seconds."""
    error_ratio: float = 0.0
    """Server errors / calls (0 to 1)."""
    cpu: float | None = None
    """CPU seconds per second the service's instances used together (None: not measured)."""
    instances: int | None = None

    def usable(self) -> bool:
        values = (self.offered, self.goodput, self.p99, self.error_ratio)
        return all(math.isfinite(v) and v >= 0 for v in values) and self.offered > 0


@dataclass(frozen=True, slots=True)
class CapacityPoints:
    """What :func:`analyse` found, with the reason in one sentence."""

    steps: tuple[Step, ...]
    """The usable steps, by offered load."""
    baseline_p99: float | None
    a: Step | None
    b: Step | None
    c: Step | None
    choice: Choice
    headroom: float
    limit: float | None
    """The recommended limit (calls/s); None when the evidence does not support one."""
    reason: str
    manual: float | None = None
    """The manual estimate (calls/s), when CPU per call was measured."""
    burst: int | None = None
    """The recommended limit's token-bucket burst (calls), with the limit."""
    concurrency: int | None = None
    """The recommended cap on calls in flight per instance; None without B (capacity not reached)."""

    @property
    def enough(self) -> bool:
        return self.c is not None

    def to_dict(self) -> dict[str, Any]:
        def point(step: Step | None) -> dict[str, Any] | None:
            return None if step is None else _rounded(step)

        return {
            "baseline_p99": self.baseline_p99,
            "A": point(self.a),
            "B": point(self.b),
            "C": point(self.c),
            "choice": self.choice,
            "headroom": self.headroom,
            "limit": self.limit,
            "burst": self.burst,
            "concurrency": self.concurrency,
            "manual_estimate": self.manual,
            "reason": self.reason,
            "steps": [_rounded(s) for s in self.steps],
        }


def analyse(
    steps: Iterable[Step],
    *,
    choice: Choice = "A",
    headroom: float = 0.8,
    flat: float = 1.5,
    high: float = 2.0,
    hold: float = 0.9,
    max_errors: float = 0.05,
    min_steps: int = 4,
    cores: float = 1.0,
) -> CapacityPoints:
    """The three points of ``steps`` and the limit recommended from A or B (``choice``).

    ``flat``: p99 within this many times the baseline is flat; ``high``: from this many times it
    is high (``high >= flat > 1``); ``hold``: the share of the best goodput that still "holds";
    ``max_errors``: the error ratio above which a step has collapsed; ``min_steps``: usable steps
    needed; ``cores``: cores each instance can use, for the manual estimate (1 for a Python
    process under the GIL).
    """
    _check(choice=choice, headroom=headroom, flat=flat, high=high, hold=hold, min_steps=min_steps)
    usable = tuple(sorted((s for s in steps if s.usable()), key=lambda s: s.offered))
    if len(usable) < min_steps:
        reason = f"not enough data: {len(usable)} usable step(s), need at least {min_steps}"
        return CapacityPoints(usable, None, None, None, None, choice, headroom, None, reason)
    c = max(usable, key=lambda s: (s.goodput, -s.offered))
    baseline = _baseline(usable, c)
    upto_c = usable[: usable.index(c) + 1]
    a = _point_a(upto_c, baseline * flat)
    holding = [s for s in upto_c if s.goodput >= hold * c.goodput and s.error_ratio <= max_errors]
    b = next((s for s in reversed(holding) if s.p99 >= high * baseline), None)
    chosen = a if choice == "A" else b
    limit = round_down(chosen.goodput * headroom) if chosen is not None else None
    manual = _manual(usable[: usable.index(a) + 1] if a is not None else usable[:1], cores)
    burst = None if limit is None else recommended_burst(limit, baseline)
    reason = _reason(choice, headroom, chosen, limit, b, baseline, high)
    if burst is not None:
        reason += f"; burst {burst} (calls at that rate within the low-load p99, {_ms(baseline)})"
    concurrency = None
    if b is not None and c.goodput > 0:
        per_instance = c.goodput / (c.instances or 1)
        concurrency = recommended_concurrency(per_instance, baseline)
        counted = "" if c.instances else "; instance count unknown, taken as 1"
        reason += (
            f"; or a cap of {concurrency} call(s) in flight per instance ({_rate(per_instance)} "
            f"calls/s at C within the low-load p99{counted})"
        )
    return CapacityPoints(
        usable, baseline, a, b, c, choice, headroom, limit, reason, manual, burst, concurrency
    )


def _rounded(step: Step) -> dict[str, Any]:
    """A step for the JSON line: rates and CPU to four significant digits, p99 to the microsecond
    (the sums Prometheus returns carry float noise: 28.599999999999998)."""
    data = asdict(step)
    for name in ("offered", "goodput", "cpu"):
        if data[name] is not None:
            data[name] = float(f"{data[name]:.4g}")
    data["p99"] = round(step.p99, 6)
    data["error_ratio"] = round(step.error_ratio, 6)
    return data


def recommended_concurrency(rate: float, latency: float) -> int:
    """The cap on calls in flight for an instance that serves at most ``rate`` calls/s and answers
    in ``latency`` seconds at low load: ``rate x latency`` rounded up (Little's law), at least one,
    at most 1e6 (the rules' bound)."""
    if not (rate > 0 and math.isfinite(rate) and latency >= 0 and math.isfinite(latency)):
        raise ValueError(f"need a finite rate > 0 and latency >= 0, got {rate!r}, {latency!r}")
    return min(max(1, math.ceil(rate * latency * (1 - 1e-9))), 1_000_000)


def recommended_burst(limit: float, latency: float) -> int:
    """The token-bucket burst for a rate ``limit`` (calls/s) on a service whose low-load latency
    is ``latency`` seconds: the calls in flight at that rate and latency (Little's law), at least
    one, at most one second's worth (the bucket's default)."""
    if not (limit > 0 and math.isfinite(limit) and latency >= 0 and math.isfinite(latency)):
        raise ValueError(f"need a finite limit > 0 and latency >= 0, got {limit!r}, {latency!r}")
    return max(1, min(math.floor(limit * latency), math.ceil(limit)))


def manual_estimate(per_call_ms: float, cores: float, instances: int = 1) -> float:
    """Calls/s that ``instances`` instances of ``cores`` cores each can serve when a call costs
    ``per_call_ms`` of CPU (or of any serial resource): ``1000 / per_call_ms x cores x instances``."""
    if not per_call_ms > 0 or not math.isfinite(per_call_ms):
        raise ValueError(f"per_call_ms must be a finite number > 0, got {per_call_ms!r}")
    if not cores > 0 or instances < 1:
        raise ValueError(f"cores must be > 0 and instances >= 1, got {cores!r}, {instances!r}")
    return 1000.0 / per_call_ms * cores * instances


def round_down(value: float, digits: int = 2) -> float:
    """``value`` rounded down to ``digits`` significant digits (0 stays 0)."""
    if value <= 0:
        return 0.0
    exponent = math.floor(math.log10(value)) - (digits - 1)
    step = 10.0**exponent
    units = math.floor(value / step * (1 + 1e-9))  # 0.8 * 100 stays 80, not 79
    return round(units * step, max(0, -exponent))


def _baseline(usable: tuple[Step, ...], c: Step) -> float:
    """The low-load p99. Only steps well below capacity count: a plan that climbs to 1.5x the
    estimate in eight steps has its third step near the knee already, and a baseline taken there
    hides the knee (measured: 218 ms instead of 99, so p99 "never doubled")."""
    low = [s for s in usable[:_BASELINE_STEPS] if s.goodput <= 0.5 * c.goodput] or [usable[0]]
    return statistics.median(s.p99 for s in low)


def _point_a(steps: tuple[Step, ...], flat_limit: float) -> Step | None:
    """The highest step whose p99 is flat and whose goodput rose with the offered load (by at
    least half the offered load's relative rise since the step before)."""
    best: Step | None = None
    previous: Step | None = None
    for step in steps:
        rising = previous is None or _rose(previous, step)
        if step.p99 <= flat_limit and rising:
            best = step
        previous = step
    return best


def _rose(before: Step, after: Step) -> bool:
    offered_rise = after.offered / before.offered - 1
    if before.goodput <= 0:
        return after.goodput > 0
    return after.goodput / before.goodput - 1 >= 0.5 * offered_rise


def _manual(low: tuple[Step, ...], cores: float) -> float | None:
    """The manual estimate from the CPU per call measured at low load (the steps up to A)."""
    per_call = [
        (s.cpu / s.goodput * 1000, s.instances or 1)
        for s in low
        if s.cpu is not None and s.cpu > 0 and s.goodput > 0
    ]
    if not per_call:
        return None
    ms = statistics.median(p for p, _ in per_call)
    instances = max(n for _, n in per_call)
    return round_down(manual_estimate(ms, cores, instances), 3)


def _reason(
    choice: Choice,
    headroom: float,
    chosen: Step | None,
    limit: float | None,
    b: Step | None,
    baseline: float,
    high: float,
) -> str:
    edge = (
        f"the edge of collapse (B) is at {_rate(b.offered)} calls/s offered"
        if b is not None
        else f"p99 never reached {high:g}x its low-load value ({_ms(baseline)}): no collapse "
        "within the ceiling, raise it to find B"
    )
    if chosen is None or limit is None:
        why = "p99 already rises at the lowest load" if choice == "A" else "there is no B"
        return f"no recommendation from {choice}: {why}; {edge}"
    return (
        f"recommending {_rate(limit)} calls/s: {headroom:.0%} of the goodput at {choice} "
        f"({_rate(chosen.goodput)} calls/s, p99 {_ms(chosen.p99)}); {edge}"
    )


def _check(
    *, choice: str, headroom: float, flat: float, high: float, hold: float, min_steps: int
) -> None:
    if choice not in ("A", "B"):
        raise ValueError(f"choice must be 'A' or 'B', got {choice!r}")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom!r}")
    if not (math.isfinite(high) and high >= flat > 1):
        raise ValueError(f"need high >= flat > 1, got flat={flat!r}, high={high!r}")
    if not 0 < hold <= 1:
        raise ValueError(f"hold must be in (0, 1], got {hold!r}")
    if min_steps < 2:
        raise ValueError(f"min_steps must be >= 2, got {min_steps!r}")


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"
