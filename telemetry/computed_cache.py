"""A bounded dict that computes missing values: for per-call lookups of values that repeat.

A hit is a plain dict subscript (no Python call: on a live server each call on the request path
costs ~1-2 us, benchmarks/RESULTS.md, overhead); a miss calls ``compute(key)`` from ``__missing__``.
When full the cache is cleared rather than evicting one by one: the keys it serves (peers of a
server's connections, attribute values) repeat, so a rare refill is cheaper than tracking age.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ComputedCache(dict[K, V]):
    """``cache[key]`` is ``compute(key)``, computed once while at most ``size`` keys are held."""

    def __init__(self, compute: Callable[[K], V], size: int = 4096) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self._compute = compute
        self._size = size

    def __missing__(self, key: K) -> V:
        value = self._compute(key)
        if len(self) >= self._size:
            self.clear()
        self[key] = value
        return value
