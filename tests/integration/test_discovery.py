"""Registration and discovery against a real etcd (Debian etcd-server on a free loopback port)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import etcd_write_succeeds, wait_until

from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdError
from telemetry.discovery.instance import Instance
from telemetry.discovery.registry import Registration
from telemetry.testing.etcd_server import EtcdServer

TTL = 2


@pytest.fixture
def directory(client: EtcdClient) -> Iterator[ServiceDirectory]:
    d = ServiceDirectory(client).start()
    assert d.wait_synced(5)
    yield d
    d.stop()


def instance(name: str = "order", iid: str = "a", port: int = 50001, **fields: object) -> Instance:
    return Instance(service=name, id=iid, address=f"127.0.0.1:{port}", **fields)  # type: ignore[arg-type]


def ids(directory: ServiceDirectory, service: str = "order") -> set[str]:
    return {i.id for i in directory.instances(service)}


def test_register_and_deregister(client: EtcdClient, directory: ServiceDirectory) -> None:
    registration = Registration(client, instance(weight=7, group="canary"), ttl=TTL).start()
    assert registration.wait_registered(5)
    wait_until(lambda: ids(directory) == {"a"}, message="registered instance")
    (seen,) = directory.instances("order")
    assert seen.weight == 7 and seen.group == "canary" and seen.address == "127.0.0.1:50001"
    registration.deregister()
    wait_until(lambda: not ids(directory), message="deregistered instance gone")


def test_malformed_entries_are_skipped(client: EtcdClient, directory: ServiceDirectory) -> None:
    client.put("/services/order/bad", "{not json")
    client.put("/services/order/worse", json.dumps({"address": "nowhere"}))
    client.put("/services/order/good", instance(iid="good").to_json())
    wait_until(lambda: ids(directory) == {"good"}, message="only the valid entry")


def test_killed_instance_disappears_within_ttl_plus_one_second(
    etcd: EtcdServer, directory: ServiceDirectory
) -> None:
    script = (
        "import sys, time\n"
        "from telemetry.discovery.etcd import EtcdClient, EtcdConfig\n"
        "from telemetry.discovery.instance import Instance\n"
        "from telemetry.discovery.registry import Registration\n"
        f"c = EtcdClient(EtcdConfig(endpoints=({etcd.endpoint!r},)))\n"
        "r = Registration(c, Instance(service='order', id='doomed', address='127.0.0.1:5'), "
        f"ttl={TTL}).start()\n"
        "r.wait_registered(10); print('registered', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "registered"
        wait_until(lambda: ids(directory) == {"doomed"}, message="instance registered")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: not ids(directory), timeout=TTL + 1, message="killed instance removed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_known_instances_survive_an_etcd_outage(
    etcd: EtcdServer, client: EtcdClient, directory: ServiceDirectory
) -> None:
    registration = Registration(client, instance(), ttl=TTL).start()
    registration.wait_registered(5)
    wait_until(lambda: ids(directory) == {"a"}, message="registered")
    etcd.stop()
    with pytest.raises(EtcdError):
        client.get("/services/order/a")
    assert ids(directory) == {"a"}  # the cache keeps the last known view
    registration.deregister(timeout=0.5)


def test_instance_started_during_an_outage_registers_when_etcd_returns(
    etcd: EtcdServer, client: EtcdClient, directory: ServiceDirectory
) -> None:
    etcd.stop()
    registration = Registration(client, instance(iid="late"), ttl=TTL).start()
    assert not registration.registered
    etcd.start()
    assert registration.wait_registered(10)
    wait_until(lambda: ids(directory) == {"late"}, message="late instance registered")
    registration.deregister()


def test_instances_re_register_after_etcd_loses_its_data(
    etcd: EtcdServer, client: EtcdClient, directory: ServiceDirectory
) -> None:
    registration = Registration(client, instance(), ttl=TTL).start()
    wait_until(lambda: ids(directory) == {"a"}, message="registered")
    etcd.restart(wipe=True)
    # The wiped cluster has no lease: the next refresh finds it gone and registers again.
    wait_until(lambda: stored(client, "/services/order/a"), timeout=TTL + 3, message="re-registered")
    wait_until(lambda: ids(directory) == {"a"}, message="directory sees it again")
    registration.deregister()


def test_watch_resumes_after_an_etcd_restart_without_missing_a_change(
    etcd: EtcdServer, client: EtcdClient, directory: ServiceDirectory
) -> None:
    client.put("/services/order/one", instance(iid="one").to_json())
    wait_until(lambda: ids(directory) == {"one"}, message="first change")
    etcd.stop()
    etcd.start()
    # Written the moment etcd answers, before the watch has reconnected: must still arrive. (The
    # client's own channel may still be reconnecting on a busy machine: retry the write itself.)
    wait_until(
        lambda: etcd_write_succeeds(
            lambda: client.put("/services/order/two", instance(iid="two", port=50002).to_json())
        ),
        message="etcd taking writes again",
    )
    client.delete("/services/order/one")
    wait_until(lambda: ids(directory) == {"two"}, message="changes after the restart")


def stored(client: EtcdClient, key: str) -> bool:
    """Whether ``key`` is in etcd; False while the client cannot reach it yet (just restarted)."""
    try:
        return client.get(key) is not None
    except EtcdError:
        return False


def test_watch_re_reads_when_etcd_history_is_gone(etcd: EtcdServer, client: EtcdClient) -> None:
    # The five lost with etcd's data stay served for the grace (1 s here), waiting to re-register.
    directory = ServiceDirectory(client, retain_after_wipe=1.0).start()
    for i in range(5):
        client.put(f"/services/order/i{i}", instance(iid=f"i{i}").to_json())
    wait_until(lambda: len(ids(directory)) == 5, message="five instances")
    etcd.restart(wipe=True)  # revision back to 1: resuming from ours would wait forever
    # The test's own client may still be reconnecting to the restarted etcd: retry the write.
    fresh = instance(iid="fresh").to_json()
    wait_until(
        lambda: etcd_write_succeeds(lambda: client.put("/services/order/fresh", fresh)),
        message="etcd taking writes again",
    )
    try:
        wait_until(lambda: ids(directory) == {"fresh"}, message="state re-read after the wipe")
    finally:
        directory.stop()


def test_cache_file_serves_peers_when_etcd_is_down_at_start(
    etcd: EtcdServer, client: EtcdClient, tmp_path: Path
) -> None:
    cache = tmp_path / "peers.json"
    first = ServiceDirectory(client, cache_file=cache).start()
    client.put("/services/order/a", instance().to_json())
    wait_until(lambda: ids(first) == {"a"}, message="registered")
    wait_until(cache.exists, message="cache written")
    first.stop()
    etcd.stop()
    second = ServiceDirectory(client, cache_file=cache).start()  # a restart during the outage
    try:
        assert ids(second) == {"a"}
    finally:
        second.stop()


def test_registration_refreshes_keep_the_key_alive(client: EtcdClient) -> None:
    registration = Registration(client, instance(), ttl=TTL).start()
    assert registration.wait_registered(5)
    # What is tested is the passing of time itself: without its TTL/3 refreshes the key would
    # be gone after one TTL, so outlive two.
    time.sleep(2 * TTL)
    assert client.get("/services/order/a") is not None
    registration.deregister()
    assert client.get("/services/order/a") is None
