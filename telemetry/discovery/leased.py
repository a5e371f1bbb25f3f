"""One etcd key kept alive under its own lease, through etcd outages and wipes.

:class:`LeasedKey` writes a key attached to a lease with a TTL, then refreshes the lease every
TTL/3 from its own thread (etcd-sdk-python has no background keepalive). When the process dies
(``kill -9``) nobody refreshes and etcd deletes the key within the TTL: what the key says is
true only while its owner lives. If the lease is lost (etcd restarted with its data wiped, or
unreachable for longer than the TTL) the next refresh finds it gone and the key is written again;
while etcd is unreachable it retries with backoff. ``set`` changes the value at once (and again
from the thread if that write failed); ``stop`` revokes the lease, which deletes the key.

Registrations (``/services/...``) and live-rules statuses (``/governance-status/...``) use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from telemetry.discovery.backoff import Backoff
from telemetry.discovery.etcd import EtcdClient, EtcdClosedError, EtcdError

__all__ = ["LeasedKey"]

_log = logging.getLogger("telemetry.discovery")


class LeasedKey:
    def __init__(
        self,
        client: EtcdClient,
        key: str,
        value: str,
        *,
        ttl: int = 5,
        thread_name: str = "telemetry-lease",
        on_written: Callable[[], None] | None = None,
    ) -> None:
        """``on_written`` runs after each write under a new lease (a registration logs it)."""
        if ttl < 2:
            raise ValueError(f"ttl must be >= 2 seconds, got {ttl!r}")
        self._client = client
        self.key = key
        self.ttl = ttl
        self._value = value
        self._dirty = False  # a set() whose write failed: the thread writes it
        self._lease = 0
        self._lock = threading.Lock()  # orders writes: an older value never lands after a newer
        self._stop = threading.Event()
        self._written = threading.Event()
        self._thread_name = thread_name
        self._on_written = on_written
        self._thread: threading.Thread | None = None

    @property
    def written(self) -> bool:
        """The key is believed to be in etcd (last write or refresh succeeded)."""
        return self._written.is_set()

    def wait_written(self, timeout: float) -> bool:
        return self._written.wait(timeout)

    def start(self, *, write_now: bool = False) -> LeasedKey:
        """Keep the key alive from a thread; ``write_now``: write it first from the caller's
        thread (a reader may look right after), leaving it to the thread if etcd fails."""
        if write_now and self._thread is None:
            try:
                self._write_new()
            except EtcdError as exc:
                _log.debug("first write of %s failed, retried: %s", self.key, exc)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()
        return self

    def set(self, value: str) -> None:
        """Write ``value`` now under the current lease (never raises: a failed write is retried
        by the thread, and the lease's loss or renewal rewrites it anyway)."""
        with self._lock:
            self._value = value
            lease = self._lease
            if not lease:
                self._dirty = True  # the thread writes it with the lease it grants
                return
            try:
                self._client.put(self.key, value, lease=lease)
                self._dirty = False
            except EtcdError as exc:
                self._dirty = True
                _log.debug("write of %s failed, retried: %s", self.key, exc)

    def _run(self) -> None:
        refresh_every = self.ttl / 3
        backoff = Backoff(0.05, max(0.05, refresh_every))
        while not self._stop.is_set():
            try:
                if not self._lease or self._client.refresh_lease(self._lease) <= 0:
                    self._write_new()
                elif self._dirty:
                    self.set(self._value)
                backoff.reset()
                self._stop.wait(refresh_every)
            except EtcdClosedError:
                return  # the owner let etcd go: nothing left to keep alive
            except EtcdError as exc:
                _log.debug("lease of %s: %s", self.key, exc)
                self._stop.wait(backoff.next())
            except Exception:  # never let the keep-alive die silently
                if self._client.closed:
                    return
                _log.exception("lease of %s: unexpected error", self.key)
                self._stop.wait(refresh_every)

    def _write_new(self) -> None:
        self._written.clear()
        lease = self._client.grant_lease(self.ttl)
        with self._lock:
            self._client.put(self.key, self._value, lease=lease)
            self._lease = lease
            self._dirty = False
        self._written.set()
        if self._on_written is not None:
            self._on_written()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop refreshing and remove the key now (best effort: without etcd, the TTL does it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            lease, self._lease = self._lease, 0
        self._written.clear()
        if lease:
            try:
                self._client.revoke_lease(lease)
            except EtcdError as exc:
                _log.warning("removing %s: %s (the lease expires by itself)", self.key, exc)
