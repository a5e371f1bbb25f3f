"""Mirror an etcd prefix into memory and keep it current, whatever happens to etcd.

:class:`PrefixWatcher` reads the prefix once, then watches it from the next revision. When the
stream fails (etcd restarted, network cut) it reconnects with backoff and *resumes from the last
revision it saw*, so no change is missed; when that is impossible it reads the prefix afresh and
reports the difference. Meanwhile the last known state stays in use: a registry outage never
empties the cache. Listeners get the whole state after every change batch, outside any lock.

Why the history is gone decides what the fresh read means:

- *Compaction* on a healthy etcd (the revision we resume from was compacted, the store went on):
  the read is the truth and replaces the state at once; a key deleted meanwhile is gone.
- *Lost history* (etcd came back with a different cluster id or a lower revision than we saw: its
  data was wiped, or it is another cluster): the read is etcd *before* its clients noticed. Leased
  keys (instance registrations) come back only when each owner finds its lease gone, up to a TTL
  later, so replacing the state would empty it for that long. Entries known before and missing
  from the read are instead *retained* for ``retain_after_wipe`` seconds (see :class:`Retention`;
  every entry, as the adapter does not report which keys had a lease):
  a put or a later read replaces one at once, a delete event removes it at once, and when the grace
  ends whatever has not come back is dropped and listeners are told. A timer ends the watch stream
  at that moment, so this needs no request; while etcd is unreachable nothing is dropped and the
  grace restarts when it answers again (the owners could not re-register meanwhile). A wiped etcd
  whose revision overtook ours before the watch reconnected looks intact: that loss goes unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from telemetry.discovery.backoff import Backoff
from telemetry.discovery.etcd import EtcdClient, EtcdClosedError, EtcdError, WatchStream

__all__ = ["GraceOutcome", "PrefixWatcher", "Retention"]

_log = logging.getLogger("telemetry.discovery")

Listener = Callable[[Mapping[str, bytes], int], None]
"""Called with (key -> value for every key under the prefix, revision)."""


class GraceOutcome(NamedTuple):
    """How a grace after lost history ended."""

    returned: int
    """Retained entries that etcd held again (re-registered)."""
    dropped: tuple[str, ...]
    """Retained keys that never came back: remove them from the state."""
    deleted: int
    """Retained entries removed by a delete event during the grace."""


class Retention:
    """Which entries are kept after etcd lost its history, and until when. Pure bookkeeping with an
    injected clock: the watcher holds the values and calls this under its lock, from one thread."""

    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        """``grace``: seconds to keep a missing entry; 0 disables retention."""
        if not grace >= 0:
            raise ValueError(f"retention grace must be >= 0 seconds, got {grace!r}")
        self.grace = grace
        self._clock = clock
        self._keys: set[str] = set()
        self._until: float | None = None  # None: no grace running
        self._returned = 0
        self._deleted = 0

    @property
    def retained(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def deadline(self) -> float | None:
        """When the running grace ends (clock time), None when none is running."""
        return self._until

    def remaining(self) -> float | None:
        return None if self._until is None else max(0.0, self._until - self._clock())

    def reread(
        self, before: Mapping[str, bytes], fresh: Mapping[str, bytes], *, lost: bool
    ) -> dict[str, bytes]:
        """The prefix was read afresh (``fresh``) while the state was ``before``; returns the
        entries to keep beside ``fresh``. ``lost``: etcd lost its history, so every entry of
        ``before`` it lacks is kept for a new grace (a second loss restarts it: the owners must
        register again). Otherwise the read is the truth, except for entries already retained."""
        back = self._keys & fresh.keys()
        self._returned += len(back)
        self._keys -= back
        if not (lost and self.grace > 0):
            return {k: before[k] for k in self._keys if k in before}
        kept = {k: v for k, v in before.items() if k not in fresh}
        self._keys = set(kept)
        if kept:
            if self._until is None:
                self._returned = self._deleted = 0
            self._until = self._clock() + self.grace
        return kept

    def seen(self, key: str, *, present: bool) -> None:
        """A watch event for ``key``: etcd's word replaces a retained entry."""
        if key in self._keys:
            self._keys.discard(key)
            if present:
                self._returned += 1
            else:
                self._deleted += 1

    def hold(self) -> None:
        """etcd answers again after an outage: owners get a whole grace from now to re-register."""
        if self._until is not None:
            self._until = max(self._until, self._clock() + self.grace)

    def settle(self) -> GraceOutcome | None:
        """End the grace when it is over or nothing is retained any more; None while it runs (or
        when none runs)."""
        if self._until is None or (self._keys and self._clock() < self._until):
            return None
        outcome = GraceOutcome(self._returned, tuple(sorted(self._keys)), self._deleted)
        self._keys = set()
        self._until = None
        return outcome


class PrefixWatcher:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        *,
        initial: Mapping[str, bytes] | None = None,
        backoff: tuple[float, float] = (0.05, 1.0),
        retain_after_wipe: float = 10.0,
    ) -> None:
        """``initial``: a state to serve until etcd answers (e.g. read from a cache file).

        ``retain_after_wipe``: seconds to keep entries that etcd lost with its history (wiped, or
        another cluster) so their owners can register again; 0 replaces the state at once. It
        must exceed the lease TTL of those entries plus their time to notice (the default 10 s is
        twice registration's default 5 s TTL: an owner refreshes every TTL/3, so it is back
        within about one TTL once etcd answers); too long only keeps a dead entry longer."""
        self._client = client
        self.prefix = prefix
        self._state: dict[str, bytes] = dict(initial or {})
        self._revision = 0
        self._cluster = 0
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._stream: WatchStream | None = None
        self._backoff = Backoff(*backoff)  # a bad pair fails here, not in the thread
        self._retention = Retention(retain_after_wipe)  # likewise a negative grace
        self._timer: threading.Timer | None = None  # ends the stream when the grace is over
        self._timer_deadline: float | None = None
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    # -- read side ----------------------------------------------------------------------------

    @property
    def state(self) -> Mapping[str, bytes]:
        with self._lock:
            return MappingProxyType(dict(self._state))

    @property
    def revision(self) -> int:
        """The etcd revision the state reflects (0 until the first read)."""
        return self._revision

    @property
    def retained(self) -> frozenset[str]:
        """Keys served although etcd lost them, while their owners have time to re-register."""
        with self._lock:
            return self._retention.retained

    def wait_synced(self, timeout: float) -> bool:
        """True once the state has been read from etcd at least once."""
        return self._synced.wait(timeout)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> PrefixWatcher:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"telemetry-watch{self.prefix}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        if self._thread is not None:
            self._thread.join(timeout)
        timer = self._timer
        if timer is not None:
            timer.cancel()

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff
        need_read = True
        lost = False  # the next read follows lost history
        interrupted = False  # etcd failed since the stream last ran
        while not self._stop.is_set():
            try:
                if need_read:
                    self._read_all(lost=lost)
                    need_read = lost = False
                else:
                    lost = need_read = self._history_lost()
                    if need_read:
                        continue
                if interrupted:
                    interrupted = False
                    with self._lock:
                        self._retention.hold()
                backoff.reset()
                self._settle()
                need_read = self._follow()
            except EtcdClosedError:
                return
            except EtcdError as exc:
                interrupted = True
                _log.debug("watch on %s interrupted: %s", self.prefix, exc)
                self._stop.wait(backoff.next())
            except Exception:  # a listener bug must not end discovery
                if self._client.closed:
                    return
                _log.exception("watch on %s: unexpected error", self.prefix)
                self._stop.wait(backoff.next())

    def _read_all(self, *, lost: bool) -> None:
        read = self._client.get_prefix(self.prefix)
        fresh = {kv.key: kv.value for kv in read.items}
        with self._lock:
            # The read itself may show the loss: a compaction reported by an etcd whose revision
            # went backwards is a wipe, not a compaction.
            lost = lost or (
                self._revision > 0
                and (read.cluster_id != self._cluster or read.revision < self._revision)
            )
            kept = self._retention.reread(self._state, fresh, lost=lost)
            self._state = {**fresh, **kept}
            self._revision = read.revision
            self._cluster = read.cluster_id
        if lost and kept:
            _log.warning(
                "etcd lost its data: keeping %d known entries under %s for %gs until they re-register",
                len(kept), self.prefix, self._retention.grace,
            )  # fmt: skip
        self._synced.set()
        self._notify()  # also when nothing changed: listeners learn they are in sync

    def _history_lost(self) -> bool:
        """After a reconnect: can the watch resume from our revision? Asked first of the member
        itself, which answers while its cluster elects a new leader (after the old one was lost);
        only a member that looks behind us is asked again through the leader."""
        cluster, revision = self._client.revision(self.prefix, serializable=True)
        if cluster == self._cluster and revision >= self._revision:
            return False
        cluster, revision = self._client.revision(self.prefix)
        return cluster != self._cluster or revision < self._revision

    def _follow(self) -> bool:
        """Watch until the stream fails (raises), history is gone (returns True: re-read) or the
        grace timer ends it (returns False)."""
        stream = self._client.watch_prefix(self.prefix, self._revision + 1)
        self._stream = stream
        try:
            if self._stop.is_set() or self._woken.is_set():
                return False
            for batch in stream:
                if batch.compacted:
                    _log.info(
                        "watch on %s: revisions before %d were compacted, re-reading",
                        self.prefix, batch.compacted,
                    )  # fmt: skip
                    return True
                if not batch.changes:
                    # Created/progress responses carry the store revision, but events from our
                    # start revision may still follow: only events move our revision.
                    continue
                with self._lock:
                    for key, value, mod_revision in batch.changes:
                        if value is None:
                            self._state.pop(key, None)
                        else:
                            self._state[key] = value
                        self._retention.seen(key, present=value is not None)
                        self._revision = max(self._revision, mod_revision)
                self._notify()
                self._settle()  # the last retained entry may be back: the grace ends early
            return False
        finally:
            self._stream = None
            stream.cancel()

    # -- the grace after lost history -----------------------------------------------------------

    def _settle(self) -> None:
        """End the grace if it is over (drop what never came back) and keep the wake-up timer set
        for the running one. Only called while etcd answers: an outage drops nothing."""
        with self._lock:
            outcome = self._retention.settle()
            if outcome is not None:
                for key in outcome.dropped:
                    self._state.pop(key, None)
            deadline = self._retention.deadline
            remaining = self._retention.remaining()
        if outcome is not None:
            _log.info(
                "etcd grace over for %s: %d re-registered, %d dropped%s",
                self.prefix, outcome.returned, len(outcome.dropped) + outcome.deleted,
                f" ({', '.join(outcome.dropped[:10])})" if outcome.dropped else "",
            )  # fmt: skip
            if outcome.dropped:
                self._notify()
        if deadline != self._timer_deadline or self._woken.is_set():
            self._arm(deadline, remaining)

    def _arm(self, deadline: float | None, remaining: float | None) -> None:
        """One timer per grace (not per key), from the watch thread only."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._woken.clear()
        self._timer_deadline = deadline
        if remaining is not None and not self._stop.is_set():
            self._timer = threading.Timer(remaining, self._wake)
            self._timer.name = f"telemetry-watch-grace{self.prefix}"
            self._timer.daemon = True
            self._timer.start()

    def _wake(self) -> None:
        """Timer thread: end the stream so the watch loop settles the grace."""
        self._woken.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def _notify(self) -> None:
        with self._lock:
            state = MappingProxyType(dict(self._state))
            revision = self._revision
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(state, revision)
            except Exception:
                _log.exception("listener of %s failed", self.prefix)
