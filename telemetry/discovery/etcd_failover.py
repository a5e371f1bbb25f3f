"""Which etcd member a client talks to, and how one call's attempts move across members.

:class:`Members` keeps the member in use: it changes only when a call to it fails with a
connection error, ``UNAVAILABLE`` or a timeout, to the next member that has not refused a
connection in the last few seconds (a killed member is passed over, not tried again every round),
and each change is counted (the ``etcd_client_failovers_total`` metric) and logged at info, at most
once a second (the line after a quiet second says how many changes it did not log).

:class:`Attempts` is one call's budget. The call has one deadline (``EtcdConfig.timeout``); with
several members its first attempt gets an eighth of it (an etcd slower than its own 100 ms warning
still answers, and a write is not sent twice), and after a failure each attempt in the deadline's
first half gets a sixteenth (0.1 s at least), so a member that holds a request without answering
costs a fraction of the deadline, not all of it. A follower whose leader was just killed holds a
write until the caller gives up (it forwarded the proposal to the dead leader, where it is lost),
while the same write sent again once the others have elected a new leader takes a millisecond; short
attempts make it land soon after the election (250 ms attempts put the rule 250 or 500 ms after it,
``benchmarks/etcd_failover.py``). An attempt begun in the second half gets all that is left, so an
etcd that is slower still answers. A failed attempt moves on to the next member at once. When every
member has failed, another round starts after a short pause if any of them was reachable (it
answered with an error or held the request: an election is under way), until the deadline; when none
was (nothing listens), the call fails at once: an etcd that is down costs callers no time.

A write retried after a held attempt may have been applied by that attempt too (a put or delete
then lands twice, harmlessly; a granted lease is left to expire; a compare-and-swap reports the key
as changed meanwhile, which its caller already handles).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Attempts", "Members"]

_log = logging.getLogger("telemetry.discovery")

_ROUND_PAUSE = 0.05
"""Seconds between two rounds over every member (they are electing a leader)."""
_LOG_EVERY = 1.0
"""At most one failover line per this many seconds."""
_DOWN_FOR = 3.0
"""Seconds a member that refused a connection is passed over (unless every member did)."""


class Members:
    """The member in use, out of ``endpoints``; thread-safe."""

    def __init__(self, endpoints: tuple[str, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = endpoints
        self._index = 0
        self._failovers = 0
        self._lock = threading.Lock()
        self._clock = clock
        self._next_log = 0.0
        self._unlogged = 0
        self._down_until = [0.0] * len(endpoints)

    @property
    def index(self) -> int:
        return self._index

    @property
    def current(self) -> str:
        return self.endpoints[self._index]

    @property
    def failovers(self) -> int:
        """How many times the client moved to another member."""
        return self._failovers

    def failed(self, index: int, reason: str, *, reachable: bool = True) -> None:
        """A call to member ``index`` failed: move to the next one, unless another thread has
        already moved away from it (or there is no other). ``reachable`` False: it refused the
        connection (nothing listens): pass it over for a while."""
        if len(self.endpoints) < 2:
            return
        with self._lock:
            now = self._clock()
            if not reachable:
                self._down_until[index] = now + _DOWN_FOR
            if self._index != index:
                return
            self._index = self._next(index, now)
            self._failovers += 1
            if now < self._next_log:
                self._unlogged += 1
                return
            self._next_log = now + _LOG_EVERY
            unlogged, self._unlogged = self._unlogged, 0
            new = self.endpoints[self._index]
        _log.info(
            "etcd member %s failed (%s): now using %s%s",
            self.endpoints[index], reason[:200], new,
            f" ({unlogged} more member changes since the last line)" if unlogged else "",
        )  # fmt: skip

    def _next(self, index: int, now: float) -> int:
        """The first member after ``index`` not passed over; the very next if all are."""
        count = len(self.endpoints)
        for step in range(1, count):
            candidate = (index + step) % count
            if self._down_until[candidate] <= now:
                return candidate
        return (index + 1) % count


class Attempts:
    """One call's attempts: its deadline, and whether another attempt is worth making."""

    def __init__(
        self,
        members: int,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._members = members
        self.deadline = clock() + timeout
        # One member: the attempt is the call. Several: the first attempt may take an eighth of
        # the deadline (a slow but working etcd answers it, and a write is not sent twice);
        # after a failure, a held request gives way to the next member after a sixteenth (0.1 s
        # at least) until the middle of the deadline, and from then on an attempt takes the rest.
        self._per_attempt = timeout if members < 2 else min(timeout, max(timeout / 16, 0.1))
        self._first = max(self._per_attempt, timeout / 8)
        self._failed = False
        self._long_from = self.deadline - timeout / 2
        self._tried = 0  # attempts in this round
        self._reachable = False  # some member of this round answered or held the request
        self._pause = False
        self.renewed = False  # the auth token was renewed once already

    def budget(self) -> float:
        """Seconds for the next attempt (at least a millisecond)."""
        now = self._clock()
        left = self.deadline - now
        if now >= self._long_from:
            return max(0.001, left)
        return max(0.001, min(self._per_attempt if self._failed else self._first, left))

    def again(self, *, reachable: bool) -> bool:
        """An attempt failed in a way another member may not: try again? ``reachable``: the
        member answered (an etcd error) or held the request until the attempt timed out."""
        self._tried += 1
        self._failed = True
        self._reachable = self._reachable or reachable
        if self._tried >= self._members:  # a whole round failed
            if not self._reachable:
                return False  # nothing listens anywhere: fail now
            self._tried, self._reachable, self._pause = 0, False, True
        return self.deadline - self._clock() > 0.005

    def pause(self) -> None:
        """Between rounds: let the members finish their election."""
        if self._pause:
            self._pause = False
            self._sleep(max(0.0, min(_ROUND_PAUSE, self.deadline - self._clock())))
