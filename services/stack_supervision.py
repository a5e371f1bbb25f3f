"""The native stack's process supervision: children started, watched, restarted, held and stopped.

A :class:`Supervisor` knows nothing of what its children are (``services/stack_components.py``
defines the demo's parts on top of it). Once started, a thread polls the children every 0.2 s; a
child that exits without being asked to is reported (stderr and ``<workdir>/logs/stack.log``) and
started again with the same argv, env and log file, after 0.5 s, doubling up to 10 s while it keeps
dying (a run of 30 s resets the delay). Processes are tracked and signalled by PID only, never by
name: every child's PID is in ``<workdir>/pids/<name>.pid`` while it runs, and while
``<workdir>/hold/<name>`` exists the supervisor stops that child (SIGTERM, SIGKILL after 10 s) and
keeps it stopped; removing the file starts it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from telemetry.discovery.backoff import Backoff

ROOT = Path(__file__).resolve().parents[1]
SUPERVISE_EVERY = 0.2  # seconds between two looks at the children
HOLD_STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL after this long, for a hold file


class StackError(RuntimeError):
    """The stack could not start, or a control call failed; the message names the process."""


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


class Supervisor:
    """The children of one stack under ``workdir``: spawned with :meth:`_spawn`, waited for with
    :meth:`_wait`, watched by a thread from :meth:`_start_supervising` to :meth:`stop`; in between
    the control methods stop, start and kill them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.pids = workdir / "pids"
        self.holds = workdir / "hold"
        self.processes: list[Process] = []
        # One lock for every child's state: the supervisor and the control calls both change it.
        self._lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        for directory in (self.logs, self.pids, self.holds):
            directory.mkdir(parents=True, exist_ok=True)
        # Left by an earlier run: a stale PID names a stranger, a stale hold would stop a child.
        for stale in (*self.pids.iterdir(), *self.holds.iterdir()):
            stale.unlink(missing_ok=True)

    def _start_supervising(self) -> None:
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise_loop, name="stack-supervisor",
                                            daemon=True)  # fmt: skip
        self._supervisor.start()

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

    # -- what is running ------------------------------------------------------------------------

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

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

    # -- starting children ----------------------------------------------------------------------

    def _spawn(
        self, name: str, argv: list[str], ready: Callable[[], str | None],
        env: dict[str, str] | None = None, urls: dict[str, str] | None = None,
    ) -> Process:  # fmt: skip
        process = Process(name, argv, dict(env or {}), self.log_file(name), ready, urls or {})
        with self._lock:
            self.processes.append(process)
            self._launch(process)
        return process

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
