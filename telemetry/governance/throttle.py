"""Client-side adaptive throttling (Google SRE book), with go-zero's ``googlebreaker`` refinements.

The SRE book, chapter 21 "Handling Overload", section "Client-Side Throttling", has each client keep,
over a trailing window (two minutes there), the number of ``requests`` its application attempted and
the number of ``accepts`` the backend took, and reject a new request locally with probability::

    max(0, (requests - K * accepts) / (requests + 1))

so a backend that refuses most work stops receiving it, while the client keeps sending roughly
``K * accepts`` (a little more than the backend is taking) to notice a recovery.

go-zero's ``core/breaker/googlebreaker.go`` (window 10 s in 40 buckets, K 1.5 .. 1.1, protection 5,
forced pass after 1 s) refines this, and this class implements the same refinements::

    failing  = trailing run of buckets (newest first; empty buckets skipped) with rejects, no accepts
    working  = trailing run of buckets (newest first; empty buckets skipped) with accepts, no rejects
    K'       = max(min_k, k - (k - min_k) * failing / buckets)
    p        = (requests - protected - K' * accepts) / (requests + 1)
    p        = 0                                 if p <= 0
    p        = p * (buckets - working) / buckets otherwise

* ``protected`` lets the first requests of a window through even when nothing is accepted (low-QPS
  clients would otherwise be throttled by a handful of errors).
* K decays toward ``min_k`` while the backend keeps failing bucket after bucket (throttle harder in a
  sustained outage) and is back to ``k`` once a bucket sees an accept.
* A run of healthy buckets scales the probability down, so throttling fades quickly after a recovery
  instead of waiting for the rejects to age out of the window.
* Forced pass: when ``p > 0`` but no request has been admitted for ``force_pass_after`` seconds (1 s),
  the request is let through regardless, so a recovered backend is noticed even at high ``p``.

Counting (as in the SRE book): ``try_acquire`` counts every request, admitted or rejected locally,
after deciding on it (the probability uses the history before this request); ``on_accepted`` and
``on_rejected`` report the backend's verdict on an admitted request. Which status codes mean "rejected"
(RESOURCE_EXHAUSTED, UNAVAILABLE, ...) is the caller's decision.

Cost: O(1) per call in the healthy case. The O(buckets) run scan only happens when even the most
aggressive K (``min_k``) would give a positive probability, i.e. when the backend is refusing work.
"""

from __future__ import annotations

import math
import threading

from telemetry.governance._types import Clock, RandomSource, default_random, monotonic

__all__ = ["AdaptiveThrottle"]


class AdaptiveThrottle:
    """Thread- and asyncio-safe SRE adaptive throttle (see the module docstring for the formula)."""

    __slots__ = (
        "_accepts",
        "_b_accepts",
        "_b_rejects",
        "_b_requests",
        "_bucket_duration",
        "_buckets",
        "_clock",
        "_force_pass_after",
        "_head",
        "_head_end",
        "_k",
        "_last_admit",
        "_lock",
        "_min_k",
        "_protected",
        "_random",
        "_requests",
    )

    def __init__(
        self,
        *,
        k: float = 1.5,
        min_k: float = 1.1,
        window: float = 10.0,
        buckets: int = 40,
        protected: int = 5,
        force_pass_after: float = 1.0,
        clock: Clock = monotonic,
        random: RandomSource = default_random,
    ) -> None:
        """Validate and store the configuration.

        ``window`` seconds are split into ``buckets`` equal buckets. ``force_pass_after=math.inf``
        disables the forced pass; ``min_k == k`` disables the K decay.
        """
        if not (k >= 1.0 and math.isfinite(k)):
            raise ValueError(f"k must be a finite number >= 1, got {k!r}")
        if not 1.0 <= min_k <= k:
            raise ValueError(f"min_k must be in [1, k], got {min_k!r} (k={k!r})")
        if not (window > 0.0 and math.isfinite(window)):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be an int >= 1, got {buckets!r}")
        if isinstance(protected, bool) or not isinstance(protected, int) or protected < 0:
            raise ValueError(f"protected must be an int >= 0, got {protected!r}")
        if not force_pass_after > 0.0:
            raise ValueError(f"force_pass_after must be > 0, got {force_pass_after!r}")

        self._k = float(k)
        self._min_k = float(min_k)
        self._buckets = buckets
        self._bucket_duration = window / buckets
        self._protected = protected
        self._force_pass_after = float(force_pass_after)
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()
        self._b_requests = [0] * buckets
        self._b_accepts = [0] * buckets
        self._b_rejects = [0] * buckets
        self._requests = 0
        self._accepts = 0
        now = clock()
        self._head = math.floor(now / self._bucket_duration)  # bucket number of the newest bucket
        self._head_end = (self._head + 1) * self._bucket_duration  # when the newest bucket ends
        self._last_admit = now

    # -- window bookkeeping (lock held) ------------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Expire the buckets that left the window; called only once ``now >= _head_end``."""
        slot = math.floor(now / self._bucket_duration)
        head = self._head
        if slot <= head:  # float edge at a bucket boundary; nothing expired
            return
        size = self._buckets
        b_requests, b_accepts, b_rejects = self._b_requests, self._b_accepts, self._b_rejects
        if slot - head >= size:
            for i in range(size):
                b_requests[i] = b_accepts[i] = b_rejects[i] = 0
            self._requests = self._accepts = 0
        else:
            for s in range(head + 1, slot + 1):
                i = s % size
                self._requests -= b_requests[i]
                self._accepts -= b_accepts[i]
                b_requests[i] = b_accepts[i] = b_rejects[i] = 0
        self._head = slot
        self._head_end = (slot + 1) * self._bucket_duration

    def _probability(self) -> float:
        """The exact reject probability from the current window (forced pass not considered)."""
        requests = self._requests
        accepts = self._accepts
        if requests - self._protected - self._min_k * accepts <= 0:
            return 0.0  # even the smallest K drops nothing: skip the bucket scan
        size = self._buckets
        b_accepts, b_rejects = self._b_accepts, self._b_rejects
        failing = working = 0
        for s in range(self._head - size + 1, self._head + 1):  # oldest to newest
            i = s % size
            accepted, rejected = b_accepts[i], b_rejects[i]
            if rejected:
                working = 0
            elif accepted:
                working += 1
            if accepted:
                failing = 0
            elif rejected:
                failing += 1
        k = max(self._k - (self._k - self._min_k) * failing / size, self._min_k)
        p = (requests - self._protected - k * accepts) / (requests + 1)
        if p <= 0.0:
            return 0.0
        return p * (size - working) / size

    # -- public API ------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """May the request go to the backend? ``False``: reject locally. Counts it either way."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            # Upper bound with the smallest K and no working-bucket discount: in the healthy case this
            # one comparison decides, without the bucket scan.
            if self._requests - self._protected - self._min_k * self._accepts <= 0:
                admitted = True
            elif now - self._last_admit >= self._force_pass_after:
                admitted = True  # forced pass: let one through so a recovered backend is noticed
            else:
                p = self._probability()
                admitted = p <= 0.0 or self._random() >= p
            self._b_requests[self._head % self._buckets] += 1
            self._requests += 1
            if admitted:
                self._last_admit = now
            return admitted

    def on_accepted(self) -> None:
        """The backend accepted an admitted request (it was not refused for overload)."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            self._b_accepts[self._head % self._buckets] += 1
            self._accepts += 1

    def on_rejected(self) -> None:
        """The backend refused an admitted request for overload (RESOURCE_EXHAUSTED, UNAVAILABLE...)."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            self._b_rejects[self._head % self._buckets] += 1

    @property
    def reject_probability(self) -> float:
        """The probability that the next request is rejected locally (ignoring the forced pass)."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            return self._probability()

    @property
    def requests(self) -> int:
        """Requests counted in the window (admitted and locally rejected)."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            return self._requests

    @property
    def accepts(self) -> int:
        """Requests the backend accepted in the window."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            return self._accepts
