"""Register this instance in etcd, under a lease, and keep it there through etcd outages.

:class:`Registration` writes ``/services/<name>/<instance-id>`` (an :class:`Instance` as JSON)
attached to a lease with a TTL, then refreshes the lease every TTL/3 from its own thread
(etcd-sdk-python has no background keepalive). If the lease is lost (etcd restarted with its data
wiped, or unreachable for longer than the TTL) the next refresh finds it gone and the instance
registers again; while etcd is unreachable it retries with backoff, so a service started during an
outage serves anyway and appears once etcd is back. ``deregister()`` revokes the lease, which
deletes the key at once, so clients stop sending before the server stops taking calls.
"""

from __future__ import annotations

import logging
import threading

from telemetry.discovery.backoff import Backoff
from telemetry.discovery.etcd import EtcdClient, EtcdClosedError, EtcdError
from telemetry.discovery.instance import Instance

__all__ = ["Registration"]

_log = logging.getLogger("telemetry.discovery")


class Registration:
    def __init__(self, client: EtcdClient, instance: Instance, *, ttl: int = 5) -> None:
        if ttl < 2:
            raise ValueError(f"ttl must be >= 2 seconds, got {ttl!r}")
        self._client = client
        self.instance = instance
        self.ttl = ttl
        self._lease = 0
        self._stop = threading.Event()
        self._registered = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def registered(self) -> bool:
        """The key is believed to be in etcd (last write or refresh succeeded)."""
        return self._registered.is_set()

    def wait_registered(self, timeout: float) -> bool:
        return self._registered.wait(timeout)

    def start(self) -> Registration:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telemetry-registration", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        refresh_every = self.ttl / 3
        backoff = Backoff(0.05, max(0.05, refresh_every))
        while not self._stop.is_set():
            try:
                if not self._lease or self._client.refresh_lease(self._lease) <= 0:
                    self._register()
                backoff.reset()
                self._stop.wait(refresh_every)
            except EtcdClosedError:
                return  # the owner let etcd go: nothing left to keep alive
            except EtcdError as exc:
                _log.debug("registration of %s: %s", self.instance.key, exc)
                self._stop.wait(backoff.next())
            except Exception:  # never let registration die silently
                if self._client.closed:
                    return
                _log.exception("registration of %s: unexpected error", self.instance.key)
                self._stop.wait(refresh_every)

    def _register(self) -> None:
        self._registered.clear()
        lease = self._client.grant_lease(self.ttl)
        self._client.put(self.instance.key, self.instance.to_json(), lease=lease)
        self._lease = lease
        self._registered.set()
        _log.info(
            "registered %s at %s (lease ttl %ss)", self.instance.key, self.instance.address, self.ttl
        )

    def deregister(self, timeout: float = 2.0) -> None:
        """Stop refreshing and remove the key now (best effort: without etcd, the TTL does it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        lease, self._lease = self._lease, 0
        self._registered.clear()
        if lease:
            try:
                self._client.revoke_lease(lease)
            except EtcdError as exc:
                _log.warning("deregister %s: %s (the lease expires by itself)", self.instance.key, exc)
