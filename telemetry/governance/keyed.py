"""One rate limiter per key: per user, client IP, tenant, metadata value ...

Limits "per business object", as Sentinel's hot-parameter flow control and go-zero's per-key period
limits do: per user (VIP users are not limited, ordinary users are), per IP. :class:`KeyedLimiter`
creates a limiter for a key on its first call with the given factory, bypasses the keys of the
allow-list (the VIP case: always admitted, nothing tracked) and keeps at most ``max_keys`` limiters,
evicting the least recently used one, so an attacker rotating keys costs bounded memory.

Eviction forgets a key's state: its next call starts with a fresh limiter (a full bucket, an empty
window), which is the price of bounded memory. A :class:`ConcurrencyLimiter` that still has calls
in flight is not evicted while a cheaper victim is found among the next few least recently used
keys (at most ``_EVICTION_SCAN``; busy ones passed over become most recently used). If they are all
busy the oldest goes anyway: the memory bound is hard. Its in-flight calls then release into the
evicted limiter (the chain's gate holds the limiter it acquired; ``release`` of an unknown key is a
no-op) and the key's new limiter starts at zero.

Calls without a key (``None`` or ``""``) share one limiter under the key ``""``; put ``""`` in the
allow-list to let them all through instead.

Thread-safe: one lock guards the key table (a lookup and ``move_to_end``, both in C); the decision
itself happens in the key's limiter, under that limiter's own lock, after the table lock is released.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from telemetry.governance.ratelimit import ConcurrencyLimiter, RateLimiter

__all__ = ["KeyedLimiter"]

_EVICTION_SCAN = 8
"""How many least recently used keys eviction looks at to spare busy concurrency limiters."""


class KeyedLimiter:
    """A limiter per key, created by ``factory`` on first use; ``allow`` keys always pass."""

    __slots__ = ("_allow", "_factory", "_limiters", "_lock", "_max_keys")

    def __init__(
        self,
        factory: Callable[[], RateLimiter],
        *,
        max_keys: int = 10_000,
        allow: Iterable[str] = (),
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {factory!r}")
        if isinstance(max_keys, bool) or not isinstance(max_keys, int):
            raise TypeError(f"max_keys must be an int, got {max_keys!r}")
        if max_keys <= 0:
            raise ValueError(f"max_keys must be > 0, got {max_keys!r}")
        if isinstance(allow, str):  # a lone "vip" would otherwise allow "v", "i", "p"
            raise TypeError("allow must be an iterable of keys, not a str")
        self._factory = factory
        self._max_keys = max_keys
        self._allow = frozenset(allow)
        self._limiters: OrderedDict[str, RateLimiter] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def max_keys(self) -> int:
        return self._max_keys

    @property
    def allow(self) -> frozenset[str]:
        return self._allow

    def __len__(self) -> int:
        """Keys tracked now (allow-listed keys are never tracked)."""
        return len(self._limiters)

    def __contains__(self, key: object) -> bool:
        return key in self._limiters

    def _evict_one(self) -> None:
        # Called under the lock with the table full: drop the LRU key, sparing busy concurrency
        # limiters among the first few candidates.
        limiters = self._limiters
        for _ in range(min(_EVICTION_SCAN, len(limiters))):
            key, limiter = limiters.popitem(last=False)
            if isinstance(limiter, ConcurrencyLimiter) and limiter.in_flight > 0:
                limiters[key] = limiter  # busy: keep it, as most recently used
                continue
            return
        limiters.popitem(last=False)  # all candidates busy: the bound wins

    def limiter_for(self, key: str) -> RateLimiter:
        """The limiter of ``key``, created (evicting the least recently used) on first use."""
        lock = self._lock
        lock.acquire()
        try:
            limiters = self._limiters
            limiter = limiters.get(key)
            if limiter is None:
                if len(limiters) >= self._max_keys:
                    self._evict_one()
                limiter = limiters[key] = self._factory()
            else:
                limiters.move_to_end(key)
            return limiter
        finally:
            lock.release()

    def try_acquire(self, key: str | None) -> bool:
        """Admit one call for ``key`` now? Allow-listed keys always pass."""
        if not key:
            key = ""
        if key in self._allow:
            return True
        return self.limiter_for(key).try_acquire()

    def retry_after(self, key: str | None) -> float:
        """Seconds until ``key`` could be admitted; 0.0 for allow-listed or untracked keys."""
        # A read needs neither creation nor reordering, so no table lock: OrderedDict.get of a str
        # key runs entirely in C, atomic with respect to the other methods' mutations.
        limiter = self._limiters.get(key or "")
        return 0.0 if limiter is None else limiter.retry_after()

    def release(self, key: str | None) -> None:
        """The admitted call for ``key`` finished; unknown (evicted, allow-listed) keys: no-op."""
        limiter = self._limiters.get(key or "")  # lock-free, as in retry_after
        if limiter is not None:
            limiter.release()

    def __repr__(self) -> str:
        return f"KeyedLimiter(keys={len(self._limiters)}, max_keys={self._max_keys})"
