"""One registered instance of a service, as stored in etcd under ``/services/<name>/<instance-id>``.

The value is JSON (``{"address": "10.0.0.5:50051", "weight": 100, "zone": "a", "group": "canary",
"version": "1.4.2", "metadata": {...}}``); :meth:`Instance.from_json` validates it, so a malformed
entry written by hand is skipped with a message naming the field instead of breaking discovery.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telemetry.config import ConfigError

__all__ = ["SERVICES_PREFIX", "Instance", "instance_key", "parse_registrations"]

SERVICES_PREFIX = "/services/"
MAX_WEIGHT = 10_000


def instance_key(service: str, instance_id: str) -> str:
    return f"{SERVICES_PREFIX}{service}/{instance_id}"


@dataclass(frozen=True, kw_only=True)
class Instance:
    service: str
    id: str
    address: str
    """``host:port`` the instance serves gRPC on."""
    weight: int = 100
    zone: str = ""
    group: str = ""
    """Routing group, e.g. "canary"; balancers can select by it."""
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("service", "id", "address"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or ("/" in value and name != "address"):
                raise ConfigError(f"instance.{name}: must be a non-empty string without '/'")
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"instance.address: must be host:port, got {self.address!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise ConfigError(f"instance.weight: must be an integer, got {self.weight!r}")
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise ConfigError(f"instance.weight: must be between 0 and {MAX_WEIGHT}")
        for name in ("zone", "group", "version"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"instance.{name}: must be a string")
        if not isinstance(self.metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()
        ):
            raise ConfigError("instance.metadata: must map strings to strings")

    @property
    def key(self) -> str:
        return instance_key(self.service, self.id)

    def to_json(self) -> str:
        return json.dumps(
            {
                "address": self.address,
                "weight": self.weight,
                "zone": self.zone,
                "group": self.group,
                "version": self.version,
                "metadata": dict(self.metadata),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, service: str, instance_id: str, text: str | bytes) -> Instance:
        """Parse a registry value; :class:`ConfigError` names the bad field."""
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"instance {service}/{instance_id}: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"instance {service}/{instance_id}: must be a JSON object")
        unknown = set(data) - {"address", "weight", "zone", "group", "version", "metadata"}
        if unknown:
            raise ConfigError(f"instance.{sorted(unknown)[0]}: unknown field")
        return cls(service=service, id=instance_id, **data)


def parse_registrations(
    items: Iterable[tuple[str, str | bytes]], log: logging.Logger
) -> dict[str, list[Instance]]:
    """Registry ``(key, value)`` pairs under :data:`SERVICES_PREFIX` -> instances by service, sorted
    by id. A malformed entry is skipped with a warning on ``log`` naming the key and the field."""
    found: dict[str, list[Instance]] = {}
    for key, value in items:
        service, _, instance_id = key[len(SERVICES_PREFIX) :].partition("/")
        try:
            instance = Instance.from_json(service, instance_id, value)
        except ConfigError as exc:
            log.warning("skipping registration %s: %s", key, exc)
            continue
        found.setdefault(service, []).append(instance)
    for instances in found.values():
        instances.sort(key=lambda i: i.id)
    return found
