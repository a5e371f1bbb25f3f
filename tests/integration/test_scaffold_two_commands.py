"""The issue's figure: from `telemetry new` to a running, registered, traced service in two
commands and under 30 s, against a real etcd and an OTLP receiver:

    telemetry new shop --proto services/protos/demoshop.proto --out DIR
    ETCD_ENDPOINTS=... python DIR/shop/main.py

SIGTERM then stops it gracefully: it deregisters and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from helpers import wait_until
from scaffold_projects import DEMOSHOP, tool

from telemetry.discovery.etcd import EtcdClient
from telemetry.testing import OtlpReceiver, free_port
from telemetry.testing.etcd_server import EtcdServer

FIGURE = 30.0
"""Seconds from the first command to the service registered and its first trace received."""


def test_two_commands_to_a_registered_traced_service(
    tmp_path: Path, etcd: EtcdServer, client: EtcdClient
) -> None:
    port = free_port()
    with OtlpReceiver() as receiver:
        env = {**os.environ, "ETCD_ENDPOINTS": etcd.endpoint, "SHOP_PORT": str(port),
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint}  # fmt: skip
        started = time.monotonic()
        new = subprocess.run(
            [tool("telemetry"), "new", "shop", "--proto", str(DEMOSHOP), "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert new.returncode == 0, new.stderr
        generated = time.monotonic()
        log = (tmp_path / "shop.log").open("wb")
        service = subprocess.Popen(
            [sys.executable, str(tmp_path / "shop" / "main.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: client.get_prefix("/services/shop/").items, 30, "shop registered in etcd")
            registered = time.monotonic()
            with (
                grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
                pytest.raises(grpc.RpcError) as raised,
            ):
                place_order: grpc.UnaryUnaryMultiCallable[bytes, bytes]
                place_order = channel.unary_unary("/demoshop.v1.Order/PlaceOrder")
                place_order(b"", timeout=5)
            assert isinstance(raised.value, grpc.Call)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert raised.value.details() == "not written yet"
            receiver.wait_for(
                lambda spans: any(s.name == "demoshop.v1.Order/PlaceOrder" and s.service_name == "shop"
                                  for s in spans), timeout=30,
            )  # fmt: skip
            traced = time.monotonic()
            (entry,) = client.get_prefix("/services/shop/").items
            assert json.loads(entry.value)["address"] == f"127.0.0.1:{port}"
            assert "demoshop.v1.Order" in json.loads(entry.value)["metadata"]["grpc_services"]
            service.send_signal(signal.SIGTERM)
            assert service.wait(30) == 0
            assert client.get_prefix("/services/shop/").items == []
        finally:
            if service.poll() is None:
                service.kill()
                service.wait(10)
            log.close()
    print(
        f"\ntelemetry new: {generated - started:.2f}s; registered: {registered - started:.2f}s; "
        f"first trace received: {traced - started:.2f}s"
    )
    assert traced - started < FIGURE, (tmp_path / "shop.log").read_text()[-3000:]
