"""The native stack: the whole demo on this machine, without Docker, kept running.

    python -m services.stack                 # until Ctrl-C
    python -m services.stack --duration 120  # stops by itself

Starts, on loopback: etcd and Prometheus (Debian's binaries, installed with apt-get when missing and
run as root), an OTLP receiver writing spans to ``<workdir>/spans.jsonl`` (rotated at 50 MiB, two
backups; unless
``OTEL_EXPORTER_OTLP_ENDPOINT`` names a collector), every demo service (two inventory instances by
default: ``instances`` sets how many of each backend) and the load generator. Prometheus runs
``prometheus/prometheus.yml`` and its rules, with the targets rewritten to the local processes. The
control panel (``python -m telemetry.panel``) comes last, when Streamlit is installed (the ``panel``
extra); its password is ``PANEL_PASSWORD`` when set, else a generated one, printed and kept in
``<workdir>/panel-password``. Every URL is printed; each process logs to
``<workdir>/logs/<name>.log``; Ctrl-C or SIGTERM stops everything, in reverse order.

The demo is there to be broken: an operator kills an inventory instance to watch failover, so one
child dying must not stop the others. Once everything is up a supervisor thread polls the children
every 0.2 s; a child that exits without being asked to is reported (stdout and
``<workdir>/logs/stack.log``) and started again with the same argv, ports, env and log file,
after 0.5 s, doubling up to 10 s while it keeps dying (a run of 30 s resets the delay).
Processes are tracked and signalled by PID only, never by name.

Control, from Python (a chaos benchmark drives these): :meth:`NativeStack.kill`,
:meth:`~NativeStack.stop_process` (stop and hold), :meth:`~NativeStack.start_process`,
:meth:`~NativeStack.wait_ready`, :meth:`~NativeStack.restart_etcd` (an outage, or with ``wipe`` a
lost registry), :meth:`~NativeStack.restarts`, :meth:`~NativeStack.pid`. From a shell: every child's
PID is in ``<workdir>/pids/<name>.pid`` while it runs (``kill -9 $(cat ...)``: the supervisor
restarts it), and while ``<workdir>/hold/<name>`` exists the supervisor stops that child (SIGTERM,
SIGKILL after 10 s) and keeps it stopped; removing the file starts it again.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from services.healthcheck import check_grpc, check_http
from telemetry.discovery.backoff import Backoff
from telemetry.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
# The gRPC services order calls; each may run as several instances (``instances``).
BACKEND_SERVICES = ("inventory", "payment", "recommendation", "notification")
DEFAULT_INSTANCES: Mapping[str, int] = {"inventory": 2}
DEFAULT_PORTS = {"gateway": 8080, "prometheus": 9090, "etcd": 2379, "panel": 8501}
SUPERVISE_EVERY = 0.2  # seconds between two looks at the children
HOLD_STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL after this long, for a hold file


class StackError(RuntimeError):
    """The stack could not start, or a control call failed; the message names the process."""


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


class RestartBackoff:
    """How long to wait before restarting a child that exited on its own: ``first``, doubling up to
    ``cap`` while it keeps dying; a child that ran ``reset_after`` seconds before dying was healthy,
    so its next restart waits ``first`` again. ``clock`` is injectable for tests."""

    def __init__(
        self, first: float = 0.5, cap: float = 10.0, reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._backoff = Backoff(first, cap)
        self._reset_after = reset_after
        self._clock = clock
        self._started = clock()

    def started(self) -> None:
        self._started = self._clock()

    def uptime(self) -> float:
        return self._clock() - self._started

    def exited(self) -> float:
        """The delay before the restart of a child that just exited."""
        if self.uptime() >= self._reset_after:
            self._backoff.reset()
        return self._backoff.next()


def describe_exit(returncode: int) -> str:
    """``exited with code 1`` or ``killed by SIGKILL`` (Popen's negative return codes)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


@dataclass
class Process:
    """One child: how to start it (the same argv, env and log file every time) and its state."""

    name: str
    argv: list[str]
    env: dict[str, str]  # on top of os.environ
    log: Path
    ready: Callable[[], str | None]  # None when ready, else why not
    urls: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None  # None while stopped or waiting for a restart
    held: bool = False  # stopped by stop_process; only start_process releases it
    restarts: int = 0  # restarts after exits nobody asked for
    restart_at: float | None = None  # monotonic time of the pending restart
    kill_at: float | None = None  # stop requested (SIGTERM sent): SIGKILL at this monotonic time
    backoff: RestartBackoff = field(default_factory=RestartBackoff)

    @property
    def pid(self) -> int | None:
        """The PID while the child runs (``poll`` reaps it, so the PID is never a stranger's)."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

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
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.pids = workdir / "pids"
        self.holds = workdir / "hold"
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
        self.processes: list[Process] = []
        self.ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}
        self.etcd_endpoint = ""
        self.etcd_data = workdir / "etcd-data"
        self.spans_file: Path | None = None
        self.started_at = 0.0
        # One lock for every child's state: the supervisor and the control calls both change it.
        self._lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> NativeStack:
        for directory in (self.logs, self.pids, self.holds):
            directory.mkdir(parents=True, exist_ok=True)
        # Left by an earlier run: a stale PID names a stranger, a stale hold would stop a child.
        for stale in (*self.pids.iterdir(), *self.holds.iterdir()):
            stale.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        self.started_at = time.time()
        try:
            self._start_etcd()
            self._wait(deadline)
            if self.otlp_endpoint is None:
                self._start_otlp_file()
            for name in (*self.backends, "order", "gateway"):
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
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise_loop, name="stack-supervisor",
                                            daemon=True)  # fmt: skip
        self._supervisor.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop supervising, then SIGTERM everything newest first (load, then services, then etcd);
        SIGKILL stragglers."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        with self._lock:
            for process in reversed(self.processes):
                if process.proc is not None:
                    _terminate(process.proc, timeout)
                self._forget(process)
            self.processes.clear()

    def __enter__(self) -> NativeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control --------------------------------------------------------------------------------

    def process_names(self) -> list[str]:
        """Every child, in start order."""
        with self._lock:
            return [p.name for p in self.processes]

    def pid(self, name: str) -> int | None:
        """``name``'s PID while it runs, else None."""
        with self._lock:
            return self._get(name).pid

    def restarts(self, name: str) -> int:
        """How often the supervisor restarted ``name`` after it exited on its own."""
        with self._lock:
            return self._get(name).restarts

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to ``name`` (by PID); the supervisor restarts it unless it is held."""
        with self._lock:
            process = self._get(name)
            if process.proc is None or process.proc.poll() is not None:
                raise StackError(f"{name} is not running: nothing to signal")
            process.proc.send_signal(sig)

    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM ``name``, wait for it (SIGKILL after ``timeout``) and hold it stopped until
        :meth:`start_process`."""
        with self._lock:
            process = self._get(name)
            process.held = True
            proc = process.proc
            if proc is None or proc.poll() is not None:
                self._forget(process)
                self._report(f"{name} held (it was not running)")
                return
            if process.kill_at is None:
                proc.send_signal(signal.SIGTERM)
                process.kill_at = time.monotonic() + timeout
        # Waited for without the lock: the supervisor keeps looking after the others meanwhile.
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with self._lock:
            if process.proc is proc:
                self._forget(process)
        self._report(f"{name} {describe_exit(proc.returncode)}: stopped on request, held")

    def start_process(self, name: str) -> None:
        """Start a held (or exited) ``name`` again, with the same ports, env and log; releases its
        hold file too. Returns at once: :meth:`wait_ready` waits."""
        with self._lock:
            process = self._get(name)
            process.held = False
            self._hold_file(name).unlink(missing_ok=True)
            if process.pid is not None:
                return  # running, or still stopping: the supervisor starts it once it has exited
            self._forget(process)  # also an exit the supervisor has not seen yet, or a pending restart
            self._launch(process)
            self._report(f"{name} started on request (pid {process.pid})")

    def readiness(self, name: str) -> str | None:
        """None when ``name`` runs and its readiness check passes, else why not (one check)."""
        with self._lock:
            process = self._get(name)
            running = process.pid is not None
        return process.ready() if running else f"{name} is not running"  # checked without the lock

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        """Until ``name``'s readiness check passes; StackError after ``timeout`` or if it is held."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                process = self._get(name)
                if process.held or self._hold_file(name).exists():
                    raise StackError(f"{name} is held: start_process({name!r}) first")
            why = self.readiness(name)
            if why is None:
                return
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready within {timeout:g} s: {why}\n{process.tail()}")
            time.sleep(SUPERVISE_EVERY)

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
    def panel_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['panel']}"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def metrics_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def urls(self) -> list[tuple[str, str]]:
        rows = [(f"{p.name} {what}", url) for p in self.processes for what, url in p.urls.items()]
        if self.spans_file is not None:
            rows.append(("spans (OTLP receiver)", str(self.spans_file)))
        rows.append(("logs", str(self.logs)))
        return rows

    def check_alive(self) -> str | None:
        """None while every started process runs, else which one exited."""
        for process in self.processes:
            if process.proc is not None and process.proc.poll() is not None:
                return f"{process.name} {describe_exit(process.proc.returncode)}:\n{process.tail()}"
        return None

    # -- supervision ----------------------------------------------------------------------------

    def _get(self, name: str) -> Process:
        for process in self.processes:
            if process.name == name:
                return process
        raise StackError(f"no process named {name!r}; the stack runs {[p.name for p in self.processes]}")

    def _hold_file(self, name: str) -> Path:
        return self.holds / name

    def _report(self, message: str) -> None:
        """One line on stderr (a benchmark driving the stack keeps stdout for its figures) and
        in ``logs/stack.log``: what the supervisor saw and did."""
        print(f"stack: {message}", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError), (self.logs / "stack.log").open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")

    def _supervise_loop(self) -> None:
        while not self._stopping.wait(SUPERVISE_EVERY):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for process in self.processes:
                    try:
                        self._supervise(process, now)
                    except Exception as exc:  # the supervisor outlives any one child's trouble
                        self._report(f"supervising {process.name} failed: {exc!r}")

    def _supervise(self, process: Process, now: float) -> None:
        """One look at one child: hold it, notice its exit, or (re)start it when due."""
        if process.held or self._hold_file(process.name).exists():
            self._keep_stopped(process, now)
        elif process.proc is not None:
            if process.proc.poll() is not None:
                self._exited(process, now)
        elif process.restart_at is None or now >= process.restart_at:
            self._restart(process)

    def _keep_stopped(self, process: Process, now: float) -> None:
        """Held: SIGTERM it once, SIGKILL it when it outstays its grace, then forget its PID."""
        proc = process.proc
        if proc is None:
            process.restart_at = None
        elif proc.poll() is not None:
            self._forget(process)
            if not process.held:  # stop_process reports its own stop
                self._report(f"{process.name} {describe_exit(proc.returncode)}: held by "
                             f"{self._hold_file(process.name)}")  # fmt: skip
        elif process.kill_at is None:
            proc.send_signal(signal.SIGTERM)
            process.kill_at = now + HOLD_STOP_TIMEOUT
        elif now >= process.kill_at:
            proc.kill()

    def _exited(self, process: Process, now: float) -> None:
        """It exited while not held: asked to (a hold released while it stopped) starts it at once,
        else report it and restart it after the backoff."""
        assert process.proc is not None
        asked = process.kill_at is not None
        returncode, pid = process.proc.returncode, process.proc.pid
        self._forget(process)
        if asked:
            return
        delay = process.backoff.exited()
        process.restart_at = now + delay
        self._report(f"{process.name} (pid {pid}) {describe_exit(returncode)}; "
                     f"restarting in {delay:g} s")  # fmt: skip

    def _restart(self, process: Process) -> None:
        crashed = process.restart_at is not None
        process.restart_at = None
        try:
            self._launch(process)
        except OSError as exc:  # e.g. the binary went away: try again later, as for a crash
            process.restart_at = time.monotonic() + process.backoff.exited()
            self._report(f"{process.name} could not start: {exc}")
            return
        if crashed:
            process.restarts += 1
            self._report(f"{process.name} restarted (pid {process.pid}, restart {process.restarts})")
        else:
            self._report(f"{process.name} started (pid {process.pid}): hold released")

    def _forget(self, process: Process) -> None:
        """It has exited (or is about to be dropped): no PID, no pending kill or restart."""
        process.proc = None
        process.kill_at = None
        process.restart_at = None
        self.pid_file(process.name).unlink(missing_ok=True)

    def _launch(self, process: Process) -> None:
        """Start ``process`` (appending to its log) and publish its PID for shell users."""
        with process.log.open("ab") as out:
            process.proc = subprocess.Popen(
                process.argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, **process.env},
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops them in order
            )  # fmt: skip
        process.backoff.started()
        pid_file = self.pid_file(process.name)
        partial_file = pid_file.with_suffix(".pid.tmp")
        partial_file.write_text(f"{process.proc.pid}\n")
        partial_file.replace(pid_file)  # atomically: `cat` never sees half a PID

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
        process = Process(name, argv, dict(env or {}), self.log_file(name), ready, urls or {})
        with self._lock:
            self.processes.append(process)
            self._launch(process)
        return process

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

    def _start_otlp_file(self) -> None:
        grpc_port, http_port = self._port(), self._port()
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


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (by PID), then SIGKILL when it has not exited after ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port_open(port: int) -> str | None:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return None if sock.connect_ex(("127.0.0.1", port)) == 0 else f"port {port} closed"


def _print_table(rows: Iterable[tuple[str, str]]) -> None:
    rows = list(rows)
    width = max(len(name) for name, _ in rows)
    for name, url in rows:
        print(f"  {name.ljust(width)}  {url}")


def _shell_path(path: Path) -> str:
    """``path`` as a user pastes it: relative to the current directory when below it, quoted."""
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(Path.cwd())
    return shlex.quote(str(path))


def _print_tips(stack: NativeStack) -> None:
    killed, held = stack.backends[0], stack.backends[1]  # e.g. inventory-1 fails over to inventory-2
    faults = shlex.quote(json.dumps({"*": {"error_rate": 1.0}}))
    print(
        f"\ntry:  curl -s -XPOST {stack.gateway_url}/orders -H 'x-user: ada' "
        '-d \'{"user":"ada","items":[{"sku":"sku-mug","quantity":2}]}\'\n'
        f"      open {stack.prometheus_url}/graph and query "
        "job:grpc_server_handled:rate1m (Grafana and Jaeger come with docker compose)",
    )
    if stack.with_panel:
        print(f"      open {stack.panel_url} (the control panel; password: {stack.panel_password})")
    print(
        f"      kill -9 $(cat {_shell_path(stack.pid_file(killed))})"
        "   # the launcher restarts it (after 0.5 s, doubling to 10 s)\n"
        f"      touch {_shell_path(stack.holds / held)}"
        "   # stops it and keeps it stopped; rm the file to start it again\n"
        f"\netcd endpoint {stack.etcd_endpoint} (discovery, faults and rules), e.g.:\n"
        f"      ETCDCTL_API=3 etcdctl --endpoints {stack.etcd_endpoint} "
        f"put /governance/payment/faults {faults}",
        flush=True,
    )


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
    parts = ["etcd", "Prometheus", f"{len(stack.backends) + 2} services"]  # and order, gateway
    parts += ["load generator"] * stack.with_loadgen + ["panel"] * stack.with_panel
    print(f"starting the native stack ({', '.join(parts)}) ...", flush=True)
    try:
        stack.start()
    except StackError as exc:
        print(f"the stack did not start: {exc}", file=sys.stderr)
        return 1
    print("\nrunning (Ctrl-C stops everything; a child that dies is restarted):")
    _print_table(stack.urls())
    _print_tips(stack)
    # The supervisor keeps the children up; only the clock or a signal ends the launcher.
    ends = time.monotonic() + args.duration if args.duration else None
    while not stop.wait(1.0):
        if ends is not None and time.monotonic() >= ends:
            break
    print("stopping ...", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
