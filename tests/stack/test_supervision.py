"""The native launcher keeps its children running: a killed child is restarted on its own ports and
registers again while the rest of the stack serves on; a child stopped on request (the Python API or
a hold file) stays stopped until released; etcd restarts keep or lose its data as asked.

The kill and hold tests share the session's stack (``conftest.py``) and leave every child running
and ready. Restarting etcd would disturb the other tests' discovery, so that runs on a second, small
stack (no load generator, no panel) which also runs two payment instances. Every wait polls with a
deadline; every process is the stack's child, stopped by PID when its stack stops.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from services.healthcheck import check_http
from services.stack import (
    NativeStack,
    RestartBackoff,
    StackError,
    describe_exit,
    ensure_binary,
    instance_names,
)
from telemetry.testing._poll import poll
from telemetry.testing.clock import FakeClock

T = TypeVar("T")
# Long enough for a wrongly scheduled restart (0.5 s backoff + a 0.2 s supervisor round) to show.
STAYS_STOPPED = 1.5


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcdctl() -> str:
    return ensure_binary("etcdctl", "etcd-client")


def etcd(etcdctl: str, endpoint: str, *args: str) -> str:
    result = subprocess.run(
        [etcdctl, "--endpoints", endpoint, *args], env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"etcdctl {' '.join(args)}: {result.stderr}"
    return result.stdout


def etcd_entries(etcdctl: str, endpoint: str, prefix: str) -> dict[str, tuple[str, int]]:
    """key -> (value, mod_revision) under ``prefix``."""
    answer = json.loads(etcd(etcdctl, endpoint, "get", "--prefix", prefix, "-w", "json"))
    return {_b64(kv["key"]): (_b64(kv["value"]), kv["mod_revision"]) for kv in answer.get("kvs", [])}


def _b64(text: str) -> str:
    return base64.b64decode(text).decode()


def stays(read: Callable[[], T], expected: T, seconds: float) -> None:
    """``read()`` keeps returning ``expected`` for ``seconds`` (checked every 0.05 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert read() == expected
        time.sleep(0.05)


def pid_file_pid(stack: NativeStack, name: str) -> int | None:
    try:
        return int(stack.pid_file(name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def stack_log(stack: NativeStack) -> str:
    return (stack.logs / "stack.log").read_text()


# -- pure parts ---------------------------------------------------------------------------------


def test_restart_backoff_doubles_to_10s_and_starts_over_after_a_30s_run() -> None:
    clock = FakeClock()
    backoff = RestartBackoff(clock=clock)
    delays = []
    for _ in range(7):
        backoff.started()
        clock.advance(1.0)  # dies a second after each start
        delays.append(backoff.exited())
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.started()
    clock.advance(29.9)
    assert backoff.exited() == 10.0  # not quite healthy
    backoff.started()
    clock.advance(30.0)
    assert backoff.exited() == 0.5  # ran 30 s: healthy, the next crash is a first one
    backoff.started()
    assert backoff.exited() == 1.0


def test_instance_names_keep_a_single_instance_bare_and_number_several() -> None:
    assert instance_names({"inventory": 2}) == [
        "inventory-1", "inventory-2", "payment", "recommendation", "notification",
    ]  # fmt: skip
    assert instance_names({"inventory": 1, "payment": 3}) == [
        "inventory", "payment-1", "payment-2", "payment-3", "recommendation", "notification",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="gateway"):
        instance_names({"gateway": 2})
    with pytest.raises(ValueError, match="payment"):
        instance_names({"payment": 0})


def test_describe_exit_names_the_code_or_the_signal() -> None:
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"


# -- on the shared stack ------------------------------------------------------------------------


def test_kill_9_restarts_the_instance_which_registers_again_while_the_rest_serves(
    stack: NativeStack, etcdctl: str
) -> None:
    name, key = "inventory-1", "/services/inventory/inventory-1"
    stack.wait_ready(name)
    before = poll(lambda: etcd_entries(etcdctl, stack.etcd_endpoint, key), bool, 15,
                  f"{key} in etcd", interval=0.2)[key]  # fmt: skip
    old_pid, restarts = stack.pid(name), stack.restarts(name)
    others = {other: stack.pid(other) for other in stack.process_names() if other != name}
    assert old_pid is not None and pid_file_pid(stack, name) == old_pid

    def gateway_answers_then(read: Callable[[], T]) -> Callable[[], T]:
        def checked() -> T:
            assert check_http(f"{stack.gateway_url}/healthz") is None, "the gateway stopped answering"
            return read()

        return checked

    stack.kill(name)
    new_pid = poll(gateway_answers_then(lambda: stack.pid(name)), lambda pid: pid not in (None, old_pid),
                   15, f"{name} restarted", interval=0.05)  # fmt: skip
    poll(gateway_answers_then(lambda: stack.readiness(name)), lambda why: why is None, 30,
         f"{name} ready again", interval=0.2)  # fmt: skip
    stack.wait_ready(name, timeout=1.0)
    entry = poll(
        gateway_answers_then(lambda: etcd_entries(etcdctl, stack.etcd_endpoint, key).get(key)),
        lambda entry: entry is not None and entry[1] > before[1], 20, f"{name} registered anew",
        interval=0.2,
    )  # fmt: skip
    assert entry is not None
    assert json.loads(entry[0])["address"].endswith(f":{stack.ports[name]}")  # the same port as before
    assert stack.restarts(name) == restarts + 1
    assert pid_file_pid(stack, name) == new_pid
    assert f"{name} (pid {old_pid}) killed by SIGKILL; restarting in" in stack_log(stack)
    assert {other: stack.pid(other) for other in others} == others  # nobody else stopped


def test_stop_process_holds_it_until_start_process(stack: NativeStack) -> None:
    name = "inventory-2"
    stack.wait_ready(name)
    restarts = stack.restarts(name)
    stack.stop_process(name)
    assert stack.pid(name) is None and not stack.pid_file(name).exists()
    stays(lambda: stack.pid(name), None, STAYS_STOPPED)
    with pytest.raises(StackError, match=name):
        stack.wait_ready(name, timeout=1.0)
    with pytest.raises(StackError, match=name):
        stack.kill(name)
    stack.start_process(name)
    assert stack.pid(name) is not None
    stack.wait_ready(name)
    assert pid_file_pid(stack, name) == stack.pid(name)
    assert stack.restarts(name) == restarts  # a start on request is no restart


def test_stop_process_right_after_kill_wins_over_the_pending_restart(stack: NativeStack) -> None:
    # The chaos benchmark's "inventory dies and stays dead": the supervisor may have seen the exit
    # and scheduled a restart before stop_process holds it; the hold must cancel that restart.
    name = "inventory-2"
    stack.wait_ready(name)
    old_pid, restarts = stack.pid(name), stack.restarts(name)
    stack.kill(name)
    stack.stop_process(name, timeout=5.0)
    stays(lambda: stack.pid(name), None, STAYS_STOPPED)
    stack.start_process(name)
    assert stack.pid(name) not in (None, old_pid)
    stack.wait_ready(name)
    assert stack.restarts(name) == restarts


def test_a_hold_file_stops_the_process_and_removing_it_starts_it_again(stack: NativeStack) -> None:
    name = "inventory-2"
    stack.wait_ready(name)
    old_pid, restarts = stack.pid(name), stack.restarts(name)
    hold = stack.holds / name
    hold.touch()
    try:
        poll(lambda: (stack.pid(name), stack.pid_file(name).exists()), lambda got: got == (None, False),
             15, f"{name} stopped by its hold file", interval=0.05)  # fmt: skip
        stays(lambda: stack.pid(name), None, STAYS_STOPPED)
        assert f": held by {hold}" in stack_log(stack)
    finally:
        hold.unlink(missing_ok=True)
    new_pid = poll(lambda: stack.pid(name), lambda pid: pid not in (None, old_pid), 5,
                   f"{name} started once the hold file is gone", interval=0.05)  # fmt: skip
    stack.wait_ready(name)
    assert pid_file_pid(stack, name) == new_pid
    assert stack.restarts(name) == restarts


# -- on a second, small stack: etcd restarts and two payment instances --------------------------


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    native = NativeStack(
        tmp_path_factory.mktemp("small-stack"), loadgen=False, panel=False, standard_ports=False,
        instances={"inventory": 1, "payment": 2},
    )  # fmt: skip
    with native:
        yield native


def test_instances_run_and_register_each_and_are_all_scraped(
    small_stack: NativeStack, etcdctl: str
) -> None:
    names = small_stack.process_names()
    assert {"inventory", "payment-1", "payment-2"} <= set(names)
    assert not {"inventory-1", "payment"} & set(names)
    expected = {"/services/inventory/inventory", "/services/payment/payment-1",
                "/services/payment/payment-2"}  # fmt: skip
    poll(lambda: set(etcd_entries(etcdctl, small_stack.etcd_endpoint, "/services/")),
         lambda keys: expected <= keys, 15, "every instance registered", interval=0.2)  # fmt: skip
    config = yaml.safe_load((small_stack.workdir / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"]
            for job in config["scrape_configs"] if "static_configs" in job}  # fmt: skip
    assert sorted(jobs["payment"]) == sorted(
        f"127.0.0.1:{small_stack.metrics_ports[n]}" for n in ("payment-1", "payment-2")
    )


def test_restart_etcd_keeps_its_data_unless_wiped_and_services_register_again(
    small_stack: NativeStack, etcdctl: str
) -> None:
    endpoint, key = small_stack.etcd_endpoint, "/governance/payment/faults"
    etcd(etcdctl, endpoint, "put", key, '{"*": {"error_rate": 0.0}}')
    old_pid = small_stack.pid("etcd")

    small_stack.restart_etcd(wipe=False)
    assert small_stack.etcd_endpoint == endpoint  # the same ports
    assert small_stack.pid("etcd") not in (None, old_pid)
    assert key in etcd_entries(etcdctl, endpoint, key), "an etcd outage lost the data"

    small_stack.restart_etcd(wipe=True)
    assert key not in etcd_entries(etcdctl, endpoint, key), "wipe=True kept the data"
    # The services notice their lost leases and register again in the empty registry.
    poll(lambda: etcd_entries(etcdctl, endpoint, "/services/"), lambda found: len(found) >= 5, 20,
         "the services registered in the wiped etcd", interval=0.2)  # fmt: skip
    assert small_stack.restarts("etcd") == 0  # restarts on request are not crash restarts
    assert Path(small_stack.pid_file("etcd")).read_text().strip() == str(small_stack.pid("etcd"))
