"""A live-rules status lives under its instance's lease: a killed instance's status goes with it,
so a panel counting statuses counts live instances only (real etcd, a real process killed -9)."""

from __future__ import annotations

import subprocess
import sys
import time

from helpers import wait_until

from telemetry.control.live_rules import read_statuses
from telemetry.discovery.etcd import EtcdClient
from telemetry.testing.etcd_server import EtcdServer

INSTANCE = """
import sys, time
from telemetry.control.live_rules import LiveRules
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.governance import Governance

client = EtcdClient(EtcdConfig(endpoints=(sys.argv[1],), timeout=1.0))
live = LiveRules(client, Governance(), service="shop", instance_id=sys.argv[2], status_ttl=2)
live.start()
assert live.wait_ready(10)
print("ready", flush=True)
time.sleep(60)
"""


def start_instance(etcd: EtcdServer, instance_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", INSTANCE, etcd.endpoint, instance_id],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_killed_instances_status_expires_with_its_lease(etcd: EtcdServer, client: EtcdClient) -> None:
    survivor, doomed = start_instance(etcd, "survivor"), start_instance(etcd, "doomed")
    try:
        assert set(read_statuses(client, "shop")) == {"survivor", "doomed"}
        killed_at = time.monotonic()
        doomed.kill()  # SIGKILL: no clean-up runs, only the lease can remove its status
        doomed.wait(5)
        wait_until(lambda: set(read_statuses(client, "shop")) == {"survivor"}, timeout=10,
                   message="the killed instance's status gone")  # fmt: skip
        # Gone within the TTL (plus etcd's expiry tick); the survivor, started more than a TTL
        # ago, is still there: its lease is refreshed.
        assert time.monotonic() - killed_at < 2 + 2
    finally:
        for proc in (survivor, doomed):
            proc.kill()
            proc.wait(5)
