"""Prometheus's targets from etcd: every service registered there that the static configuration
does not scrape already (a ``telemetry new`` project added to the running stack, say), served for
Prometheus's ``http_sd_configs``.

    python -m services.scrape_targets --listen 127.0.0.1:9465 --etcd 127.0.0.1:2379 \\
        --prometheus-config prometheus.yml [--loopback-only] [--max-targets 1000]

``GET /targets`` answers the target groups (``[{"labels": {"job": "<service>"}, "targets":
["host:port"]}]``), rebuilt after every registry change by
:class:`telemetry.discovery.scrape_targets.RegistryTargets`, which also says what is listed and how
hostile entries are refused. Until etcd was read once it answers 503: Prometheus keeps the targets
it had when a refresh fails, so a sidecar restarted while etcd is down takes nothing away. Services
with a static job in ``--prometheus-config`` and addresses it lists are left out: that job scrapes
them already, under the labels the dashboards expect. The native stack (``services/stack.py``) runs
this on loopback with ``--loopback-only``; docker-compose.yml runs it as ``scrape-targets``.

Why http_sd and not file_sd (a targets file written atomically): with Docker the list has to cross
from this container to Prometheus's, and a file would need a volume shared between them, where the
stack keeps no state and mounts only read-only files from the repository; HTTP needs only the
network they share. One mechanism then serves both stacks, so the native stack's end-to-end test
runs what compose runs. The cost: Prometheus polls (``refresh_interval: 5s`` in
``prometheus/prometheus.yml``) where a file is noticed at once, so a new service is scraped within
about two scrape intervals.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from telemetry.discovery.etcd import EtcdClient
from telemetry.discovery.node import etcd_config
from telemetry.discovery.scrape_targets import MAX_TARGETS, RegistryTargets

PATH = "/targets"
_log = logging.getLogger("services.scrape_targets")


def static_scrapes(config_file: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The names and targets of the jobs with ``static_configs`` in a Prometheus configuration."""
    config = yaml.safe_load(config_file.read_text()) or {}
    jobs: set[str] = set()
    targets: set[str] = set()
    for job in config.get("scrape_configs") or []:
        if job.get("static_configs"):
            jobs.add(str(job["job_name"]))
            targets.update(str(t) for group in job["static_configs"] for t in group.get("targets") or [])
    return frozenset(jobs), frozenset(targets)


class TargetsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], targets: RegistryTargets) -> None:
        super().__init__(address, _Handler)
        self.targets = targets


class _Handler(BaseHTTPRequestHandler):
    server: TargetsServer
    timeout = 10.0  # seconds a client may take with its request: a stalled one holds no thread

    def do_GET(self) -> None:  # http.server's name for it
        if self.path.partition("?")[0] != PATH:
            self._reply(404, b'{"error": "not found: GET /targets"}')
            return
        document = self.server.targets.document()
        if document is None:
            self._reply(503, b'{"error": "etcd not read yet"}')
        else:
            self._reply(200, document)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")  # http_sd refuses any other type
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Prometheus polls every few seconds: no access log."""


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--listen", type=_address, default=("0.0.0.0", 9465), help="host:port")
    parser.add_argument("--etcd", default=os.environ.get("ETCD_ENDPOINTS") or "127.0.0.1:2379",
                        help="endpoints, comma-separated (default: $ETCD_ENDPOINTS)")  # fmt: skip
    parser.add_argument("--prometheus-config", type=Path, help="skip what its static jobs scrape")
    parser.add_argument("--loopback-only", action="store_true", help="list loopback targets only")
    parser.add_argument("--max-targets", type=int, default=MAX_TARGETS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    jobs, addresses = static_scrapes(args.prometheus_config) if args.prometheus_config else ((), ())
    client = EtcdClient(etcd_config(args.etcd))
    targets = RegistryTargets(
        client, skip_jobs=jobs, skip_addresses=addresses, loopback_only=args.loopback_only,
        limit=args.max_targets,
    ).start()  # fmt: skip
    server = TargetsServer(args.listen, targets)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, name="targets-http", daemon=True).start()
    _log.info("serving http://%s:%d%s; static jobs left out: %s", *args.listen, PATH,
              ", ".join(sorted(jobs)) or "none")  # fmt: skip
    stop.wait()
    server.shutdown()
    server.server_close()
    targets.stop()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
