"""What the panel's control plane tests share: a downstream's name, how soon a change must reach
the instances, how an instance is started, and a rules key's value as stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import telemetry
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient

PAYMENT = "demoshop.v1.Payment"
APPLY_WITHIN = 5.0  # seconds; the watch is push-based, this is only a ceiling for slow CI

StartInstance = Callable[..., telemetry.Telemetry]


def stored(client: EtcdClient, service: str, key: str) -> Any:
    kv = client.get(rules_key(service, key))
    return None if kv is None else json.loads(kv.value)
