"""Governance decision cost: nanoseconds per decision, this package against its peers, in one run.

Every limiter and the circuit breaker of ``telemetry.governance`` is timed next to the peer libraries
that offer the same mechanism (``limits``, ``pyrate-limiter``, ``pybreaker``, ``aiolimiter``; the
stdlib ``threading.BoundedSemaphore`` for the concurrency limiter, which no peer has):

  fixed window      ours | limits FixedWindowRateLimiter | pyrate-limiter FixedWindow (a log)
  sliding window    ours (ring of sub-windows) | limits MovingWindowRateLimiter (exact log) |
                    limits SlidingWindowCounterRateLimiter (two weighted windows) |
                    pyrate-limiter SlidingWindowLog (exact log, pyrate's default)
  token bucket      ours (GCRA) | pyrate-limiter TokenBucket (GCRA, StateBucket)
  leaky bucket      ours, from a coroutine | aiolimiter AsyncLimiter (await acquire / async with)
  concurrency       ours | threading.BoundedSemaphore (acquire(blocking=False) + release)
  breaker closed    ours try_acquire + call + on_success(timed duration) | pybreaker call(fn)
  breaker open      ours try_acquire refused | pybreaker call raising CircuitBreakerError
  ...and, with no peer, warm-up, a keyed limiter over 10k keys, AdaptiveThrottle, AdaptiveLimiter.

Method: each decision runs in a ``perf_counter_ns`` loop with the bound method in a local; an empty
loop of the same shape, timed right after, is subtracted. Admission rows use limits high enough that
every call is admitted (the same work for everybody); ``*_reject`` rows time the refusal path. Within
a mechanism the implementations take turns (order reversed every repeat) so drift on a shared machine
hits them alike; the figure is the median over the repeats. The garbage collector is paused inside
the timed loops (as ``timeit`` does), which can only flatter the peers that allocate per call.

Breaker scaling: N threads (1, 2, 4, 8) call through ONE breaker a function that sleeps 1 ms (the GIL
is released, as in a real RPC); calls/s for no breaker at all ("bare"), ours and pybreaker, which
holds its lock across the call and so serialises them.

Targets (the issue): ours at least as fast as the fastest peer for each comparable mechanism; for the
scaling, ours at 8 threads keeps >= 80% of bare's calls/s.

Run: ``python benchmarks/governance.py`` (``--quick`` for a smoke run; ``--only a,b`` for some
mechanisms). A table, then one JSON line of figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _governance_mechanisms import build
from _governance_report import report
from _governance_timing import _Async, measure, scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per implementation (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one breaker-scaling slice")
    parser.add_argument(
        "--slices", type=int, default=3, help="breaker-scaling slices per point (median)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="20k calls x 3 repeats, short scaling: a smoke run"
    )
    parser.add_argument("--only", default="", help="comma-separated mechanisms (and/or breaker_scaling)")
    args = parser.parse_args()
    calls, repeats, seconds, slices = (
        (20_000, 3, 0.25, 1) if args.quick else (args.calls, args.repeats, args.seconds, args.slices)
    )
    only = {m for m in args.only.split(",") if m}
    aio = _Async()
    try:
        built = mechanisms = build(aio)
        known = {m.key for m in mechanisms} | {"breaker_scaling"}
        if only - known:
            parser.error(
                f"--only: unknown {', '.join(sorted(only - known))}; known: {', '.join(sorted(known))}"
            )
        if only:
            mechanisms = [m for m in mechanisms if m.key in only]
        for mechanism in mechanisms:
            measure(mechanism, calls, repeats)
            print(f"{mechanism.key}: done", flush=True)
        for mechanism in built:
            for cleanup in mechanism.cleanup:
                cleanup()
    finally:
        aio.close()
    scaled = scaling(seconds, slices) if not only or "breaker_scaling" in only else None
    report(mechanisms, scaled, calls, repeats)


if __name__ == "__main__":
    main()
