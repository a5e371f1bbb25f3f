"""Live load control on a real etcd: a loadgen-like open-loop schedule (the one the load generator
runs) picks up a written setting within 1 s, keeps the last good one on garbage, falls back to its
configured settings when the key is deleted, and keeps what it has while etcd is down."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from functools import partial

import pytest
from helpers import etcd_write_succeeds

from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.live import LOAD_SETTINGS_KEY, LiveLoad, read_load_status
from telemetry.load.schedule import LoadPlan, run_open_loop
from telemetry.load.settings import LoadSettings
from telemetry.testing._poll import poll
from telemetry.testing.etcd_server import EtcdServer

CONFIGURED = LoadSettings(rate=20.0, mix={"get_stock": 1.0})


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,), timeout=1.0))
    client.delete_prefix("/loadgen/")
    yield client
    client.close()


class Scheduler:
    """The load generator's schedule thread, counting what it sends (time of each request)."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.sent: list[float] = []
        self._thread = threading.Thread(target=run_open_loop, args=(plan, self._send), daemon=True)
        self._thread.start()

    def _send(self) -> None:
        self.sent.append(time.monotonic())

    def rate_over(self, seconds: float) -> float:
        start = len(self.sent)
        time.sleep(seconds)
        return (len(self.sent) - start) / seconds

    def stop(self) -> None:
        self.plan.close()
        self._thread.join(2)


@pytest.fixture
def running(client: EtcdClient) -> Iterator[tuple[Scheduler, LiveLoad]]:
    plan = LoadPlan(CONFIGURED)
    scheduler = Scheduler(plan)
    live = LiveLoad(client, plan, report_every=0.1).start()
    assert live.wait_ready(5)
    yield scheduler, live
    live.stop()
    scheduler.stop()


def status(client: EtcdClient) -> dict[str, object]:
    return read_load_status(client) or {}


def at_revision(revision: int, status: dict[str, object]) -> bool:
    return status.get("revision") == revision


def test_a_written_rate_is_offered_within_a_second(
    client: EtcdClient, running: tuple[Scheduler, LiveLoad]
) -> None:
    scheduler, _ = running
    assert status(client)["state"] == "configured"
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: r == 20.0, 2, "the configured rate")

    written = time.monotonic()
    revision = client.put(LOAD_SETTINGS_KEY, json.dumps({"rate": 100}))
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: r == 100.0, 1.0, "rate 100 within 1 s")
    took = time.monotonic() - written
    first = next(t for t in scheduler.sent if t >= written)
    assert first - written < 1.0
    poll(lambda: status(client), lambda s: s.get("revision") == revision, 1.0, "the status")
    assert status(client)["state"] == "applied" and status(client)["offered_rate"] == 100.0
    assert 70 <= scheduler.rate_over(1.0) <= 130, "the schedule sends at the new rate"
    print(f"setting to offered rate: {took * 1000:.0f} ms")


def test_garbage_keeps_the_last_good_settings_and_says_why(
    client: EtcdClient, running: tuple[Scheduler, LiveLoad]
) -> None:
    scheduler, live = running
    client.put(LOAD_SETTINGS_KEY, json.dumps({"rate": 50}))
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: r == 50.0, 1.0, "rate 50")
    for garbage in ('{"rate": 1e308}', "not json", "[" * 10_000, '{"mix": {"rm -rf": 1}}'):
        revision = client.put(LOAD_SETTINGS_KEY, garbage)
        poll(partial(status, client), partial(at_revision, revision), 2, "a refusal")
        refused = status(client)
        assert refused["state"] == "rejected" and str(refused["error"]).startswith("load")
        assert scheduler.plan.settings.rate == 50.0 and scheduler.plan.scheduled_rate == 50.0
    assert live.status is not None and live.status["settings"]["rate"] == 50.0

    client.delete(LOAD_SETTINGS_KEY)  # no key: the configured settings again
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: r == 20.0, 1.0, "the configured rate")
    # The status is written just after the plan changes: wait for it, not only for the plan.
    poll(partial(status, client), lambda s: s["state"] == "configured", 2, "the configured status")


def test_a_ramp_moves_the_offered_rate_and_the_status_follows(
    client: EtcdClient, running: tuple[Scheduler, LiveLoad]
) -> None:
    scheduler, _ = running
    client.put(LOAD_SETTINGS_KEY, json.dumps(
        {"profile": {"kind": "ramp", "from": 10, "to": 60, "over_seconds": 2}}))  # fmt: skip
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: 10 <= r < 60, 1.0, "the ramp started")
    poll(lambda: status(client).get("offered_rate"), lambda r: r == 60.0, 4, "the ramp's end reported")


def test_etcd_down_keeps_the_last_good_settings(
    etcd: EtcdServer, client: EtcdClient, running: tuple[Scheduler, LiveLoad]
) -> None:
    scheduler, _ = running
    client.put(LOAD_SETTINGS_KEY, json.dumps({"rate": 40}))
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: r == 40.0, 1.0, "rate 40")
    etcd.stop()
    try:
        assert 30 <= scheduler.rate_over(1.0) <= 50
        assert scheduler.plan.settings.rate == 40.0
    finally:
        etcd.start()
    # The client's channel may still be reconnecting when etcd answers again: retry the write.
    settings = json.dumps({"rate": 60})
    poll(lambda: etcd_write_succeeds(lambda: client.put(LOAD_SETTINGS_KEY, settings)), bool, 10,
         "etcd taking writes again")  # fmt: skip
    poll(lambda: scheduler.plan.scheduled_rate, lambda r: r == 60.0, 5, "rate 60 after etcd is back")
