"""The scrape-targets sidecar (services/scrape_targets.py) on a real etcd: Prometheus's http_sd
list follows the registry, leaves out what the static configuration scrapes, and never lists a
hostile registration (it logs it); SIGTERM stops it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from telemetry.discovery.etcd import EtcdClient
from telemetry.testing import free_port
from telemetry.testing._poll import poll
from telemetry.testing.etcd_server import EtcdServer

ROOT = Path(__file__).resolve().parents[2]


def registration(metrics: str) -> str:
    return json.dumps({"address": "127.0.0.1:50051", "metadata": {"metrics": metrics}})


def get(url: str) -> tuple[int, Any, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


@pytest.fixture
def sidecar(etcd: EtcdServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [
        {"job_name": "order", "static_configs": [{"targets": ["127.0.0.1:4001"]}]},
        {"job_name": "registered", "http_sd_configs": [{"url": "http://127.0.0.1:1/targets"}]},
    ]}))  # fmt: skip
    port = free_port()
    log = tmp_path / "sidecar.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.scrape_targets", f"--listen=127.0.0.1:{port}",
             f"--etcd={etcd.endpoint}", f"--prometheus-config={config}", "--loopback-only"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", log
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_list_follows_the_registry_and_skips_what_it_must(
    sidecar: tuple[str, Path], client: EtcdClient
) -> None:
    base, log = sidecar

    def targets() -> Any:
        try:
            status, body, _ = get(f"{base}/targets")
        except OSError:
            return None  # not listening yet
        return body if status == 200 else None

    assert poll(targets, lambda body: body == [], 15, "the empty list", interval=0.1) == []
    client.put("/services/shop/a", registration("127.0.0.1:5001"))
    client.put("/services/shop/b", registration("127.0.0.1:5002"))
    client.put("/services/order/order", registration("127.0.0.1:4001"))  # order's static job
    client.put("/services/sneaky/a", registration("127.0.0.1:4001"))  # order's static target
    client.put("/services/shop/far", registration("169.254.169.254:80"))  # not loopback
    client.put("/services/shop/bad", "{not json")
    expected = [{"labels": {"job": "shop"}, "targets": ["127.0.0.1:5001", "127.0.0.1:5002"]}]
    poll(targets, lambda body: body == expected, 10, "shop's two instances", interval=0.1)

    client.delete("/services/shop/a")
    expected = [{"labels": {"job": "shop"}, "targets": ["127.0.0.1:5002"]}]
    poll(targets, lambda body: body == expected, 10, "one instance left", interval=0.1)

    status, body, content_type = get(f"{base}/elsewhere")
    assert status == 404 and "targets" in body["error"] and content_type == "application/json"
    assert get(f"{base}/targets")[2] == "application/json"  # http_sd refuses any other type
    logged = log.read_text()
    for key in ("/services/sneaky/a", "/services/shop/far", "/services/shop/bad"):
        assert f"not scraping {key}" in logged, logged
    assert "/services/order/order" not in logged  # left out on purpose, not a fault
    assert logged.count("not scraping /services/shop/bad") == 1  # once, not at every change


def test_without_etcd_it_answers_503_so_prometheus_keeps_its_targets(tmp_path: Path) -> None:
    port, nowhere = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.scrape_targets", f"--listen=127.0.0.1:{port}",
         f"--etcd=127.0.0.1:{nowhere}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def answer() -> tuple[int, Any, str] | None:
            try:
                return get(f"http://127.0.0.1:{port}/targets")
            except OSError:
                return None

        got = poll(answer, lambda got: got is not None, 15, "an answer", interval=0.1)
        assert got is not None
        status, body, _ = got
        assert status == 503 and "etcd" in body["error"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
