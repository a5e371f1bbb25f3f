"""Hostile input against the native demo stack: memory, label sets and the books, measured against
the same stack under normal traffic, in one run.

A fresh native stack (``services/stack.py``: etcd, Prometheus, the span receiver, gateway, order,
2 inventory, payment, recommendation, notification; no load generator, no panel; inventory does
not restock, so the books are exact) is started in a temporary directory. Phases, each sent by
``--threads`` keep-alive HTTP connections:

1. warm-up: ``--warmup`` normal requests (imports, caches and pools settle);
2. normal: ``--requests`` normal requests (``services.hostile.normal_requests``: half orders,
   stock reads, look-ups of unknown orders; 20 users); then, after 2 s, every service's RSS
   (``/proc``, via psutil) and its ``/metrics`` page;
3. hostile: ``--requests`` hostile requests through the gateway (``services.hostile.HTTP_CASES``,
   21 kinds in turn, each varied: oversized fields and bodies, deep JSON, out-of-range numbers,
   duplicate SKUs, spoofed and oversized baggage, malformed trace context and deadlines, rotating
   users, paths and HTTP methods, secrets), ``--raw`` connections of bytes that are not HTTP, and
   ``--grpc`` calls straight to EVERY gRPC instance (``services.hostile.grpc_corpus``: unknown
   methods with distinct names, undecodable messages, rotating baggage users); then RSS and
   ``/metrics`` again;
4. books: both inventory instances' stock is read (``GetStock`` per instance, as ``ops``),
   ``--books`` orders are sent concurrently (a SKU on several lines, one in four refused at payment
   and released by order's compensation), and the stock is read again until it balances
   (initial = remaining + taken by the orders answered 201; up to 15 s).

Figures:

- per service: RSS after the normal phase, after the hostile one, and the difference (goal:
  <= +20 MB); the largest number of series of one metric family, and the most distinct methods
  in one family (goal: <= cap + 1 = 501: the grpc and governance families group methods past
  500 as ``other``), after each phase;
- HTTP: answers by status per kind; 5xx (goal: 0), 4xx without a JSON ``error`` (goal: 0),
  connections closed without an answer (raw bytes only);
- gRPC: status codes per service;
- books: conserved (goal: yes), any SKU negative (goal: no), orders 201 / 400 / other.

    python benchmarks/hostile.py                    # 10,000 + 10,000 requests, about 3 minutes
    python benchmarks/hostile.py --requests 2000 --grpc 600 --books 200    # about 1 minute

Only 127.0.0.1 is contacted; the stack is stopped (also on Ctrl-C or SIGTERM). A table and ONE
JSON line go to stdout, progress to stderr; the exit status is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import psutil
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import command_output, emit_json, print_table, sigterm_as_interrupt

from services import hostile
from services.stack import NativeStack
from telemetry.testing._poll import poll

ROOT = Path(__file__).resolve().parents[1]
RSS_GOAL_MB = 20.0
METHOD_CAP = 500
GRPC_SERVICES = {
    "order": "demoshop.v1.Order", "inventory": "demoshop.v1.Inventory",
    "payment": "demoshop.v1.Payment", "recommendation": "demoshop.v1.Recommendation",
    "notification": "demoshop.v1.Notification",
}  # fmt: skip
_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[hostile {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- traffic ----------------------------------------------------------------------------------------


def send_http(url: str, cases: Iterable[hostile.HttpCase], threads: int) -> list[hostile.Answer]:
    """Every case over ``threads`` keep-alive connections; answers in case order."""
    numbered = list(enumerate(cases))
    target = urlsplit(url)

    def worker(share: list[tuple[int, hostile.HttpCase]]) -> list[tuple[int, hostile.Answer]]:
        client = hostile.HttpClient(target.hostname or "127.0.0.1", target.port or 80)
        try:
            return [(index, client.send(case)) for index, case in share]
        finally:
            client.close()

    with ThreadPoolExecutor(threads) as pool:
        shares = list(pool.map(worker, [numbered[i::threads] for i in range(threads)]))
    pairs = sorted((pair for share in shares for pair in share), key=lambda pair: pair[0])
    return [answer for _, answer in pairs]


def send_grpc(
    stack: NativeStack, calls: int, threads: int, rng: random.Random
) -> dict[str, Counter[str]]:
    """``calls`` hostile calls to every gRPC instance; status codes per instance."""
    codes: dict[str, Counter[str]] = {}
    for name in grpc_instances(stack):
        cases = list(hostile.grpc_corpus(rng, GRPC_SERVICES[name.split("-")[0]], calls))
        address = f"127.0.0.1:{stack.ports[name]}"
        with grpc.insecure_channel(address) as channel, ThreadPoolExecutor(threads) as pool:
            codes[name] = Counter(pool.map(lambda case: hostile.send_grpc(channel, case).name, cases))
    return codes


def grpc_instances(stack: NativeStack) -> list[str]:
    return [*stack.backends, "order"]


def service_instances(stack: NativeStack) -> list[str]:
    return [*stack.backends, "order", "gateway"]


# -- measurements -----------------------------------------------------------------------------------


def rss_mb(stack: NativeStack) -> dict[str, float]:
    out = {}
    for name in service_instances(stack):
        pid = stack.pid(name)
        out[name] = psutil.Process(pid).memory_info().rss / 2**20 if pid else float("nan")
    return out


def series(stack: NativeStack) -> dict[str, dict[str, int]]:
    """Per instance: the most series in one metric family, and the most distinct methods."""
    out = {}
    for name in service_instances(stack):
        with urllib.request.urlopen(stack.metrics_url(name), timeout=10) as response:
            text = response.read().decode()
        most_series, most_methods, families = 0, 0, 0
        for family in text_string_to_metric_families(text):
            families += 1
            most_series = max(most_series, len(family.samples))
            methods = {method_of(dict(s.labels)) for s in family.samples} - {None}
            most_methods = max(most_methods, len(methods))
        out[name] = {"families": families, "max_series": most_series, "max_methods": most_methods,
                     "bytes": len(text)}  # fmt: skip
    return out


def method_of(labels: dict[str, str]) -> object:
    if "grpc_method" in labels:
        return labels.get("grpc_service"), labels["grpc_method"]
    return labels.get("method")


def settle(stack: NativeStack) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    time.sleep(2.0)  # a measurement pause, not a wait for a condition: let in-flight work finish
    return rss_mb(stack), series(stack)


def books(stack: NativeStack, count: int, threads: int, rng: random.Random) -> dict[str, Any]:
    addresses = [f"127.0.0.1:{stack.ports[n]}" for n in stack.backends if n.startswith("inventory")]
    before = hostile.stock_of(addresses)
    orders = list(hostile.books_orders(rng, count))
    answers = send_http(stack.gateway_url, [case for case, _ in orders], threads)
    taken: Counter[str] = Counter()
    for (_, units), answer in zip(orders, answers, strict=True):
        if answer.status == 201:
            taken.update(units)
    statuses = Counter(str(a.status) for a in answers)
    expected = {sku: before[sku] - taken[sku] for sku in hostile.SKUS}
    try:
        after = poll(lambda: hostile.stock_of(addresses), lambda got: got == expected, 15, "balance")
        conserved = True
    except TimeoutError:
        after, conserved = hostile.stock_of(addresses), False
    return {
        "orders": count, "statuses": dict(statuses), "units_taken": sum(taken.values()),
        "conserved": conserved, "negative": any(v < 0 for v in after.values()),
        "ambiguous": sum(n for s, n in statuses.items() if s not in ("201", "400")),
        "before": before, "after": after, "expected": expected,
    }  # fmt: skip


# -- run --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    stack = NativeStack(
        workdir, loadgen=False, panel=False, standard_ports=False, otlp_endpoint=None,
        extra_env={"SHOP_RESTOCK_WHEN_SHORT": "false"},
    )  # fmt: skip
    rng = random.Random(args.seed)
    try:
        started = time.monotonic()
        stack.start()
        log(f"stack up in {time.monotonic() - started:.1f} s ({workdir})")
        url = stack.gateway_url
        send_http(url, hostile.normal_requests(rng, args.warmup), args.threads)
        started = time.monotonic()
        normal = send_http(url, hostile.normal_requests(rng, args.requests), args.threads)
        normal_s = time.monotonic() - started
        log(f"normal: {len(normal)} requests in {normal_s:.1f} s")
        rss_normal, series_normal = settle(stack)

        started = time.monotonic()
        answers = send_http(url, hostile.http_corpus(rng, args.requests), args.threads)
        target = urlsplit(url)
        raw = Counter(
            hostile.send_raw(target.hostname or "127.0.0.1", target.port or 80, payload)
            for _ in range(args.raw) for payload in hostile.RAW_CASES
        )  # fmt: skip
        grpc_codes = send_grpc(stack, args.grpc, args.threads, rng)
        hostile_s = time.monotonic() - started
        grpc_calls = sum(sum(c.values()) for c in grpc_codes.values())
        log(f"hostile: {len(answers)} HTTP, {sum(raw.values())} raw, {grpc_calls} gRPC "
            f"in {hostile_s:.1f} s")  # fmt: skip
        rss_hostile, series_hostile = settle(stack)

        book = books(stack, args.books, args.threads, rng)
        log(f"books: conserved {book['conserved']}, statuses {book['statuses']}")
        restarts = {name: stack.restarts(name) for name in service_instances(stack)}
    finally:
        stack.stop()
    by_kind: dict[str, Counter[str]] = {}
    for answer in answers:
        by_kind.setdefault(answer.kind, Counter())[str(answer.status)] += 1
    return {
        "normal_statuses": dict(Counter(str(a.status) for a in normal)),
        "normal_s": round(normal_s, 1), "hostile_s": round(hostile_s, 1),
        "http_by_kind": {kind: dict(c) for kind, c in sorted(by_kind.items())},
        "http_5xx": sum(1 for a in answers if a.status >= 500),
        "http_no_answer": sum(1 for a in answers if a.status == 0),
        "http_4xx_not_json": sum(1 for a in answers if 400 <= a.status < 500 and not a.json_error),
        "raw": {str(k): v for k, v in raw.items()},
        "raw_5xx": sum(v for k, v in raw.items() if k >= 500),
        "grpc_codes": {name: dict(c) for name, c in grpc_codes.items()},
        "rss_mb": {name: {"normal": round(rss_normal[name], 1), "hostile": round(rss_hostile[name], 1),
                          "delta": round(rss_hostile[name] - rss_normal[name], 1)}
                   for name in rss_normal},
        "series": {name: {"normal": series_normal[name], "hostile": series_hostile[name]}
                   for name in series_normal},
        "books": book, "restarts": restarts,
    }  # fmt: skip


def goals(result: dict[str, Any]) -> dict[str, bool]:
    return {
        "no_5xx": result["http_5xx"] == 0 and result["raw_5xx"] == 0 and result["http_no_answer"] == 0,
        "4xx_are_json": result["http_4xx_not_json"] == 0,
        "rss_within_20mb": all(r["delta"] <= RSS_GOAL_MB for r in result["rss_mb"].values()),
        "methods_within_cap": all(
            s["hostile"]["max_methods"] <= METHOD_CAP + 1 for s in result["series"].values()
        ),
        "books_conserved": result["books"]["conserved"] and not result["books"]["negative"],
        "no_restarts": not any(result["restarts"].values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000, help="per phase (default 10000)")
    parser.add_argument("--warmup", type=int, default=500, help="normal requests first (500)")
    parser.add_argument("--grpc", type=int, default=2_000, help="hostile calls per gRPC instance")
    parser.add_argument("--raw", type=int, default=20, help="rounds of the raw byte cases (20)")
    parser.add_argument("--books", type=int, default=400, help="orders in the books phase (400)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent connections (8)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    if min(args.requests, args.grpc, args.books, args.threads) <= 0 or min(args.warmup, args.raw) < 0:
        parser.error("counts must be > 0")
    workdir = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        with sigterm_as_interrupt():
            result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    met = goals(result)
    rows = []
    for name, rss in result["rss_mb"].items():
        s = result["series"][name]
        rows.append([name, f"{rss['normal']:.1f}", f"{rss['hostile']:.1f}", f"{rss['delta']:+.1f}",
                     f"{s['normal']['max_series']} / {s['hostile']['max_series']}",
                     f"{s['normal']['max_methods']} / {s['hostile']['max_methods']}",
                     f"{s['normal']['bytes'] // 1024} / {s['hostile']['bytes'] // 1024}"])  # fmt: skip
    print_table(
        f"Hostile input on the native stack: {args.requests} normal then {args.requests} hostile "
        f"HTTP requests, {args.grpc} hostile gRPC calls per instance, {args.threads} connections",
        ["service", "RSS normal MB", "RSS hostile MB", "delta MB", "max series/family (n / h)",
         "max methods/family (n / h)", "/metrics KiB (n / h)"],
        rows,
    )  # fmt: skip
    print()
    book = result["books"]
    print(
        f"HTTP hostile: 5xx {result['http_5xx']}, no answer {result['http_no_answer']}, "
        f"4xx without a JSON error {result['http_4xx_not_json']}; raw bytes: {result['raw']}"
    )
    print(
        f"books: {book['orders']} orders {book['statuses']}, {book['units_taken']} units taken, "
        f"conserved {book['conserved']}, negative {book['negative']}"
    )
    print("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    emit_json({
        "benchmark": "hostile",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": command_output(["git", "rev-parse", "--short", "HEAD"]),
        "nproc": int(command_output(["nproc"]) or os.cpu_count() or 0),
        "parameters": vars(args),
        "goals": met,
        **result,
    })  # fmt: skip
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
