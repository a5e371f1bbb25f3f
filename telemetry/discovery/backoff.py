"""Exponential backoff for the loops that keep etcd state alive (registration, watches)."""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """Delays between attempts of a failing loop: ``first``, then doubling up to ``cap``;
    :meth:`reset` after a success starts again from ``first``."""

    __slots__ = ("_cap", "_delay", "_first")

    def __init__(self, first: float, cap: float) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff needs 0 < first <= cap, got first={first!r}, cap={cap!r}")
        self._first = first
        self._cap = cap
        self._delay = first

    def reset(self) -> None:
        self._delay = self._first

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (at most ``cap``)."""
        delay = self._delay
        self._delay = min(self._cap, delay * 2)
        return delay
