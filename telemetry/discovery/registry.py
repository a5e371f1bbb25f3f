"""Register this instance in etcd, under a lease, and keep it there through etcd outages.

:class:`Registration` writes ``/services/<name>/<instance-id>`` (an :class:`Instance` as JSON)
attached to a lease with a TTL, then refreshes the lease every TTL/3 from its own thread
(etcd-sdk-python has no background keepalive: :class:`~telemetry.discovery.leased.LeasedKey`
does it). If the lease is lost (etcd restarted with its data
wiped, or unreachable for longer than the TTL) the next refresh finds it gone and the instance
registers again; while etcd is unreachable it retries with backoff, so a service started during an
outage serves anyway and appears once etcd is back. ``deregister()`` revokes the lease, which
deletes the key at once, so clients stop sending before the server stops taking calls.
"""

from __future__ import annotations

import logging

from telemetry.discovery.etcd import EtcdClient
from telemetry.discovery.instance import Instance
from telemetry.discovery.leased import LeasedKey

__all__ = ["Registration"]

_log = logging.getLogger("telemetry.discovery")


class Registration:
    def __init__(self, client: EtcdClient, instance: Instance, *, ttl: int = 5) -> None:
        self.instance = instance
        self.ttl = ttl
        self._key = LeasedKey(
            client, instance.key, instance.to_json(), ttl=ttl,
            thread_name="telemetry-registration", on_written=self._registered_log,
        )  # fmt: skip

    @property
    def registered(self) -> bool:
        """The key is believed to be in etcd (last write or refresh succeeded)."""
        return self._key.written

    def wait_registered(self, timeout: float) -> bool:
        return self._key.wait_written(timeout)

    def start(self) -> Registration:
        self._key.start()
        return self

    def _registered_log(self) -> None:
        _log.info(
            "registered %s at %s (lease ttl %ss)", self.instance.key, self.instance.address, self.ttl
        )

    def deregister(self, timeout: float = 2.0) -> None:
        """Stop refreshing and remove the key now (best effort: without etcd, the TTL does it)."""
        self._key.stop(timeout)
