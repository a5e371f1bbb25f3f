"""The latency-driven limit of :class:`telemetry.governance.adaptive.AdaptiveLimiter`.

**Netflix Gradient2** (Netflix/concurrency-limits ``Gradient2Limit``; Envoy's adaptive concurrency
filter uses the same gradient idea): a latency-driven limit, updated once per bucket from the mean
RT of the bucket that just closed (short RTT) against an exponential average of those means over
``long_window`` buckets (long RTT)::

    gradient = clamp(tolerance * long_rtt / short_rtt, 0.5, 1.0)
    new      = L * gradient + sqrt(L)                    # sqrt(L): room for a small queue
    L        = clamp(0.8 * L + 0.2 * new, min_limit, max_limit)

As in Gradient2 the limit is left unchanged while the service is "app-limited" (peak in-flight of
the bucket below L/2: the limit was not what constrained it), the first 10 samples of the long RTT
are a plain average (warm-up), and when ``long_rtt > 2 * short_rtt`` the long RTT is cut by 5 % so
it recovers quickly after a period of overload.

Not thread-safe: the limiter updates and reads it under its own lock, once per bucket.
"""

from __future__ import annotations

import math
import sys

__all__ = ["NO_LIMIT", "GradientLimit"]

NO_LIMIT = sys.maxsize
"""The latency limit while latency is within tolerance: no limit."""

_SMOOTHING = 0.2  # Gradient2's default smoothing of the limit
_MIN_GRADIENT = 0.5  # Gradient2: one bad bucket never more than halves the limit
_LONG_RTT_WARMUP = 10  # Gradient2's ExpAvgMeasurement warm-up: first samples are a plain average


class GradientLimit:
    """Gradient2's limit (see the module docstring), fed one short RTT per closed bucket.

    ``limit`` is the smoothed limit (a float), ``limit_int`` the same rounded, and
    :meth:`latency_limit` the limit to enforce at any CPU: ``limit_int`` once the short RTT has
    exceeded ``tolerance * long_rtt`` for ``latency_sustain`` buckets in a row, else
    :data:`NO_LIMIT`.
    """

    __slots__ = (
        "_degraded_samples",
        "_latency_sustain",
        "_long_alpha",
        "_long_rtt",
        "_long_samples",
        "_max_limit",
        "_min_limit",
        "_tolerance",
        "limit",
        "limit_int",
    )

    def __init__(
        self,
        *,
        initial_limit: int,
        min_limit: int,
        max_limit: int,
        tolerance: float,
        long_window: int,
        latency_sustain: int,
    ) -> None:
        self._min_limit = min_limit
        self._max_limit = max_limit
        self._tolerance = float(tolerance)
        self._long_alpha = 2.0 / (long_window + 1)  # EMA over ~long_window samples
        self._latency_sustain = latency_sustain
        self._long_rtt = 0.0
        self._long_samples = self._degraded_samples = 0
        self.limit = float(initial_limit)
        self.limit_int = initial_limit

    def update(self, short_rtt: float, peak: int) -> None:
        """One sample per closed bucket: ``short_rtt`` is its mean RT, ``peak`` its highest
        in-flight (for the app-limited check)."""
        if short_rtt <= 0.0:
            return
        if self._long_samples < _LONG_RTT_WARMUP:
            self._long_samples += 1
            self._long_rtt += (short_rtt - self._long_rtt) / self._long_samples
        else:
            self._long_rtt += (short_rtt - self._long_rtt) * self._long_alpha
        long_rtt = self._long_rtt
        if long_rtt > 2.0 * short_rtt:  # latency is back to normal after overload: catch up
            long_rtt = self._long_rtt = long_rtt * 0.95
        if short_rtt > self._tolerance * long_rtt:
            self._degraded_samples += 1
        else:
            self._degraded_samples = 0
        limit = self.limit
        if peak < limit / 2:  # app-limited: the limit was not the constraint, learn nothing
            return
        gradient = max(_MIN_GRADIENT, min(1.0, self._tolerance * long_rtt / short_rtt))
        new = limit * gradient + math.sqrt(limit)
        new = limit * (1.0 - _SMOOTHING) + new * _SMOOTHING
        self.limit = min(float(self._max_limit), max(float(self._min_limit), new))
        self.limit_int = max(self._min_limit, int(self.limit + 0.5))

    def latency_limit(self) -> int:
        degraded = self._degraded_samples >= self._latency_sustain
        return self.limit_int if degraded else NO_LIMIT
