"""Exact cluster rate limits on Redis against the even split, on a real local redis-server.

Three limiter instances (in-process, each with its own store and Redis client, as three service
processes would have) share one cluster limit of LIMIT calls/s (burst BURST). Traffic is skewed
80/10/10 across them and offered at 1.5 x the limit, paced: the hot instance gets 1.2 x the limit,
each cold one 0.15 x, less than its third. Admitted calls per second, for

- (a) redis: one token bucket in Redis (the Lua GCRA script, telemetry.governance.redis_bucket);
- (b) split: today's even split, a local token bucket of LIMIT/3 (burst BURST/3) per instance;
- (c) redis down: (a) with Redis unreachable, so every instance falls back to (b).

(a) should admit the limit (plus the burst once), (b) and (c) about 0.63 x it (the hot instance
held to a third, the cold ones using what they get). Then the cost of one decision, sequential,
on loopback: the Redis limiter, the local limiter, the fallback (Redis down), and the candidates
of the ``limits`` library's Redis storage (moving window, fixed window, sliding-window counter),
which is how the client was chosen. Modes run in interleaved slices, so a noisy neighbour on the
machine hits them all alike. Last, the same three modes in the running demo stack: three inventory
processes, discovery in etcd, the limit as a live rule, real gRPC calls 80/10/10 to each instance
(``_cluster_limit_stack.py``), counted after a warm-up that spends the burst.

    python benchmarks/cluster_limit.py              # about 3 minutes
    python benchmarks/cluster_limit.py --quick      # about a minute: a smoke run
    python benchmarks/cluster_limit.py --no-stack   # the in-process parts only
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _cluster_limit_stack import stack_phases
from _common import emit_json, print_table

from telemetry.governance import ClusterLimiter, RateLimiter, TokenBucketLimiter, redis_cluster_store
from telemetry.testing.ports import free_port
from telemetry.testing.redis_server import RedisServer

LIMIT = 200.0
BURST = 20
INSTANCES = 3
SKEW = (0.8, 0.1, 0.1)
OFFERED = 1.5  # x the limit
MODES = ("redis", "split", "redis_down")


def cluster(url: str, pattern: str) -> list[RateLimiter]:
    made: list[RateLimiter] = []
    for _ in range(INSTANCES):
        store = redis_cluster_store(url, service="bench", backoff=(0.5, 5.0))
        made.append(store.limiter(pattern, LIMIT, BURST, split_share()))
    return made


def split_share() -> TokenBucketLimiter:
    return TokenBucketLimiter(LIMIT / INSTANCES, math.ceil(BURST / INSTANCES))


def limiters_for(mode: str, url: str, dead_url: str, slice_id: int) -> list[RateLimiter]:
    if mode == "split":
        return [split_share() for _ in range(INSTANCES)]
    return cluster(url if mode == "redis" else dead_url, f"bench.S/slice{slice_id}")


def offer(limiters: list[RateLimiter], seconds: float) -> tuple[list[int], list[int], float]:
    """Paced traffic, 80/10/10, at OFFERED x LIMIT: (admitted, offered) per instance, elapsed."""
    gap = 1.0 / (OFFERED * LIMIT)
    admitted, offered = [0] * INSTANCES, [0] * INSTANCES
    pattern = [0] * 8 + [1, 2]  # 80/10/10
    start = time.monotonic()
    sent = 0
    while True:
        due = start + sent * gap
        now = time.monotonic()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        index = pattern[sent % 10]
        sent += 1
        offered[index] += 1
        if limiters[index].try_acquire():
            admitted[index] += 1
    return admitted, offered, time.monotonic() - start


def exactness(url: str, dead_url: str, seconds: float, repeats: int) -> dict[str, dict[str, float]]:
    rates: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
    slice_id = 0
    for repeat in range(repeats):
        for mode in MODES[repeat % len(MODES) :] + MODES[: repeat % len(MODES)]:  # interleaved
            slice_id += 1
            admitted, _offered, elapsed = offer(limiters_for(mode, url, dead_url, slice_id), seconds)
            rates[mode].append([a / elapsed for a in admitted])
    out = {}
    for mode, runs in rates.items():
        per_instance = [statistics.median(run[i] for run in runs) for i in range(INSTANCES)]
        total = statistics.median(sum(run) for run in runs)
        bound = bound_for(mode, seconds)
        out[mode] = {"admitted_per_s": total, "hot_per_s": per_instance[0],
                     "cold_per_s": per_instance[1], "of_limit": total / LIMIT,
                     "bound_per_s": bound, "of_bound": total / bound}  # fmt: skip
    return out


def bound_for(mode: str, seconds: float) -> float:
    """Most a mode may admit per second over a slice: the limit plus one burst (redis); each
    instance's offered rate capped by its share plus its share of the burst (split, fallback)."""
    if mode == "redis":
        return LIMIT + BURST / seconds
    share = LIMIT / INSTANCES + math.ceil(BURST / INSTANCES) / seconds
    return sum(min(OFFERED * LIMIT * skew, share) for skew in SKEW)


def timed(decide: Callable[[], Any], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        decide()
        samples.append((time.perf_counter_ns() - started) / 1000.0)
    return samples


def decision_costs(url: str, dead_url: str, calls: int, slices: int) -> dict[str, dict[str, float]]:
    from limits import RateLimitItemPerSecond
    from limits.storage import RedisStorage
    from limits.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )

    big = 1_000_000.0  # never refuses: the cost of deciding, not of refusing
    redis_limiter = redis_cluster_store(url, service="bench").limiter("cost", big, 10**6, split_share())
    down: ClusterLimiter = redis_cluster_store(dead_url, service="bench", backoff=(60, 60)).limiter(
        "cost", big, 10**6, TokenBucketLimiter(big, 10**6)
    )
    down.try_acquire()  # fails once; the circuit then keeps calls away
    local = TokenBucketLimiter(big, 10**6)
    storage = RedisStorage(url)
    item = RateLimitItemPerSecond(10**6)
    moving, fixed = MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)
    counter = SlidingWindowCounterRateLimiter(storage)
    candidates: dict[str, Callable[[], Any]] = {
        "lua_gcra_redis": redis_limiter.try_acquire,
        "limits_moving_window": lambda: moving.hit(item, "bench-moving"),
        "limits_fixed_window": lambda: fixed.hit(item, "bench-fixed"),
        "limits_sliding_counter": lambda: counter.hit(item, "bench-counter"),
        "local_token_bucket": local.try_acquire,
        "fallback_redis_down": down.try_acquire,
    }
    for decide in candidates.values():
        timed(decide, 200)  # connections, script caches
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(slices):
        for name, decide in candidates.items():
            samples[name] += timed(decide, calls // slices)
    out = {}
    for name, values in samples.items():
        values.sort()
        mean = statistics.fmean(values)
        out[name] = {"p50_us": values[len(values) // 2], "p99_us": values[int(len(values) * 0.99)],
                     "calls_per_s": 1e6 / mean}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short slices: a smoke run")
    parser.add_argument("--no-stack", action="store_true", help="leave out the demo-stack phases")
    args = parser.parse_args()
    logging.getLogger("telemetry.governance").setLevel(logging.ERROR)  # the fallback's warnings
    seconds, repeats, calls, slices = (1.0, 3, 6_000, 3) if args.quick else (4.0, 6, 60_000, 10)
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with RedisServer() as server:
        exact = exactness(server.url, dead_url, seconds, repeats)
        costs = decision_costs(server.url, dead_url, calls, slices)
    print_table(
        f"Admitted calls/s, limit {LIMIT:g}/s (burst {BURST}) over {INSTANCES} instances, traffic "
        f"80/10/10 offered at {OFFERED:g}x the limit (median of {repeats} slices of {seconds:g}s)",
        ["mode", "admitted/s", "of limit", "bound/s", "of bound", "hot instance/s", "each cold/s"],
        [[mode, f"{r['admitted_per_s']:.1f}", f"{r['of_limit']:.3f}", f"{r['bound_per_s']:.1f}",
          f"{r['of_bound']:.3f}", f"{r['hot_per_s']:.1f}", f"{r['cold_per_s']:.1f}"]
         for mode, r in exact.items()],
    )  # fmt: skip
    stack: dict[str, dict[str, Any]] = {}
    if not args.no_stack:
        warmup, measured = (2.0, 4.0) if args.quick else (3.0, 12.0)
        stack = stack_phases(LIMIT, BURST, OFFERED, SKEW, warmup, measured)
        print_table(
            f"In the demo stack: {INSTANCES} inventory processes, the limit as a live rule, GetStock "
            f"80/10/10 at {OFFERED:g}x the limit ({measured:g} s after a {warmup:g} s warm-up)",
            ["mode", "admitted/s", "of limit", "bound/s", "of bound", "per instance/s", "modes"],
            [[mode, f"{r['admitted_per_s']:.1f}", f"{r['of_limit']:.3f}", f"{r['bound_per_s']:.1f}",
              f"{r['of_bound']:.3f}", " / ".join(f"{v:.1f}" for v in r["per_instance_per_s"]),
              ",".join(r["modes"])]
             for mode, r in stack.items()],
        )  # fmt: skip
    print_table(
        f"Decision cost, sequential, loopback ({calls} calls each, {slices} interleaved slices)",
        ["decider", "p50 us", "p99 us", "calls/s"],
        [[name, f"{c['p50_us']:.1f}", f"{c['p99_us']:.1f}", f"{c['calls_per_s']:,.0f}"]
         for name, c in costs.items()],
    )  # fmt: skip
    emit_json({"benchmark": "cluster_limit", "quick": args.quick, "limit": LIMIT, "burst": BURST,
               "admitted": exact, "decision_cost": costs, "stack": stack})  # fmt: skip


if __name__ == "__main__":
    main()
