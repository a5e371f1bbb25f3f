"""Building a :class:`telemetry.Telemetry` does no I/O: no socket, no thread, no etcd connection.
``start()`` does it, explicitly or on first use (a server, a channel ...), and ``telemetry.init``
starts the handle it installs, so ``/metrics`` answers right after it as before."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import psutil
import pytest
from helpers import make_config, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.testing.etcd_server import EtcdServer

ROOT = Path(__file__).resolve().parents[2]

Connection = tuple[object, object, str]


def connections() -> set[Connection]:
    """This process's TCP/UDP sockets: (local address, remote address, state)."""
    return {(c.laddr, c.raddr, c.status) for c in psutil.Process().net_connections(kind="inet")}


def listening(conns: set[Connection]) -> set[int]:
    return {laddr.port for laddr, _, status in conns if status == psutil.CONN_LISTEN}  # type: ignore[attr-defined]


def to_port(conns: set[Connection], port: int) -> set[Connection]:
    return {c for c in conns if c[1] and c[1].port == port}  # type: ignore[attr-defined]


def every_part(etcd: EtcdServer) -> telemetry.Telemetry:
    """A handle with every part that does I/O: a metrics port, OTLP export (to nowhere: no span is
    made), governance, etcd discovery and live rules."""
    config = make_config(
        "quiet",
        metrics_port=0,
        metrics_host="127.0.0.1",
        traces_exporter="otlp",
        otlp_endpoint="http://127.0.0.1:9",
    )
    return telemetry.Telemetry(
        config, registry=CollectorRegistry(), governance={}, etcd=etcd.endpoint, instance_id="q1"
    )


def test_building_does_no_io_and_start_does(etcd: EtcdServer) -> None:
    threads, conns = set(threading.enumerate()), connections()
    tel = every_part(etcd)
    try:
        assert set(threading.enumerate()) - threads == set()
        assert connections() - conns == set()

        assert tel.start() is tel
        assert tel.start() is tel  # idempotent
        started = set(threading.enumerate()) - threads
        assert started, "start() started no thread"
        assert tel.metrics_server is not None
        assert tel.metrics_server.port in listening(connections()) - listening(conns)
        wait_until(lambda: to_port(connections() - conns, etcd.port), message="an etcd connection")
        assert tel.live_rules is not None and tel.live_rules.wait_ready(10)
        port = tel.metrics_server.port
    finally:
        tel.shutdown(timeout=2.0)
    tel.shutdown()  # idempotent
    assert port not in listening(connections())
    wait_until(lambda: not any(t.is_alive() for t in started - {threading.current_thread()}),
               message="the handle's threads to end")  # fmt: skip


def test_the_first_server_starts_the_handle() -> None:
    conns = connections()
    tel = telemetry.Telemetry(make_config("lazy", metrics_port=0, metrics_host="127.0.0.1"))
    try:
        assert listening(connections()) == listening(conns)
        tel.server(max_workers=1)
        assert tel.metrics_server is not None
        assert tel.metrics_server.port in listening(connections())
    finally:
        tel.shutdown()


def test_a_handle_shut_down_unstarted_never_starts() -> None:
    conns = connections()
    tel = telemetry.Telemetry(make_config("never", metrics_port=0, metrics_host="127.0.0.1"))
    tel.shutdown()
    tel.shutdown()
    with pytest.raises(RuntimeError, match="shut down before it started"):
        tel.channel("127.0.0.1:1")
    assert connections() - conns == set()


def test_init_starts_the_handle_it_installs() -> None:
    script = textwrap.dedent(
        """
        import io, urllib.request
        import telemetry
        tel = telemetry.init(service_name="eager", metrics_port=0, metrics_host="127.0.0.1",
                             traces_exporter="none", log_stream=io.StringIO())
        with urllib.request.urlopen(tel.metrics_url, timeout=10) as answer:
            assert answer.status == 200 and b"grpc_server_started" in answer.read()
        print("OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr


def test_metrics_url_answers_once_started() -> None:
    tel = telemetry.Telemetry(make_config("url", metrics_port=0, metrics_host="127.0.0.1"))
    try:
        url = tel.metrics_url  # a live part: reading it starts the handle
        assert url is not None
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
    finally:
        tel.shutdown()


def test_process_wide_settings_wait_for_start() -> None:
    # AdaptiveRule.gil_switch_interval is the process's: a handle only built must not change it.
    before = sys.getswitchinterval()
    rules = {"adaptive": {"enabled": True, "gil_switch_interval": 0.001}}
    tel = telemetry.Telemetry(make_config("switch", metrics_port=None), governance=rules)
    try:
        assert sys.getswitchinterval() == before
        tel.start()
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        tel.shutdown()
        assert tel.governance is not None
        tel.governance.apply({})  # rules without the adaptive limiter hand the interval back
    assert sys.getswitchinterval() == pytest.approx(before)
