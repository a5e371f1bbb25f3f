"""Adaptive concurrency limit: shed load from live CPU, event-loop lag and latency.

Three published algorithms, combined:

* **Kratos BBR** (go-kratos/aegis ``ratelimit/bbr``): over a rolling window of buckets, the maximum
  number of successful completions per bucket (``maxPass``) and the minimum per-bucket mean response
  time (``minRT``) give, by Little's law, how many calls the service can hold in flight at its best:
  ``maxPass_per_second * minRT``. The current, incomplete bucket is ignored. Calls are shed only
  while CPU is over a threshold, or within a *cool-off* after a shed (avoids flapping), and only when
  in-flight has reached that bound.
* **go-zero adaptive shedder** (zeromicro/go-zero ``core/load/adaptiveshedder.go``): above the
  threshold the bound is scaled down by an *overload factor*
  ``clamp((cpu_max - cpu) / (cpu_max - cpu_threshold), 0.1, 1.0)``: 1.0 at the threshold, falling
  linearly to 0.1 (never lower: some calls always pass) at ``cpu_max`` (one full core by default).
* **Netflix Gradient2** (Netflix/concurrency-limits ``Gradient2Limit``): a latency-driven limit,
  updated once per bucket from the mean RT of the bucket that just closed against a long-run average
  (``telemetry.governance.adaptive_gradient``, which states the update rule).

The combined limit (see :attr:`AdaptiveLimiter.limit`)::

    bbr   = max_pass_per_second * min_rt + 1     # +1: Kratos sheds only when in_flight > bound
    limit = clamp(round(min(bbr, gradient_limit) * overload_factor(cpu)), min_limit, max_limit)

(``bbr`` is left out until the window holds a successful call: at a cold start the gradient limit,
``initial_limit``, is the bound.)

When a call is shed (``try_acquire`` returns False):

1. *Pressure*: CPU >= ``cpu_threshold`` or loop lag >= ``loop_lag_threshold``, and
   ``in_flight >= limit``. Reason ``"cpu"`` or ``"loop_lag"`` (whichever is further over its
   threshold).
2. *Cool-off*: within ``cool_off`` seconds of the last *pressure* shed (rule 1), and
   ``in_flight >= limit``, even though the pressure has gone. The reason stays the one of that shed.
   Cool-off sheds do not extend the cool-off (unlike go-zero): shedding is guaranteed to stop
   ``cool_off`` seconds after the pressure has.
3. *Latency*: at any CPU, when the short RTT has exceeded ``tolerance * long_rtt`` for
   ``latency_sustain`` consecutive buckets and ``in_flight >= gradient_limit``. Reason ``"latency"``.
   Only the gradient limit is enforced here, not the CPU-derived BBR bound: with CPU to spare the
   service is slowed by something else (a dependency, a lock) and Gradient2's gentler limit fits.

Otherwise the call is admitted, however many are in flight (like BBR, low pressure sheds nothing).

**Probe RTT** (TCP BBR's ProbeRTT state): BBR's ``min_rt`` is only right when some bucket of the
window saw the service at low concurrency. In a Python process the GIL makes a CPU-bound server a
single core, and admitted calls time-slice it: at 3 in flight each takes ~3x its service time, so
after a window of overload ``min_rt`` holds that inflated time and the bound holds whatever
concurrency it already allowed (2, 3 and 4 are all fixed points for a 10-ms handler). So from one
window into an overload, and once per window while it lasts, the limit is ``min_limit`` for a bucket
and a half: in-flight drains, a bucket of calls runs alone, and ``min_rt`` is measured afresh.

:meth:`AdaptiveLimiter.admission_cap` exposes the limit in force (None while nothing would be shed)
so a server can refuse before a call takes a worker (telemetry.rpc.admission, grpc's poller thread);
such refusals are reported back with :meth:`AdaptiveLimiter.shed_elsewhere` and count as sheds.

Cost: the samplers are read and the window's derived values (max pass, min RT, gradient, limit)
recomputed at most once per bucket (``window / buckets`` seconds), by whichever call first sees the
bucket has ended; ``try_acquire`` and ``on_done`` otherwise read the clock and hold the lock for a few
comparisons. So a pressure change is seen by the next call that starts a new bucket.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from telemetry.governance._adaptive_args import validate
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.adaptive_gradient import NO_LIMIT, GradientLimit

__all__ = ["AdaptiveLimiter", "AdaptiveSnapshot"]

_MIN_FACTOR = 0.1  # go-zero's lowestFactor: accept at least 10 % of the bound however hot the CPU


@dataclass(frozen=True, slots=True)
class AdaptiveSnapshot:
    """The limiter's state at one instant, for metrics and the panel."""

    limit: int
    in_flight: int
    cpu: float
    loop_lag: float
    reason: str
    """Empty when not shedding, else "cpu", "loop_lag" or "latency"."""
    shedding: bool
    """A call was shed within the last ``cool_off`` seconds (at least one bucket)."""
    max_pass_per_second: float
    """0.0 until the window holds a successful call."""
    min_rt: float
    """Seconds; 0.0 until the window holds a successful call."""
    gradient_limit: int


class AdaptiveLimiter:
    """Concurrency limit adapting to CPU, loop lag and latency; see the module docstring.

    ``pressure`` returns the process CPU as a fraction of one core (already smoothed, e.g.
    :class:`telemetry.governance.pressure.ProcessCpuSampler`); ``loop_lag`` the smoothed event-loop
    lag in seconds (:class:`telemetry.governance.pressure.LoopLagMonitor`) for asyncio servers.
    Call :meth:`try_acquire` before a call and, only when it returned True, :meth:`on_done` after.
    """

    __slots__ = (
        "_bucket_end",
        "_buckets",
        "_clock",
        "_cool_off",
        "_cpu",
        "_cpu_max",
        "_cpu_threshold",
        "_cur_pass",
        "_cur_rt",
        "_gradient",
        "_in_flight",
        "_index",
        "_lag",
        "_lag_admit_every",
        "_lag_counter",
        "_last_pressure_shed",
        "_last_shed",
        "_latency_limit",
        "_limit",
        "_lock",
        "_loop_lag",
        "_loop_lag_threshold",
        "_max_limit",
        "_max_pass",
        "_min_limit",
        "_min_rt",
        "_next_probe",
        "_origin",
        "_overload_reason",
        "_overloaded",
        "_pass",
        "_peak",
        "_per_second",
        "_pos",
        "_pressure",
        "_pressure_reason",
        "_probe_until",
        "_reason",
        "_rt",
        "_width",
    )

    def __init__(
        self,
        *,
        pressure: Callable[[], float],
        cpu_threshold: float = 0.8,
        loop_lag: Callable[[], float] | None = None,
        loop_lag_threshold: float = 0.05,
        cool_off: float = 1.0,
        window: float = 1.0,
        buckets: int = 10,
        min_limit: int = 1,
        max_limit: int = 1000,
        initial_limit: int = 20,
        tolerance: float = 1.5,
        long_window: int = 600,
        latency_sustain: int = 3,
        cpu_max: float = 1.0,
        clock: Clock = monotonic,
    ) -> None:
        validate(
            pressure=pressure,
            cpu_threshold=cpu_threshold,
            loop_lag=loop_lag,
            loop_lag_threshold=loop_lag_threshold,
            cool_off=cool_off,
            window=window,
            buckets=buckets,
            min_limit=min_limit,
            max_limit=max_limit,
            initial_limit=initial_limit,
            tolerance=tolerance,
            long_window=long_window,
            latency_sustain=latency_sustain,
            cpu_max=cpu_max,
        )
        self._pressure = pressure
        self._loop_lag = loop_lag
        self._cpu_threshold = float(cpu_threshold)
        self._cpu_max = float(cpu_max)
        self._loop_lag_threshold = float(loop_lag_threshold)
        self._cool_off = float(cool_off)
        self._min_limit = min_limit
        self._max_limit = max_limit
        self._clock = clock
        self._lock = threading.Lock()

        # Rolling window: `buckets` completed buckets in a ring, plus the current one (_cur_*),
        # which the derived values ignore (BBR: an incomplete bucket under-counts).
        self._buckets = buckets
        self._width = window / buckets
        self._per_second = buckets / window
        self._pass = [0] * buckets
        self._rt = [0.0] * buckets  # mean RT of each completed bucket (0.0: no successful call)
        self._pos = 0
        self._origin = clock()
        self._index = 0  # number of the current bucket since _origin
        self._bucket_end = self._origin + self._width
        self._cur_pass = 0
        self._cur_rt = 0.0
        self._peak = 0  # highest in-flight in the current bucket (Gradient2's app-limited check)

        self._in_flight = self._max_pass = 0
        self._min_rt = self._cpu = self._lag = 0.0
        self._gradient = GradientLimit(
            initial_limit=initial_limit,
            min_limit=min_limit,
            max_limit=max_limit,
            tolerance=tolerance,
            long_window=long_window,
            latency_sustain=latency_sustain,
        )
        self._latency_limit = NO_LIMIT  # the gradient limit while latency is degraded
        self._overloaded = False
        self._lag_admit_every = 0
        self._lag_counter = 0
        self._overload_reason = self._pressure_reason = self._reason = ""
        self._limit = initial_limit
        self._last_pressure_shed = self._last_shed = -math.inf
        self._probe_until = -math.inf
        self._next_probe = math.inf  # scheduled when an overload starts

    # -- hot path -------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Admit a call (True: in-flight incremented, call :meth:`on_done` later) or shed it."""
        now = self._clock()
        if now >= self._bucket_end:
            self._refresh(now)
        with self._lock:
            in_flight = self._in_flight
            every = self._lag_admit_every
            if every:
                self._lag_counter += 1
                if self._lag_counter % every:
                    self._last_pressure_shed = self._last_shed = now
                    self._pressure_reason = self._reason = "loop_lag"
                    return False
            limit = self._min_limit if now < self._probe_until else self._limit
            if in_flight >= limit:
                if self._overloaded:
                    self._last_pressure_shed = self._last_shed = now
                    self._pressure_reason = self._reason = self._overload_reason
                    return False
                if now - self._last_pressure_shed < self._cool_off:
                    self._last_shed = now
                    self._reason = self._pressure_reason
                    return False
            if in_flight >= self._latency_limit:
                self._last_shed = now
                self._reason = "latency"
                return False
            in_flight += 1
            self._in_flight = in_flight
            if in_flight > self._peak:  # noqa: PLR1730 (hot path: a branch is cheaper than max())
                self._peak = in_flight
            return True

    def on_done(self, duration: float, ok: bool = True) -> None:
        """End an admitted call; ``duration`` in seconds. Only successful calls feed the window."""
        now = self._clock()
        if now >= self._bucket_end:
            self._refresh(now)
        with self._lock:
            if self._in_flight > 0:
                self._in_flight -= 1
            if ok:
                self._cur_pass += 1
                self._cur_rt += duration

    def admission_cap(self) -> int | None:
        """How many calls may be in flight before :meth:`try_acquire` refuses the next one, or None
        while it refuses none (no pressure, no cool-off, latency within tolerance). Lets a server
        refuse earlier, where refusing costs less (grpc's poller thread, telemetry.rpc.admission).
        """
        now = self._current()
        with self._lock:
            cap = self._latency_limit
            if self._overloaded or now - self._last_pressure_shed < self._cool_off:
                cap = min(cap, self._min_limit if now < self._probe_until else self._limit)
            return None if cap >= NO_LIMIT else cap

    def shed_elsewhere(self) -> str:
        """A call was refused before :meth:`try_acquire` saw it, at :meth:`admission_cap`: count
        it as this limiter's shed (it starts or extends the cool-off as a pressure shed does).
        Returns the reason, as :attr:`reason` would now."""
        now = self._current()
        with self._lock:
            self._last_shed = now
            if self._overloaded or now - self._last_pressure_shed < self._cool_off:
                if self._overloaded:
                    self._last_pressure_shed = now
                    self._pressure_reason = self._overload_reason
                self._reason = self._pressure_reason
            else:
                self._reason = "latency"
            return self._reason

    # -- once per bucket ------------------------------------------------------------------------

    def _refresh(self, now: float) -> None:
        # The samplers are user code: call them outside the lock.
        cpu = float(self._pressure())
        lag = float(self._loop_lag()) if self._loop_lag is not None else 0.0
        with self._lock:
            if now >= self._bucket_end:  # another thread may have rolled meanwhile
                self._roll(now, cpu, lag)

    def _roll(self, now: float, cpu: float, lag: float) -> None:
        """Close the current bucket and recompute everything derived. Lock held; pure arithmetic."""
        index = int((now - self._origin) / self._width)
        if index <= self._index:  # float rounding at the boundary: stay in this bucket
            index = self._index + 1
        finished = index - self._index
        n = self._buckets
        passes = self._cur_pass
        short_rtt = self._cur_rt / passes if passes else 0.0
        self._pass[self._pos] = passes
        self._rt[self._pos] = short_rtt
        self._pos = (self._pos + 1) % n
        for _ in range(min(finished - 1, n)):  # idle buckets in between
            self._pass[self._pos] = 0
            self._rt[self._pos] = 0.0
            self._pos = (self._pos + 1) % n
        self._index = index
        self._bucket_end = self._origin + (index + 1) * self._width
        if passes:
            self._gradient.update(short_rtt, self._peak)
            self._latency_limit = self._gradient.latency_limit()
        self._cur_pass = 0
        self._cur_rt = 0.0
        self._peak = self._in_flight

        max_pass = 0
        min_rt = math.inf
        for count, rt in zip(self._pass, self._rt, strict=True):
            if count:
                max_pass = max(max_pass, count)
                min_rt = min(min_rt, rt)
        self._max_pass = max_pass
        self._min_rt = min_rt if max_pass else 0.0

        self._cpu = cpu
        self._lag = lag
        cpu_over = cpu / self._cpu_threshold
        lag_over = lag / self._loop_lag_threshold
        self._overloaded = cpu_over >= 1.0 or lag_over >= 1.0
        self._overload_reason = "cpu" if cpu_over >= lag_over else "loop_lag"
        # An event loop running CPU-bound handlers runs them one at a time: in-flight never exceeds
        # one and the queue is invisible, sitting before the loop. Its lag is the queue; while it
        # is over the threshold (and the main signal) admit only one call in ceil(lag / threshold).
        self._lag_admit_every = math.ceil(lag_over) if lag_over >= 1.0 and lag_over > cpu_over else 0
        self._limit = self._compute_limit()
        # Probe RTT (see the module docs): a window into an overload, and once per window while it
        # lasts, a bucket and a half at min_limit.
        if not self._overloaded:
            self._next_probe = math.inf
        elif self._next_probe == math.inf:
            self._next_probe = now + self._width * n
        elif now >= self._next_probe:
            self._probe_until = now + 1.5 * self._width
            self._next_probe = now + self._width * n

    def _compute_limit(self) -> int:
        bound = self._gradient.limit
        if self._max_pass:
            bound = min(bound, self._max_pass * self._per_second * self._min_rt + 1.0)
        factor = (self._cpu_max - self._cpu) / (self._cpu_max - self._cpu_threshold)
        factor = max(_MIN_FACTOR, min(1.0, factor))
        return max(self._min_limit, min(self._max_limit, int(bound * factor + 0.5)))

    def _current(self) -> float:
        """Roll the window if a bucket has ended (so readers see fresh values); returns now."""
        now = self._clock()
        if now >= self._bucket_end:
            self._refresh(now)
        return now

    # -- read side ------------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The current concurrency limit:
        ``clamp(round(min(max_pass_per_second * min_rt + 1, gradient_limit) * factor), min_limit,
        max_limit)`` with ``factor = clamp((cpu_max - cpu) / (cpu_max - cpu_threshold), 0.1, 1)``
        (the BBR term is left out until the window holds a successful call)."""
        self._current()
        with self._lock:
            return self._limit

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def cpu(self) -> float:
        """The CPU pressure in force (read from the sampler at most once per bucket)."""
        self._current()
        with self._lock:
            return self._cpu

    @property
    def loop_lag(self) -> float:
        """The loop lag in seconds in force (0.0 without a loop-lag sampler)."""
        self._current()
        with self._lock:
            return self._lag

    @property
    def pressure(self) -> float:
        """``max(cpu / cpu_threshold, loop_lag / loop_lag_threshold)``: >= 1.0 means overloaded."""
        self._current()
        with self._lock:
            return max(self._cpu / self._cpu_threshold, self._lag / self._loop_lag_threshold)

    @property
    def reason(self) -> str:
        """Empty when not shedding (no shed within ``cool_off``), else the signal behind the
        last shed: "cpu", "loop_lag" or "latency"."""
        now = self._clock()
        with self._lock:
            return self._reason if self._recently_shed(now) else ""

    @property
    def last_shed(self) -> float | None:
        """Clock time of the last shed, None if nothing was ever shed."""
        with self._lock:
            return None if self._last_shed == -math.inf else self._last_shed

    def _recently_shed(self, now: float) -> bool:
        return now - self._last_shed < max(self._cool_off, self._width)

    def snapshot(self) -> AdaptiveSnapshot:
        now = self._current()
        with self._lock:
            shedding = self._recently_shed(now)
            return AdaptiveSnapshot(
                limit=self._limit,
                in_flight=self._in_flight,
                cpu=self._cpu,
                loop_lag=self._lag,
                reason=self._reason if shedding else "",
                shedding=shedding,
                max_pass_per_second=self._max_pass * self._per_second,
                min_rt=self._min_rt,
                gradient_limit=self._gradient.limit_int,
            )
