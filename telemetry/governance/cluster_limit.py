"""Exact cluster rate limits: one token bucket for the whole service, kept in a shared store.

A rate limit marked ``cluster`` is, by default, split evenly across the live instances
(:mod:`telemetry.control.cluster_limits`): with traffic 80/10/10 over three instances, the hot one
refuses at a third of the limit while the others idle. With a :class:`ClusterStore` (Redis, see
``telemetry.governance.redis_bucket``) every instance takes its tokens from one bucket sized with
the whole service's limit and burst, so the service admits its limit whatever the skew.

The store is never allowed to slow or fail a call (Sentinel's cluster flow control falls back to
local limits the same way): each decision asks the store once, with a short socket timeout; on any
failure the store is marked down for a backoff period (doubling up to a cap) during which every
limiter decides with its local, evenly split limiter -- today's behaviour, exactly -- without
touching the store. When the period ends, one call (one, whoever comes first) probes the store;
the others stay local until it answers. So a dead store costs one failed attempt per backoff
period for the whole process, not one per call.

Pure like the rest of the package: no grpc, no thread of its own, an injected clock. The store's
mode changes are told to listeners (the live rules' status writer) from a short-lived thread, so a
listener's I/O never runs on a call.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from typing import Protocol

from telemetry.governance._types import Clock, monotonic
from telemetry.governance.ratelimit import RateLimiter

__all__ = [
    "KEY_PREFIX",
    "LOCAL",
    "MAX_KEY_BYTES",
    "REDIS",
    "BucketBackend",
    "ClusterLimiter",
    "ClusterStore",
    "bucket_key",
]

_log = logging.getLogger("telemetry.governance")

REDIS = "redis"
LOCAL = "local"
KEY_PREFIX = "telemetry:rl:"
MAX_KEY_BYTES = 200
"""Longest bucket key: a longer one keeps its start and ends with a hash of the whole."""


class BucketBackend(Protocol):
    """One round trip to the shared store: take a token from ``key``'s bucket."""

    name: str  # the store's kind, as the mode label says it ("redis")

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """(admitted, seconds until a token is back when refused). Raises on any failure."""
        ...


def bucket_key(service: str, pattern: str) -> str:
    """``telemetry:rl:<service>:<pattern>``, at most :data:`MAX_KEY_BYTES` bytes: a hostile or
    huge name is cut and made unique again by a hash of the whole."""
    key = f"{KEY_PREFIX}{service}:{pattern}"
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(raw).hexdigest()[:32]
    head = raw[: MAX_KEY_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}#{digest}"


class ClusterStore:
    """A shared bucket store with a circuit around it, for one service's limiters.

    ``backoff``: (first, longest) seconds the store is left alone after a failure; each failure
    in a row doubles the period. ``clock``: monotonic seconds (tests inject one).
    """

    def __init__(
        self,
        backend: BucketBackend,
        *,
        service: str,
        backoff: tuple[float, float] = (0.5, 5.0),
        clock: Clock = monotonic,
        describe: str = "",
    ) -> None:
        first, longest = backoff
        if not (0 < first <= longest and math.isfinite(longest)):
            raise ValueError(f"backoff must be 0 < first <= longest, got {backoff!r}")
        self.backend = backend
        self.service = service
        self.describe = describe  # where the store is, safe to log (no password)
        self._backoff = backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until: float | None = None  # None: up
        self._next_wait = first
        self._probing = False
        self._last_error = ""
        self.errors = 0  # failed round trips
        self.fallbacks = 0  # times the store went down (limiters fell back to local)
        self.decisions = {REDIS: 0, LOCAL: 0}  # approximate (unlocked increments)
        self._listeners: list[Callable[[str], None]] = []

    # -- state ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``backend.name`` while the store answers, :data:`LOCAL` while it is backed off."""
        return self.backend.name if self._down_until is None else LOCAL

    @property
    def last_error(self) -> str:
        return self._last_error

    def status(self) -> dict[str, object]:
        """What the instance's status tells the panel."""
        return {"mode": self.mode, "store": self.describe, "error": self._last_error or None}

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(mode)`` after each change of mode, from a short-lived thread."""
        with self._lock:
            self._listeners.append(listener)

    def limiter(
        self, pattern: str, rate: float, burst: int | None, local: RateLimiter
    ) -> ClusterLimiter:
        """A limiter for ``pattern``: ``rate`` calls/s and ``burst`` (None: one second's worth)
        for the whole service, ``local`` (the even split) while the store is down."""
        return ClusterLimiter(self, bucket_key(self.service, pattern), rate, burst, local)

    def close(self) -> None:
        """Close the backend's connections (when it has a ``close``); limiters still decide, locally
        if the backend cannot answer any more."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                _log.debug("closing the cluster store failed", exc_info=True)

    # -- one decision -------------------------------------------------------------------------

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float] | None:
        """The store's verdict, or None: decide locally (the store is down, or just failed)."""
        probe = False
        if self._down_until is not None:
            probe = self._may_probe()
            if not probe:
                self.decisions[LOCAL] += 1
                return None
        try:
            verdict = self.backend.take(key, rate, burst)
        except Exception as exc:  # any failure: fall back, never fail the call
            self._failed(exc, probe=probe)
            self.decisions[LOCAL] += 1
            return None
        except BaseException:  # cancelled, interrupted: no verdict, but never stuck probing
            if probe:
                self._probe_abandoned()
            raise
        if probe:
            self._recovered()  # only the probe says the store is back (not a call sent before)
        self.decisions[REDIS] += 1
        return verdict

    def _may_probe(self) -> bool:
        """True for the one call that probes a store whose backoff is over."""
        with self._lock:
            down_until = self._down_until
            if down_until is None or self._probing or self._clock() < down_until:
                return False
            self._probing = True  # this call probes; the others stay local until it answers
            return True

    def _failed(self, exc: Exception, *, probe: bool) -> None:
        """A round trip failed. The first failure takes the store down for the first backoff; a
        failed probe doubles it (to the cap); the failures of calls that were in flight when the
        store went down change nothing more (a blip under concurrency is one failure, not many)."""
        error = f"{type(exc).__name__}: {exc}"[:200]
        with self._lock:
            self.errors += 1
            self._last_error = error
            was_up = self._down_until is None
            first, longest = self._backoff
            if was_up:
                wait = first
                self.fallbacks += 1
            elif probe:
                wait = self._next_wait
            else:
                return
            self._next_wait = min(wait * 2, longest)
            self._down_until = self._clock() + wait
            self._probing = False
        if was_up:
            _log.warning(
                "cluster rate limits: %s unreachable (%s); deciding locally (even split), "
                "retrying in %.2fs", self.describe or self.backend.name, error, wait,
            )  # fmt: skip
            self._tell(LOCAL)

    def _probe_abandoned(self) -> None:
        with self._lock:
            self._probing = False  # the next call after the backoff probes again

    def _recovered(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
            self._probing = False
            self._next_wait = self._backoff[0]
            self._last_error = ""
        if was_down:
            _log.warning("cluster rate limits: %s answers again", self.describe or self.backend.name)
            self._tell(self.backend.name)

    def _tell(self, mode: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        if listeners:
            threading.Thread(
                target=_call_each, args=(listeners, mode), daemon=True, name="telemetry-cluster-mode"
            ).start()


def _call_each(listeners: list[Callable[[str], None]], mode: str) -> None:
    for listener in listeners:
        try:
            listener(mode)
        except Exception:
            _log.exception("cluster store listener failed")


class ClusterLimiter:
    """A :class:`~telemetry.governance.ratelimit.RateLimiter` taking its tokens from the
    store's bucket ``key`` (the whole service's ``rate`` and ``burst``), or from ``local`` (this
    instance's even split) while the store is down."""

    __slots__ = ("_burst", "_key", "_local", "_rate", "_retry", "_store")

    def __init__(
        self, store: ClusterStore, key: str, rate: float, burst: int | None, local: RateLimiter
    ) -> None:
        self._store = store
        self._key = key
        self._rate = rate
        self._burst = burst if burst is not None else max(1, math.ceil(rate))
        self._local = local
        self._retry = 0.0

    @property
    def key(self) -> str:
        return self._key

    @property
    def store(self) -> ClusterStore:
        return self._store

    @property
    def rate(self) -> float:
        """The whole service's calls per second."""
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def local(self) -> RateLimiter:
        """The even-split limiter used while the store is down."""
        return self._local

    @property
    def mode(self) -> str:
        return self._store.mode

    def try_acquire(self) -> bool:
        verdict = self._store.take(self._key, self._rate, self._burst)
        if verdict is None:
            self._retry = -1.0  # retry_after asks the local limiter
            return self._local.try_acquire()
        admitted, self._retry = verdict
        return admitted

    def retry_after(self) -> float:
        retry = self._retry  # a hint: the last verdict of any thread
        return self._local.retry_after() if retry < 0 else retry

    def release(self) -> None:
        self._local.release()

    def __repr__(self) -> str:
        return (
            f"ClusterLimiter(key={self._key!r}, rate={self._rate}, burst={self._burst}, "
            f"mode={self.mode})"
        )
