"""The sign-in guard: slows down and locks out password guessing, per client and overall.

The panel asks :meth:`SignInGuard.attempt` for every sign-in; the guard decides whether the password
is checked at all. After each wrong password the client must wait before its next attempt is
accepted (``delay_seconds``, doubling up to ``max_delay_seconds``); after ``max_failures`` in a row
it is locked out for ``lockout_seconds``. All clients together have the same rules with their own
(smaller delays, higher threshold) numbers, so guessing from many addresses is slowed too. A right
password resets both. An attempt made while delayed or locked is refused *without* checking the
password: the answer, and the time it takes, say nothing about the password.

A client's streak is forgotten once it has been quiet for ``lockout_seconds`` after its delay or
lockout ended; until then each further failure locks it out again. Client addresses are chosen by
the attacker, so the table of clients is bounded (``max_clients``, least recently failing evicted);
evicting is no way around the overall limit.

Every wrong password is logged (WARNING) with the client and the operator's name, cleaned of control
characters and truncated; a lockout once when it starts. The password never is. Refused attempts are
logged at DEBUG only: their rate is the attacker's to choose, the wrong passwords' rate is ours.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from itertools import islice

from telemetry.config import ConfigError

__all__ = ["Attempt", "SignInGuard", "SignInPolicy", "Verdict", "clean_name"]

_log = logging.getLogger("telemetry.panel")

NAME_LIMIT = 64
"""How much of an operator's name goes into a log line (the name is what the client typed)."""


@dataclass(frozen=True, kw_only=True)
class SignInPolicy:
    """The guard's numbers; defaults: ~2.5 min of delays, then 15 min locked out, per client."""

    delay_seconds: float = 1.0
    """The wait after a client's first wrong password; it doubles with each further one."""
    max_delay_seconds: float = 30.0
    max_failures: int = 10
    """Wrong passwords in a row from one client that lock it out."""
    lockout_seconds: float = 900.0
    global_delay_seconds: float = 0.5
    """The wait, for every client, after any wrong password; it doubles likewise."""
    global_max_delay_seconds: float = 5.0
    global_max_failures: int = 100
    """Wrong passwords in a row from all clients together that lock every client out."""
    max_clients: int = 10_000
    """Clients remembered at once."""

    def __post_init__(self) -> None:
        for name in ("delay_seconds", "global_delay_seconds"):
            _within(name, getattr(self, name), 0, 300)
        for name, first in (
            ("max_delay_seconds", "delay_seconds"),
            ("global_max_delay_seconds", "global_delay_seconds"),
        ):
            _within(name, getattr(self, name), 0, 3600)
            if getattr(self, name) < getattr(self, first):
                raise ConfigError(f"{name}: must be >= {first} ({getattr(self, first)})")
        _within("max_failures", self.max_failures, 1, 1000)
        _within("lockout_seconds", self.lockout_seconds, 1, 86_400)
        _within("global_max_failures", self.global_max_failures, 1, 1_000_000)
        if self.global_max_failures < self.max_failures:  # else one client locks everyone out first
            raise ConfigError(f"global_max_failures: must be >= max_failures ({self.max_failures})")
        _within("max_clients", self.max_clients, 1, 10_000_000)


def _within(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # also NaN
        raise ConfigError(f"{name}: must be within [{low}, {high}], got {value}")


class Verdict(Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    """The password was checked and is wrong."""
    THROTTLED = "throttled"
    """Refused without checking the password: delayed or locked out."""


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    retry_after: int = 0
    """Whole seconds until the next attempt is accepted (THROTTLED only)."""


@dataclass
class _Streak:
    """Wrong passwords in a row, and until when the next attempt is refused."""

    failures: int = 0
    blocked_until: float = -math.inf


@dataclass(frozen=True)
class _Rule:
    delay: float
    max_delay: float
    max_failures: int
    lockout: float

    def fail(self, streak: _Streak, now: float) -> bool:
        """Count a failure; True when it starts a lockout."""
        streak.failures += 1
        if streak.failures >= self.max_failures:
            streak.blocked_until = now + self.lockout
            return True
        # The exponent is capped so that a large max_failures cannot overflow the float.
        wait = self.delay * 2.0 ** min(streak.failures - 1, 62)
        streak.blocked_until = now + min(wait, self.max_delay)
        return False

    def stale(self, streak: _Streak, now: float) -> bool:
        return now >= streak.blocked_until + self.lockout


class SignInGuard:
    """Thread-safe; one per panel process, shared by every session."""

    def __init__(
        self, policy: SignInPolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy = policy or SignInPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._client_rule = _Rule(
            policy.delay_seconds, policy.max_delay_seconds, policy.max_failures, policy.lockout_seconds
        )
        self._overall_rule = _Rule(
            policy.global_delay_seconds,
            policy.global_max_delay_seconds,
            policy.global_max_failures,
            policy.lockout_seconds,
        )
        self._clients: OrderedDict[str, _Streak] = OrderedDict()  # least recently failing first
        self._overall = _Streak()

    @property
    def remembered_clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def attempt(self, client: str, operator: str, check: Callable[[], bool]) -> Attempt:
        """Call ``check`` (the password comparison) only if ``client`` may try now, and count it.

        ``check`` runs under the guard's lock, so that concurrent attempts cannot slip in between
        the decision and the count: it must be quick (a constant-time comparison is).
        """
        with self._lock:
            now = self._clock()
            self._forget(now)
            streak = self._clients.get(client)
            if streak is not None and self._client_rule.stale(streak, now):
                del self._clients[client]
                streak = None
            wait = max(self._overall.blocked_until, streak.blocked_until if streak else -math.inf) - now
            if wait > 0:
                _log.debug("panel sign-in: attempt from %s refused for %.1f s more", client, wait)
                return Attempt(Verdict.THROTTLED, retry_after=max(1, math.ceil(wait)))
            if check():
                self._clients.pop(client, None)
                self._overall = _Streak()
                _log.info("panel sign-in: operator %r signed in from %s", clean_name(operator), client)
                return Attempt(Verdict.ACCEPTED)
            self._fail(client, clean_name(operator), streak or _Streak(), now)
            return Attempt(Verdict.WRONG)

    def _fail(self, client: str, operator: str, streak: _Streak, now: float) -> None:
        client_locked = self._client_rule.fail(streak, now)
        self._clients[client] = streak
        self._clients.move_to_end(client)
        while len(self._clients) > self.policy.max_clients:
            self._clients.popitem(last=False)
        overall_locked = self._overall_rule.fail(self._overall, now)
        _log.warning(
            "panel sign-in refused: wrong password for operator %r from %s (%d in a row; %d overall)",
            operator,
            client,
            streak.failures,
            self._overall.failures,
        )
        if client_locked:
            _log.warning(
                "panel sign-in: client %s locked out for %.0f s after %d wrong passwords in a row",
                client,
                self.policy.lockout_seconds,
                streak.failures,
            )
        if overall_locked:
            _log.warning(
                "panel sign-in: every client locked out for %.0f s after %d wrong passwords in a row",
                self.policy.lockout_seconds,
                self._overall.failures,
            )

    def _forget(self, now: float) -> None:
        """Drop the streaks that have gone quiet (memory only: a stale streak counts as none)."""
        while self._clients:
            client, streak = next(iter(self._clients.items()))
            if not self._client_rule.stale(streak, now):
                break
            del self._clients[client]
        if self._overall.failures and self._overall_rule.stale(self._overall, now):
            self._overall = _Streak()


def clean_name(name: str) -> str:
    """``name`` fit for a log line: no control or format characters (no forged lines), bounded."""
    kept = "".join(
        islice((c for c in name if unicodedata.category(c) not in _UNPRINTABLE), NAME_LIMIT + 1)
    )
    return kept if len(kept) <= NAME_LIMIT else kept[:NAME_LIMIT] + "…"


# Control, format (bidi overrides), surrogate and private-use characters, and the line and paragraph
# separators some log viewers break lines at.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
