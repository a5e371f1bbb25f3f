"""Mirror an etcd prefix into memory and keep it current, whatever happens to etcd.

:class:`PrefixWatcher` reads the prefix once, then watches it from the next revision. When the
stream fails (etcd restarted, network cut) it reconnects with backoff and *resumes from the last
revision it saw*, so no change is missed; when that is impossible (the revision was compacted, or
etcd came back with less history than we saw: its data was wiped) it reads the prefix afresh and
reports the difference. Meanwhile the last known state stays in use: a registry outage never
empties the cache. Listeners get the whole state after every change batch, outside any lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

from telemetry.discovery.backoff import Backoff
from telemetry.discovery.etcd import EtcdClient, EtcdClosedError, EtcdError, WatchStream

__all__ = ["PrefixWatcher"]

_log = logging.getLogger("telemetry.discovery")

Listener = Callable[[Mapping[str, bytes], int], None]
"""Called with (key -> value for every key under the prefix, revision)."""


class PrefixWatcher:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        *,
        initial: Mapping[str, bytes] | None = None,
        backoff: tuple[float, float] = (0.05, 1.0),
    ) -> None:
        """``initial``: a state to serve until etcd answers (e.g. read from a cache file)."""
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

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff
        need_read = True
        while not self._stop.is_set():
            try:
                if need_read:
                    self._read_all()
                    need_read = False
                else:
                    need_read = self._history_lost()
                    if need_read:
                        continue
                backoff.reset()
                need_read = self._follow()
            except EtcdClosedError:
                return
            except EtcdError as exc:
                _log.debug("watch on %s interrupted: %s", self.prefix, exc)
                self._stop.wait(backoff.next())
            except Exception:  # a listener bug must not end discovery
                if self._client.closed:
                    return
                _log.exception("watch on %s: unexpected error", self.prefix)
                self._stop.wait(backoff.next())

    def _read_all(self) -> None:
        read = self._client.get_prefix(self.prefix)
        with self._lock:
            self._state = {kv.key: kv.value for kv in read.items}
            self._revision = read.revision
            self._cluster = read.cluster_id
        self._synced.set()
        self._notify()  # also when nothing changed: listeners learn they are in sync

    def _history_lost(self) -> bool:
        """After a reconnect: can the watch resume from our revision?"""
        cluster, revision = self._client.revision(self.prefix)
        return cluster != self._cluster or revision < self._revision

    def _follow(self) -> bool:
        """Watch until the stream fails (raises) or history is gone (returns True: re-read)."""
        stream = self._client.watch_prefix(self.prefix, self._revision + 1)
        self._stream = stream
        try:
            if self._stop.is_set():
                return False
            for batch in stream:
                if batch.compacted:
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
                        self._revision = max(self._revision, mod_revision)
                self._notify()
            return False
        finally:
            self._stream = None
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
