"""What the live rules tests share: the Echo service's name, how soon a write must be applied, a
rate limit rule, an etcd client, writes of rule sections, the status each
instance reports under /governance-status/ (and waiting for it), and the server limit in force.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from helpers import wait_until

from telemetry.control import LiveRules, rules_key, status_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.governance import Governance
from telemetry.testing.etcd_server import EtcdServer

ECHO = "telemetry.test.Echo"
APPLY_WITHIN = 2.0  # seconds: the panel's promise is one; the watcher is push-based
LIMIT_50 = {"methods": {"*": {"rate_limit": {"algorithm": "token_bucket", "limit": 50}}}}

StartLive = Callable[..., LiveRules]


def etcd_client(server: EtcdServer) -> EtcdClient:
    return EtcdClient(EtcdConfig(endpoints=(server.endpoint,), timeout=1.0))


def put(client: EtcdClient, service: str, section: str, value: Any) -> int:
    return client.put(rules_key(service, section), json.dumps(value))


def status(client: EtcdClient, service: str, instance_id: str = "a") -> dict[str, Any] | None:
    kv = client.get(status_key(service, instance_id))
    return None if kv is None else json.loads(kv.value)


def wait_status(
    client: EtcdClient, service: str, revision: int, state: str, instance_id: str = "a"
) -> dict[str, Any]:
    """The status reporting ``state`` for ``revision`` or later (status writes bump etcd's
    revision too, so only the revisions ``put`` returned are known exactly)."""
    wait_until(
        lambda: (
            (s := status(client, service, instance_id)) is not None
            and s["revision"] >= revision
            and s["state"] == state
        ),
        APPLY_WITHIN,
        f"status {state} at revision {revision}",
    )
    found = status(client, service, instance_id)
    assert found is not None
    return found


def server_limit(gov: Governance, pattern: str = "*") -> float | None:
    rule = gov.rules.server.methods.get(pattern)
    return None if rule is None or rule.rate_limit is None else rule.rate_limit.limit
