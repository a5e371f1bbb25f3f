"""Client-side load balancing: which instance of a service gets the next call.

Balancers are pure decision objects, like the governance algorithms: no grpc, no threads, an injected
random source (``random.random``-like) and clock (monotonic seconds), and a small lock around their
bookkeeping so one object serves many threads and asyncio tasks. A caller asks ``pick(candidates)``,
reports ``on_start(instance)`` when the call goes out and ``on_done(instance, latency, ok)`` when it
ends; the stateless algorithms ignore the reports.

* ``random`` -- uniform choice.
* ``round_robin`` -- a shared counter over the candidates, starting at a random offset (as grpc's
  ``round_robin`` does) so that many clients do not all begin with the same instance.
* ``weighted_random`` -- choice proportional to ``Instance.weight``; weight 0 is never picked unless
  every candidate has weight 0 (then uniform).
* ``weighted_round_robin`` -- nginx's smooth weighted round-robin (ngx_http_upstream_round_robin.c):
  every pick adds each weight to its instance's current value and takes the largest, which then gives
  back the total. Weights 5, 1, 1 give ``a a b a c a a``: the same shares as plain WRR without bursts.
  The state is keyed by instance id, so it survives membership changes and routing subsets.
* ``p2c`` -- power of two choices (Mitzenmacher) on load = ``(in_flight + 1) * ewma_latency /
  success``, as in Kratos' ``p2c`` selector and Finagle's ``P2CPeakEwma``: two distinct candidates
  are drawn at random and the cheaper one wins, so a slow or busy instance loses most draws while a
  single bad estimate cannot starve anyone. The EWMA decays with the time since the previous sample
  (weight ``exp(-dt / decay_time)``, Kratos' ``tau``), not per sample, so it forgets at the same pace
  at any call rate. A fresh instance is costed at the average latency of the known ones so it gets
  traffic at once without drawing it all; an instance left out of the draws for ``probe_after``
  seconds is picked once to refresh its figures (Kratos' ``forcePick``); figures of instances idle for
  ``forget_after`` seconds (typically removed ones) are dropped.

:func:`route` narrows candidates by routing group (canary, ...) and metadata before a balancer picks.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from telemetry.discovery.instance import Instance
from telemetry.governance._types import Clock, RandomSource, default_random, monotonic

__all__ = [
    "BALANCERS",
    "Balancer",
    "InstanceLoad",
    "NoInstanceError",
    "P2CBalancer",
    "RandomBalancer",
    "RoundRobinBalancer",
    "WeightedRandomBalancer",
    "WeightedRoundRobinBalancer",
    "build_balancer",
    "route",
]


class NoInstanceError(LookupError):
    """``pick`` was given no candidates."""


class Balancer(Protocol):
    """Chooses an instance per call; told when each call starts and ends."""

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        """One of ``candidates``; :class:`NoInstanceError` when there are none."""
        ...

    def on_start(self, instance: Instance) -> None:
        """A call to ``instance`` (returned by ``pick``) went out."""
        ...

    def on_done(self, instance: Instance, latency_seconds: float, ok: bool) -> None:
        """That call ended after ``latency_seconds``; ``ok`` is False when the instance failed it."""
        ...


def _empty() -> NoInstanceError:
    return NoInstanceError("no candidate instances to pick from")


def _index(random: RandomSource, n: int) -> int:
    # min(): an injected source might return 1.0 despite the [0, 1) contract.
    return min(int(random() * n), n - 1)


class _NoFeedback:
    """Balancers that ignore call reports."""

    __slots__ = ()

    def on_start(self, instance: Instance) -> None:
        pass

    def on_done(self, instance: Instance, latency_seconds: float, ok: bool) -> None:
        pass


class RandomBalancer(_NoFeedback):
    """Uniform choice. No lock: it keeps no state and ``random.random`` is atomic."""

    __slots__ = ("_random",)

    def __init__(self, *, random: RandomSource = default_random) -> None:
        self._random = random

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        n = len(candidates)
        if n == 0:
            raise _empty()
        return candidates[0] if n == 1 else candidates[_index(self._random, n)]


class RoundRobinBalancer(_NoFeedback):
    """Each candidate in turn; the counter starts at a random offset."""

    __slots__ = ("_lock", "_next", "_random")

    def __init__(self, *, random: RandomSource = default_random) -> None:
        self._random = random
        # Drawn at the first pick: a balancer built before a fork still starts each worker apart.
        self._next: int | None = None
        self._lock = threading.Lock()

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        n = len(candidates)
        if n == 0:
            raise _empty()
        with self._lock:
            if self._next is None:
                self._next = _index(self._random, 1 << 30)
            i = self._next
            self._next = (i + 1) & 0x3FFFFFFF  # bounded; the wrap only shifts the phase once
        return candidates[i % n]


class WeightedRandomBalancer(RandomBalancer):
    """Choice proportional to ``Instance.weight``; uniform when every weight is 0. No lock: stateless."""

    __slots__ = ()

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        total = sum(c.weight for c in candidates)
        if total == 0:  # also no candidates: the parent raises
            return super().pick(candidates)
        point = self._random() * total
        chosen = candidates[0]
        for candidate in candidates:
            if candidate.weight == 0:
                continue
            chosen = candidate  # the last positive one absorbs float rounding at the top end
            point -= candidate.weight
            if point < 0:
                break
        return chosen


class WeightedRoundRobinBalancer(_NoFeedback):
    """nginx's smooth weighted round-robin; state per instance id, idle entries forgotten."""

    __slots__ = ("_clock", "_current", "_forget_after", "_lock", "_next_prune")

    def __init__(self, *, clock: Clock = monotonic, forget_after: float = 60.0) -> None:
        if not forget_after > 0:
            raise ValueError(f"forget_after must be > 0, got {forget_after!r}")
        self._clock = clock
        self._forget_after = float(forget_after)
        self._current: dict[str, list[float]] = {}  # id -> [current weight, last seen]
        self._next_prune = clock() + forget_after
        self._lock = threading.Lock()

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        if not candidates:
            raise _empty()
        positive = [c for c in candidates if c.weight > 0]
        # Every weight 0: plain round-robin (equal weights) rather than always the first.
        pool = positive or candidates
        if len(pool) == 1:
            return pool[0]
        equal = not positive
        now = self._clock()
        with self._lock:
            current = self._current
            total = 0
            best, best_entry = pool[0], [-math.inf]  # the first entry replaces the sentinel
            for candidate in pool:
                weight = 1 if equal else candidate.weight
                entry = current.get(candidate.id)
                if entry is None:
                    entry = current[candidate.id] = [0.0, now]
                entry[0] += weight
                entry[1] = now
                total += weight
                if entry[0] > best_entry[0]:  # ties: the first, as nginx
                    best, best_entry = candidate, entry
            best_entry[0] -= total
            if now >= self._next_prune:
                self._prune(now)
        return best

    def _prune(self, now: float) -> None:
        cutoff = now - self._forget_after
        for key in [k for k, entry in self._current.items() if entry[1] < cutoff]:
            del self._current[key]
        self._next_prune = now + self._forget_after


@dataclass(frozen=True, slots=True)
class InstanceLoad:
    """What :class:`P2CBalancer` knows about one instance."""

    in_flight: int
    latency: float | None
    """EWMA latency in seconds; None before the first sample."""
    success: float
    """EWMA of successful calls, 1.0 = all good."""


class _Load:
    __slots__ = ("in_flight", "last_pick", "latency", "stamp", "success", "touched")

    def __init__(self, now: float) -> None:
        self.in_flight = 0
        self.latency: float | None = None
        self.success = 1.0
        self.stamp = now  # time of the last latency sample
        self.last_pick = now
        self.touched = now  # last activity of any kind, for forgetting


class P2CBalancer:
    """Power of two choices on ``(in_flight + 1) * ewma_latency / success`` (module docstring)."""

    __slots__ = (
        "_clock",
        "_decay_time",
        "_forget_after",
        "_latency_sum",
        "_loads",
        "_lock",
        "_min_success",
        "_next_prune",
        "_probe_after",
        "_random",
        "_sampled",
    )

    def __init__(
        self,
        *,
        random: RandomSource = default_random,
        clock: Clock = monotonic,
        decay_time: float = 0.6,
        probe_after: float = 3.0,
        forget_after: float = 60.0,
        min_success: float = 0.01,
    ) -> None:
        """``decay_time``: the EWMA's time constant (Kratos: 600 ms). ``min_success`` caps the failure
        penalty at ``1 / min_success`` times the cost, so a failing instance still gets probes."""
        for name, value in (
            ("decay_time", decay_time),
            ("probe_after", probe_after),
            ("forget_after", forget_after),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not 0 < min_success <= 1:
            raise ValueError(f"min_success must be in (0, 1], got {min_success!r}")
        self._random = random
        self._clock = clock
        self._decay_time = float(decay_time)
        self._probe_after = float(probe_after)
        self._forget_after = float(forget_after)
        self._min_success = float(min_success)
        self._loads: dict[str, _Load] = {}
        self._latency_sum = 0.0  # over the sampled entries: the average prices fresh instances
        self._sampled = 0
        self._next_prune = clock() + forget_after
        self._lock = threading.Lock()

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        n = len(candidates)
        if n == 0:
            raise _empty()
        if n == 1:
            return candidates[0]
        i = _index(self._random, n)
        j = _index(self._random, n - 1)
        if j >= i:  # two distinct indices, each pair equally likely
            j += 1
        a, b = candidates[i], candidates[j]
        now = self._clock()
        with self._lock:
            load_a, load_b = self._load(a.id, now), self._load(b.id, now)
            if now - load_b.last_pick > self._probe_after:
                chosen, load = b, load_b
            elif now - load_a.last_pick > self._probe_after:
                chosen, load = a, load_a
            elif self._cost(load_b) < self._cost(load_a):
                chosen, load = b, load_b
            else:
                chosen, load = a, load_a
            load.last_pick = now  # also keeps a forced probe to one call at a time
            load_a.touched = load_b.touched = now
            if now >= self._next_prune:
                self._prune(now)
        return chosen

    def on_start(self, instance: Instance) -> None:
        now = self._clock()
        with self._lock:
            load = self._load(instance.id, now)
            load.in_flight += 1
            load.touched = now

    def on_done(self, instance: Instance, latency_seconds: float, ok: bool) -> None:
        now = self._clock()
        rtt = max(0.0, latency_seconds)
        with self._lock:
            load = self._load(instance.id, now)
            load.in_flight = max(0, load.in_flight - 1)
            load.touched = now
            old = load.latency
            if old is None:
                load.latency = rtt
                load.success = 1.0 if ok else 0.0
                self._sampled += 1
                self._latency_sum += rtt
            else:
                w = math.exp(-max(0.0, now - load.stamp) / self._decay_time)
                load.latency = old * w + rtt * (1.0 - w)
                load.success = load.success * w + (1.0 - w if ok else 0.0)
                self._latency_sum += load.latency - old
            load.stamp = now

    def stats(self) -> dict[str, InstanceLoad]:
        """The figures per instance id (for dashboards and tests)."""
        with self._lock:
            return {
                key: InstanceLoad(load.in_flight, load.latency, load.success)
                for key, load in self._loads.items()
            }

    # -- with the lock held ----------------------------------------------------------------------

    def _load(self, key: str, now: float) -> _Load:
        load = self._loads.get(key)
        if load is None:
            load = self._loads[key] = _Load(now)
        return load

    def _cost(self, load: _Load) -> float:
        latency = load.latency
        if latency is None:
            # Fresh: the average of the known instances; with none known any constant will do,
            # which leaves in-flight counts to decide.
            latency = self._latency_sum / self._sampled if self._sampled else 1.0
        # The floor keeps a zero-latency estimate (a coarse clock) from erasing in-flight counts.
        latency = max(latency, 1e-6)
        return (load.in_flight + 1) * latency / max(load.success, self._min_success)

    def _prune(self, now: float) -> None:
        cutoff = now - self._forget_after
        stale = [k for k, v in self._loads.items() if v.in_flight == 0 and v.touched < cutoff]
        for key in stale:
            load = self._loads.pop(key)
            if load.latency is not None:
                self._sampled -= 1
                self._latency_sum -= load.latency
        if not self._sampled:
            self._latency_sum = 0.0  # drop accumulated float error
        self._next_prune = now + self._forget_after


_FACTORIES: dict[str, Callable[[RandomSource, Clock], Balancer]] = {
    "random": lambda random, clock: RandomBalancer(random=random),
    "round_robin": lambda random, clock: RoundRobinBalancer(random=random),
    "weighted_random": lambda random, clock: WeightedRandomBalancer(random=random),
    "weighted_round_robin": lambda random, clock: WeightedRoundRobinBalancer(clock=clock),
    "p2c": lambda random, clock: P2CBalancer(random=random, clock=clock),
}

BALANCERS: tuple[str, ...] = tuple(_FACTORIES)
"""The names :func:`build_balancer` accepts."""


def build_balancer(
    name: str, *, random: RandomSource = default_random, clock: Clock = monotonic
) -> Balancer:
    """A balancer by name (one of :data:`BALANCERS`); ValueError names the valid ones."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown balancer {name!r}; valid: {', '.join(BALANCERS)}")
    return factory(random, clock)


def route(
    instances: Sequence[Instance],
    *,
    group: str | None,
    metadata: Mapping[str, str] | None,
) -> list[Instance]:
    """The instances a call may go to.

    ``group`` keeps that routing group only (possibly none: the caller decides what to do then);
    ``None`` keeps the default pool (group ``""``), or every instance when there is no default pool.
    ``metadata`` then keeps the instances carrying all of those values.
    """
    if group is None:
        pool = [i for i in instances if not i.group] or list(instances)
    else:
        pool = [i for i in instances if i.group == group]
    if metadata:
        wanted = tuple(metadata.items())
        pool = [i for i in pool if all(i.metadata.get(k) == v for k, v in wanted)]
    return pool
