"""The native stack: the whole demo on this machine, without Docker.

    python -m services.stack                 # until Ctrl-C
    python -m services.stack --duration 120  # stops by itself

Starts, on loopback: etcd and Prometheus (Debian's binaries, installed with apt-get when missing and
run as root), an OTLP receiver writing spans to ``<workdir>/spans.jsonl`` (unless
``OTEL_EXPORTER_OTLP_ENDPOINT`` names a collector), every demo service (two inventory instances)
and the load generator. Prometheus runs ``prometheus/prometheus.yml`` and its rules, with the
targets rewritten to the local processes. The control panel (``python -m telemetry.panel``) comes
last, when Streamlit is installed (the ``panel`` extra); its password is ``PANEL_PASSWORD`` when
set, else a generated one, printed and kept in ``<workdir>/panel-password``. Every URL is printed;
each process logs to ``<workdir>/logs/<name>.log``; Ctrl-C or SIGTERM stops everything, in
reverse order.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from services.healthcheck import check_grpc, check_http
from telemetry.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
BACKENDS = ("inventory-1", "inventory-2", "payment", "recommendation", "notification")
DEFAULT_PORTS = {"gateway": 8080, "prometheus": 9090, "etcd": 2379, "panel": 8501}


class StackError(RuntimeError):
    """The stack could not start; the message says which part and why (with its log's tail)."""


def ensure_binary(command: str, package: str) -> str:
    """The path of ``command``, installing Debian's ``package`` when missing (root only)."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise StackError(f"{command} is missing: install the Debian package {package} (as root)")
    print(f"installing {package} (for {command}) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    found = shutil.which(command)
    if not found:
        raise StackError(f"{package} installed but {command} is still not on PATH")
    return found


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready: Callable[[], str | None]  # None when ready, else why not
    urls: dict[str, str] = field(default_factory=dict)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def prometheus_config(template: dict[str, Any], targets: dict[str, list[str]]) -> dict[str, Any]:
    """``prometheus/prometheus.yml`` with each job's targets replaced by local ones; jobs of parts
    the native stack does not run (the collector, Jaeger) are left out; rule files made absolute."""
    config = dict(template)
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / p) for p in template.get("rule_files", [])]
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": targets[job["job_name"]]}]}
        for job in template.get("scrape_configs", [])
        if job["job_name"] in targets
    ]
    return config


class NativeStack:
    """Start with :meth:`start`, stop with :meth:`stop` (also a context manager)."""

    def __init__(
        self,
        workdir: Path,
        *,
        otlp_endpoint: str | None = None,
        loadgen_rate: float = 20.0,
        loadgen: bool = True,
        standard_ports: bool = True,
        extra_env: dict[str, str] | None = None,
        panel: bool = True,
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.otlp_endpoint = otlp_endpoint
        self.loadgen_rate = loadgen_rate
        self.with_loadgen = loadgen
        # The panel needs the "panel" extra; without it the stack runs on without one.
        self.with_panel = panel and importlib.util.find_spec("streamlit") is not None
        self.panel_password = os.environ.get("PANEL_PASSWORD") or secrets.token_urlsafe(12)
        self._standard_ports = standard_ports
        self._handed_out: set[int] = set()
        self._extra_env = dict(extra_env or {})
        self.processes: list[Process] = []
        self.ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}
        self.etcd_endpoint = ""
        self.spans_file: Path | None = None
        self.started_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> NativeStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        self.started_at = time.time()
        try:
            self._start_etcd()
            self._wait(deadline)
            if self.otlp_endpoint is None:
                self._start_otlp_file()
            for name in (*BACKENDS, "order", "gateway"):
                self._start_service(name)
            self._start_prometheus()
            self._wait(deadline)
            if self.with_loadgen:
                self._start_loadgen()
            if self.with_panel:
                self._start_panel()
            self._wait(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM everything, newest first (load, then services, then etcd); SIGKILL stragglers."""
        for process in reversed(self.processes):
            if process.proc.poll() is None:
                process.proc.send_signal(signal.SIGTERM)
                try:
                    process.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.proc.kill()
                    process.proc.wait()
        self.processes.clear()

    def __enter__(self) -> NativeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what is running ------------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def panel_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['panel']}"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def urls(self) -> list[tuple[str, str]]:
        rows = [(f"{p.name} {what}", url) for p in self.processes for what, url in p.urls.items()]
        if self.spans_file is not None:
            rows.append(("spans (OTLP receiver)", str(self.spans_file)))
        rows.append(("logs", str(self.logs)))
        return rows

    def check_alive(self) -> str | None:
        """None while every process runs, else which one exited."""
        for process in self.processes:
            if process.proc.poll() is not None:
                return f"{process.name} exited with {process.proc.returncode}:\n{process.tail()}"
        return None

    # -- parts ----------------------------------------------------------------------------------

    def _port(self, name: str = "") -> int:
        """A free port none of this stack's processes was given yet. The kernel may hand a just
        released port out again, and gRPC servers bind with SO_REUSEPORT: two services given the
        same port would both start and share each other's calls."""
        preferred = DEFAULT_PORTS.get(name, 0) if self._standard_ports else 0
        for _ in range(100):
            try:
                port = free_port(preferred)
            except OSError as exc:
                raise StackError("no free port on 127.0.0.1") from exc
            if port not in self._handed_out:
                self._handed_out.add(port)
                return port
            preferred = 0
        raise StackError("no free port on 127.0.0.1 that this stack has not used yet")

    def _metrics_port(self, instance: str) -> int:
        """The port ``instance`` serves its metrics on, given on first asking."""
        if instance not in self.metrics_ports:
            self.metrics_ports[instance] = self._port()
        return self.metrics_ports[instance]

    def _spawn(
        self, name: str, argv: list[str], ready: Callable[[], str | None],
        env: dict[str, str] | None = None, urls: dict[str, str] | None = None,
    ) -> Process:  # fmt: skip
        log = self.log_file(name)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops them in order
            )  # fmt: skip
        process = Process(name, proc, log, ready, urls or {})
        self.processes.append(process)
        return process

    def _start_etcd(self) -> None:
        binary = ensure_binary("etcd", "etcd-server")
        port, peer = self._port("etcd"), self._port()
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)  # a demo starts from an empty registry
        self.etcd_endpoint = f"127.0.0.1:{port}"
        self.ports["etcd"] = port
        url = f"http://127.0.0.1:{port}"
        self._spawn(
            "etcd",
            [binary, "--name", "demo", "--data-dir", str(data),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"demo=http://127.0.0.1:{peer}"],
            ready=lambda: check_http(f"{url}/health"),
            urls={"client": url},
        )  # fmt: skip

    def _start_otlp_file(self) -> None:
        grpc_port, http_port = self._port(), self._port()
        self.spans_file = self.workdir / "spans.jsonl"
        self.spans_file.unlink(missing_ok=True)
        self.otlp_endpoint = f"http://127.0.0.1:{grpc_port}"
        self._spawn(
            "otlp-receiver",
            [sys.executable, "-m", "telemetry.testing.otlp_receiver", "--grpc-port", str(grpc_port),
             "--http-port", str(http_port), "--out", str(self.spans_file)],
            ready=lambda: _port_open(grpc_port),
            urls={"otlp grpc": self.otlp_endpoint},
        )  # fmt: skip

    def _service_env(self, instance: str) -> dict[str, str]:
        metrics = self._metrics_port(instance)
        assert self.otlp_endpoint is not None
        return {
            "ETCD_ENDPOINTS": self.etcd_endpoint,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            "TELEMETRY_METRICS_PORT": str(metrics),
            "TELEMETRY_METRICS_HOST": "127.0.0.1",
            "SHOP_INSTANCE_ID": instance,
            "PYTHONUNBUFFERED": "1",
            **self._extra_env,
        }

    def _start_service(self, instance: str) -> None:
        service = instance.split("-", maxsplit=1)[0]
        port = self._port(instance)
        self.ports[instance] = port
        env = {**self._service_env(instance), "SHOP_LISTEN": f"127.0.0.1:{port}"}
        urls = {"metrics": self.metrics_url(instance)}
        if service == "gateway":
            ready = partial(check_http, f"http://127.0.0.1:{port}/healthz")
            urls = {"http": f"http://127.0.0.1:{port}", **urls}
        else:
            ready = partial(check_grpc, f"127.0.0.1:{port}")
            urls = {"grpc": f"127.0.0.1:{port}", **urls}
        self._spawn(instance, [sys.executable, "-m", f"services.{service}"], ready, env, urls)

    def _start_loadgen(self) -> None:
        env = {
            **self._service_env("loadgen"),
            "SHOP_TARGET": self.gateway_url,
            "SHOP_RATE": str(self.loadgen_rate),
        }
        metrics = self.metrics_url("loadgen")
        self._spawn("loadgen", [sys.executable, "-m", "services.loadgen"],
                    lambda: check_http(metrics), env, {"metrics": metrics})  # fmt: skip

    def _start_panel(self) -> None:
        port = self._port("panel")
        self.ports["panel"] = port
        password_file = self.workdir / "panel-password"
        password_file.write_text(self.panel_password + "\n")
        password_file.chmod(0o600)
        env = {
            "ETCD_ENDPOINTS": self.etcd_endpoint,
            "PROMETHEUS_URL": self.prometheus_url,
            "PANEL_PASSWORD_FILE": str(password_file),
            "PANEL_WINDOW_MINUTES": "10",
            **self._extra_env,
        }
        url = f"http://127.0.0.1:{port}"
        self._spawn(
            "panel",
            [sys.executable, "-m", "telemetry.panel", "--server.address=127.0.0.1",
             f"--server.port={port}"],
            ready=lambda: check_http(f"{url}/_stcore/health"),
            env=env,
            urls={"ui": url, "password": str(password_file)},
        )  # fmt: skip

    def _start_prometheus(self) -> None:
        binary = ensure_binary("prometheus", "prometheus")
        port = self._port("prometheus")
        self.ports["prometheus"] = port
        if self.with_loadgen:
            self._metrics_port("loadgen")
        targets: dict[str, list[str]] = {}
        for instance, metrics in self.metrics_ports.items():
            targets.setdefault(instance.split("-")[0], []).append(f"127.0.0.1:{metrics}")
        template = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(prometheus_config(template, targets), sort_keys=False))
        data = self.workdir / "prometheus-data"
        shutil.rmtree(data, ignore_errors=True)
        url = f"http://127.0.0.1:{port}"
        self._spawn(
            "prometheus",
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
             "--web.enable-lifecycle"],
            ready=lambda: check_http(f"{url}/-/ready"),
            urls={"ui": url},
        )  # fmt: skip

    def _wait(self, deadline: float) -> None:
        """Until every started process is ready; fail fast when one exits."""
        pending = list(self.processes)
        while pending:
            died = self.check_alive()
            if died:
                raise StackError(died)
            pending = [p for p in pending if p.ready() is not None]
            if not pending:
                return
            if time.monotonic() > deadline:
                detail = "; ".join(f"{p.name}: {p.ready()}" for p in pending)
                raise StackError(f"not ready in time: {detail}\n{pending[0].tail()}")
            time.sleep(0.2)


def _port_open(port: int) -> str | None:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return None if sock.connect_ex(("127.0.0.1", port)) == 0 else f"port {port} closed"


def _print_table(rows: Iterable[tuple[str, str]]) -> None:
    rows = list(rows)
    width = max(len(name) for name, _ in rows)
    for name, url in rows:
        print(f"  {name.ljust(width)}  {url}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / "stack")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    parser.add_argument("--rate", type=float, default=20.0, help="load generator requests/s")
    parser.add_argument("--no-loadgen", action="store_true")
    args = parser.parse_args(argv)
    stack = NativeStack(
        args.workdir,
        otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
        loadgen_rate=args.rate,
        loadgen=not args.no_loadgen,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("starting the native stack (etcd, Prometheus, 7 services, load generator, panel) ...",
          flush=True)  # fmt: skip
    try:
        stack.start()
    except StackError as exc:
        print(f"the stack did not start: {exc}", file=sys.stderr)
        return 1
    print("\nrunning (Ctrl-C stops everything):")
    _print_table(stack.urls())
    print(
        f"\ntry:  curl -s -XPOST {stack.gateway_url}/orders -H 'x-user: ada' "
        '-d \'{"user":"ada","items":[{"sku":"sku-mug","quantity":2}]}\'\n'
        f"      open {stack.prometheus_url}/graph and query "
        "job:grpc_server_handled:rate1m (Grafana and Jaeger come with docker compose)",
        flush=True,
    )
    if stack.with_panel:
        print(f"      open {stack.panel_url} (the control panel; password: {stack.panel_password})",
              flush=True)  # fmt: skip
    code = 0
    ends = time.monotonic() + args.duration if args.duration else None
    while not stop.wait(1.0):
        died = stack.check_alive()
        if died:
            print(f"stopping: {died}", file=sys.stderr)
            code = 1
            break
        if ends is not None and time.monotonic() >= ends:
            break
    print("stopping ...", flush=True)
    stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
