"""The native stack: the whole demo on this machine, without Docker, kept running.

    python -m services.stack                 # until Ctrl-C
    python -m services.stack --duration 120  # stops by itself

Starts, on loopback: etcd, Redis (cluster rate limits; optional) and Prometheus (Debian's binaries,
installed with apt-get when missing and run as root), an OTLP receiver writing spans to
``<workdir>/spans.jsonl`` (rotated at 50 MiB, two backups; unless ``OTEL_EXPORTER_OTLP_ENDPOINT``
names a collector), every demo service (two inventory instances by
default: ``instances`` sets how many of each backend) and the load generator. Prometheus runs
``prometheus/prometheus.yml`` and its rules, with the targets rewritten to the local processes;
any other service registered in etcd (a ``telemetry new`` project started by hand) is scraped too,
found by ``services/scrape_targets.py`` (``scrape-targets``, Prometheus's http_sd). Its alerts go to
Alertmanager (Debian's ``prometheus-alertmanager``, installed like Prometheus; without it the stack
runs on without alerts) with ``alertmanager/alertmanager.yml``, whose webhook is the stack's
``services/alert_receiver.py``: ``GET <alert-receiver>/alerts`` lists the notifications. The OTLP
receiver takes 4317/4318 when free, the SDK's default endpoint, like etcd 2379. The
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
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from services.stack_components import (
    ALERTMANAGER_CONFIG,
    BACKEND_SERVICES,
    DEFAULT_INSTANCES,
    DEFAULT_PORTS,
    PROMETHEUS_CONFIG,
    NativeStack,
    alertmanager_config,
    ensure_binary,
    instance_names,
    prometheus_config,
)
from services.stack_supervision import (
    HOLD_STOP_TIMEOUT,
    ROOT,
    SUPERVISE_EVERY,
    Process,
    RestartBackoff,
    StackError,
    Supervisor,
    describe_exit,
)

# The launcher's own job is the command line; the parts and the supervision live beside it and
# stay importable from here (``from services.stack import NativeStack``).
__all__ = [
    "ALERTMANAGER_CONFIG",
    "BACKEND_SERVICES",
    "DEFAULT_INSTANCES",
    "DEFAULT_PORTS",
    "HOLD_STOP_TIMEOUT",
    "PROMETHEUS_CONFIG",
    "ROOT",
    "SUPERVISE_EVERY",
    "NativeStack",
    "Process",
    "RestartBackoff",
    "StackError",
    "Supervisor",
    "alertmanager_config",
    "describe_exit",
    "ensure_binary",
    "instance_names",
    "main",
    "prometheus_config",
]


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
    if stack.with_alertmanager:
        print(f"      curl -s {stack.alert_receiver_url}/alerts   # the alerts Alertmanager sent "
              f"(its UI: {stack.alertmanager_url})")  # fmt: skip
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
    )
    print(
        "\na service of your own joins it (registered, in the panel, scraped and traced by itself):\n"
        "      telemetry new shop --proto services/protos/demoshop.proto --out /tmp/x\n"
        f"      ETCD_ENDPOINTS={stack.etcd_endpoint} OTEL_EXPORTER_OTLP_ENDPOINT={stack.otlp_endpoint} "
        + (f"TELEMETRY_REDIS_URL={stack.redis_url} " if stack.redis_url else "")
        + "python /tmp/x/shop/main.py",
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
    # "N services": the backends plus order and gateway.
    parts = ["etcd", "Prometheus", "Alertmanager", f"{len(stack.backends) + 2} services"]
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
