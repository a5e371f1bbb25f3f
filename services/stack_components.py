"""The native stack's parts: etcd, the OTLP receiver, every demo service, the alert receiver and
Alertmanager, the registry's scrape targets, Prometheus, the load generator and the control panel,
on loopback ports, in start order,
on top of the process supervision of ``services/stack_supervision.py``. ``services/stack.py`` is
the launcher."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from services.healthcheck import check_grpc, check_http
from services.stack_supervision import ROOT, StackError, Supervisor
from telemetry.testing.ports import free_port

PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
# The gRPC services order calls; each may run as several instances (``instances``).
BACKEND_SERVICES = ("inventory", "payment", "recommendation", "notification")
DEFAULT_INSTANCES: Mapping[str, int] = {"inventory": 2}
# OTLP on its standard ports: a service started by hand (a `telemetry new` project) sends its
# spans to the stack's receiver with the SDK's default endpoint, localhost:4317.
DEFAULT_PORTS = {"gateway": 8080, "prometheus": 9090, "etcd": 2379, "panel": 8501,
                 "otlp-grpc": 4317, "otlp-http": 4318}  # fmt: skip


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


def instance_names(instances: Mapping[str, int]) -> list[str]:
    """The backends' process names: a service run once keeps its bare name (``payment``), one run n
    times is ``<service>-1`` .. ``<service>-n`` (the instance id it registers in etcd under)."""
    unknown = set(instances) - set(BACKEND_SERVICES)
    if unknown:
        raise ValueError(f"instances: {sorted(unknown)} are not among {', '.join(BACKEND_SERVICES)}")
    names: list[str] = []
    for service in BACKEND_SERVICES:
        count = instances.get(service, 1)
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"instances[{service!r}] must be an int >= 1, got {count!r}")
        names += [service] if count == 1 else [f"{service}-{i}" for i in range(1, count + 1)]
    return names


def prometheus_config(
    template: dict[str, Any], targets: dict[str, list[str]], discovery_url: str | None = None,
    alertmanager: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``prometheus/prometheus.yml`` with each job's targets replaced by local ones; jobs of parts
    the native stack does not run (the collector, Jaeger) are left out; the job of registered
    services (``http_sd_configs``) asks ``discovery_url`` (left out without one); alerts go to the
    ``alertmanager`` host:port (no ``alerting`` without one); rule files made absolute."""
    config = dict(template)
    config.pop("alerting", None)
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / p) for p in template.get("rule_files", [])]
    jobs: list[dict[str, Any]] = []
    for job in template.get("scrape_configs", []):
        if "http_sd_configs" in job:
            if discovery_url:
                sd = [{**c, "url": discovery_url} for c in job["http_sd_configs"]]
                jobs.append({**job, "http_sd_configs": sd})
        elif job["job_name"] in targets:
            jobs.append({**job, "static_configs": [{"targets": targets[job["job_name"]]}]})
    config["scrape_configs"] = jobs
    return config


def alertmanager_config(template: dict[str, Any], webhook_url: str) -> dict[str, Any]:
    """``alertmanager/alertmanager.yml`` with every webhook pointed at ``webhook_url``: its route,
    grouping and timings are the ones compose runs."""
    config = dict(template)
    config["receivers"] = [
        {**receiver, "webhook_configs": [{**hook, "url": webhook_url}
                                         for hook in receiver.get("webhook_configs", [])]}
        for receiver in template.get("receivers", [])
    ]  # fmt: skip
    return config


class NativeStack(Supervisor):
    """Start with :meth:`start`, stop with :meth:`stop` (also a context manager); in between a
    supervisor restarts children that die, and the control methods stop, start and kill them."""

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
        instances: Mapping[str, int] | None = None,
        redis: bool = True,
    ) -> None:
        super().__init__(workdir)
        self.with_redis = redis  # False: cluster limits split evenly, as without redis-server
        self.otlp_endpoint = otlp_endpoint
        self.loadgen_rate = loadgen_rate
        self.with_loadgen = loadgen
        # The panel needs the "panel" extra; without it the stack runs on without one.
        self.with_panel = panel and importlib.util.find_spec("streamlit") is not None
        self.panel_password = os.environ.get("PANEL_PASSWORD") or secrets.token_urlsafe(12)
        self.backends = instance_names(DEFAULT_INSTANCES if instances is None else instances)
        self._standard_ports = standard_ports
        self._handed_out: set[int] = set()
        self._extra_env = dict(extra_env or {})
        self.ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}
        self.etcd_endpoint = ""
        self.etcd_data = workdir / "etcd-data"
        self.spans_file: Path | None = None
        self.started_at = 0.0
        self.with_alertmanager = False  # set by start: False when its binary is missing
        self.redis_url = ""  # set by start; "" when redis-server is missing

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> NativeStack:
        self._prepare_workdir()
        deadline = time.monotonic() + timeout
        self.started_at = time.time()
        try:
            self._start_etcd()
            if self.with_redis:
                self._start_redis()
            self._wait(deadline)
            if self.otlp_endpoint is None:
                self._start_otlp_file()
            for name in (*self.backends, "order", "gateway"):
                self._start_service(name)
            self._start_alerting()
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
        self._start_supervising()
        return self

    def __enter__(self) -> NativeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart_etcd(self, *, wipe: bool, timeout: float = 30.0) -> None:
        """Stop etcd, delete its data when ``wipe`` (every registration and rule is lost), start it
        again on the same client and peer ports and wait until it is ready."""
        self.stop_process("etcd")
        if wipe:
            shutil.rmtree(self.etcd_data, ignore_errors=True)
        self.start_process("etcd")
        self.wait_ready("etcd", timeout)

    # -- what is running ------------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['alertmanager']}"

    @property
    def alert_receiver_url(self) -> str:
        """The webhook receiver: Alertmanager posts to ``/webhook``; ``/alerts`` lists them."""
        return f"http://127.0.0.1:{self.ports['alert-receiver']}"

    @property
    def panel_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['panel']}"

    @property
    def scrape_targets_url(self) -> str:
        """Prometheus's http_sd list of the services registered in etcd without a static job."""
        return f"http://127.0.0.1:{self.ports['scrape-targets']}/targets"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def urls(self) -> list[tuple[str, str]]:
        rows = [(f"{p.name} {what}", url) for p in self.processes for what, url in p.urls.items()]
        if self.spans_file is not None:
            rows.append(("spans (OTLP receiver)", str(self.spans_file)))
        rows.append(("logs", str(self.logs)))
        return rows

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

    def _start_etcd(self) -> None:
        binary = ensure_binary("etcd", "etcd-server")
        port, peer = self._port("etcd"), self._port()
        # A demo starts from an empty registry; restarts (an etcd outage) keep the data.
        shutil.rmtree(self.etcd_data, ignore_errors=True)
        self.etcd_endpoint = f"127.0.0.1:{port}"
        self.ports["etcd"] = port
        url = f"http://127.0.0.1:{port}"
        self._spawn(
            "etcd",
            [binary, "--name", "demo", "--data-dir", str(self.etcd_data),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"demo=http://127.0.0.1:{peer}"],
            ready=lambda: check_http(f"{url}/health"),
            urls={"client": url},
        )  # fmt: skip

    def _start_redis(self) -> None:
        """Debian's redis-server, where cluster rate limits keep their counts. Optional: without it
        (not root, no apt) a cluster limit is split evenly across the instances, as it falls back
        to when Redis stops answering."""
        try:
            binary = ensure_binary("redis-server", "redis-server")
        except (StackError, subprocess.CalledProcessError, OSError) as exc:
            self._report(f"no Redis, cluster limits are split evenly: {exc}")
            return
        self.ports["redis"] = port = self._port()
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        # Counters only: nothing persisted, memory bounded (keys expire on their own; volatile-ttl
        # evicts those nearest to expiry if the bound is ever reached), as in docker-compose.yml.
        self._spawn(
            "redis",
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--maxmemory", "48mb", "--maxmemory-policy", "volatile-ttl"],
            ready=lambda: _port_open(port),
            urls={"url": self.redis_url},
        )  # fmt: skip

    def _start_otlp_file(self) -> None:
        grpc_port, http_port = self._port("otlp-grpc"), self._port("otlp-http")
        self.spans_file = self.workdir / "spans.jsonl"
        # A fresh run starts empty: drop the last run's file and its rotated copies (spans.jsonl.N).
        for old in (self.spans_file, *self.workdir.glob("spans.jsonl.*")):
            if old == self.spans_file or old.suffix[1:].isdigit():
                old.unlink(missing_ok=True)
        self.otlp_endpoint = f"http://127.0.0.1:{grpc_port}"
        # Capped: ~100 KB/s of spans under load would otherwise grow without bound (issue 17), so
        # at most spans.jsonl + .1 + .2 of 50 MiB each.
        max_bytes, backups = 50 * 1024 * 1024, 2
        self._spawn(
            "otlp-receiver",
            [sys.executable, "-m", "telemetry.testing.otlp_receiver", "--grpc-port", str(grpc_port),
             "--http-port", str(http_port), "--out", str(self.spans_file),
             "--max-bytes", str(max_bytes), "--backups", str(backups)],
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
            **({"TELEMETRY_REDIS_URL": self.redis_url} if self.redis_url else {}),
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
        self.ports["scrape-targets"] = self._port()
        alertmanager = self.alertmanager_url.removeprefix("http://") if self.with_alertmanager else None
        config = prometheus_config(template, targets, self.scrape_targets_url, alertmanager)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self._start_scrape_targets(config_file)
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

    def _start_alerting(self) -> None:
        """The webhook receiver and Alertmanager, which Prometheus sends its alerts to. Optional
        like the panel: without the binary (not root, no apt) the stack runs on without alerts."""
        try:
            binary = ensure_binary("prometheus-alertmanager", "prometheus-alertmanager")
        except (StackError, subprocess.CalledProcessError, OSError) as exc:
            self._report(f"no Alertmanager, alerts are not sent: {exc}")
            return
        self.with_alertmanager = True
        self.ports["alert-receiver"] = self._port()
        receiver = self.alert_receiver_url
        self._spawn(
            "alert-receiver",
            [sys.executable, "-m", "services.alert_receiver",
             f"--listen=127.0.0.1:{self.ports['alert-receiver']}"],
            ready=partial(check_http, f"{receiver}/healthz"),
            urls={"alerts": f"{receiver}/alerts"},
        )  # fmt: skip
        self.ports["alertmanager"] = port = self._port()
        config_file = self.workdir / "alertmanager.yml"
        template = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        config = alertmanager_config(template, f"{receiver}/webhook")
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        data = self.workdir / "alertmanager-data"
        shutil.rmtree(data, ignore_errors=True)  # silences and notification log start empty
        url = self.alertmanager_url
        self._spawn(
            "alertmanager",
            [binary, f"--config.file={config_file}", f"--storage.path={data}",
             f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="],  # one instance: no gossip port, no wait for peers
            ready=lambda: check_http(f"{url}/-/ready"),
            urls={"ui": url},
        )  # fmt: skip

    def _start_scrape_targets(self, config_file: Path) -> None:
        """The registry's services Prometheus has no static job for (one a user adds with
        ``telemetry new``, say), for its http_sd (``services/scrape_targets.py``); loopback
        targets only: a registration cannot make this Prometheus fetch from another machine."""
        url = self.scrape_targets_url
        self._spawn(
            "scrape-targets",
            [sys.executable, "-m", "services.scrape_targets",
             f"--listen=127.0.0.1:{self.ports['scrape-targets']}", f"--etcd={self.etcd_endpoint}",
             f"--prometheus-config={config_file}", "--loopback-only"],
            ready=partial(check_http, url),
            urls={"targets": url},
        )  # fmt: skip


def _port_open(port: int) -> str | None:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return None if sock.connect_ex(("127.0.0.1", port)) == 0 else f"port {port} closed"
