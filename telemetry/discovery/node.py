"""Everything one process does with etcd, behind one object: ``Telemetry(..., etcd=...)`` owns it.

* the directory of every service's instances (a watch cache, see :mod:`.directory`);
* this process's own registration, once :meth:`Discovery.register` is called;
* live governance rules and fault-injection knobs for this service (see
  :mod:`telemetry.control.live_rules`), with this instance's status written back.

Nothing here blocks on etcd: a process starts, serves and calls known peers while etcd is down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.discovery.instance import Instance
from telemetry.discovery.registry import Registration

__all__ = ["Discovery", "default_instance_id", "etcd_config"]


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def etcd_config(value: EtcdConfig | str | Sequence[str]) -> EtcdConfig:
    """``EtcdConfig``, or endpoints ("h1:2379,h2:2379" or a list) with the rest from ETCD_* env."""
    if isinstance(value, EtcdConfig):
        return value
    endpoints = value.split(",") if isinstance(value, str) else value
    return EtcdConfig.from_env(endpoints=tuple(e.strip() for e in endpoints if e.strip()))


class Discovery:
    def __init__(
        self,
        config: EtcdConfig,
        *,
        service: str,
        instance_id: str | None = None,
        cache_file: str | Path | None = None,
    ) -> None:
        self.service = service
        self.instance_id = instance_id or default_instance_id()
        self.client = EtcdClient(config)
        self.directory = ServiceDirectory(self.client, cache_file=cache_file).start()
        self.registration: Registration | None = None
        self._closers: list[Any] = []

    def register(
        self,
        address: str,
        *,
        weight: int = 100,
        zone: str = "",
        group: str = "",
        version: str = "",
        metadata: Mapping[str, str] | None = None,
        ttl: int = 5,
    ) -> Registration:
        """Register this instance (in the background: returns at once, even with etcd down)."""
        if self.registration is not None:
            raise RuntimeError(f"{self.service}/{self.instance_id} is already registered")
        instance = Instance(
            service=self.service, id=self.instance_id, address=address, weight=weight, zone=zone,
            group=group, version=version, metadata=dict(metadata or {}),
        )  # fmt: skip
        self.registration = Registration(self.client, instance, ttl=ttl).start()
        return self.registration

    def deregister(self) -> None:
        registration, self.registration = self.registration, None
        if registration is not None:
            registration.deregister()

    def instance_count(self) -> int:
        """Live instances of this service in the registry (at least 1: this one)."""
        return max(1, len(self.directory.instances(self.service)))

    def on_close(self, closer: Any) -> None:
        """Run ``closer()`` at :meth:`close`, before etcd is let go (live rules use it)."""
        self._closers.append(closer)

    def close(self) -> None:
        self.deregister()
        for closer in reversed(self._closers):
            closer()
        self.directory.stop()
        self.client.close()
