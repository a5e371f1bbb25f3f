"""The overhead benchmark's report: per workload, load and mode the rate, its ratio to bare with the
interquartile range, and the CPU each mode adds; the table and ONE JSON line.
``overhead.py`` is the entry point."""

from __future__ import annotations

from typing import Any

from _common import emit_json, median, print_table
from _overhead_modes import CONCURRENCY, STREAM_MESSAGES
from _overhead_run import Samples


def summarise(
    samples: Samples, modes: tuple[str, ...], workloads: tuple[str, ...]
) -> tuple[list[list[str]], dict[str, Any]]:
    rows: list[list[str]] = []
    figures: dict[str, Any] = {}
    for workload in workloads:
        streaming = not workload.endswith("unary")
        rate_key = "messages_per_second" if streaming else "calls_per_second"
        figures[workload] = {}
        for concurrency in CONCURRENCY:
            label = "sequential" if concurrency == 1 else f"{concurrency}_clients"
            bare_slices = [
                b for m in modes if m != "bare" for _, b in samples[(workload, m, concurrency)]
            ]
            bare = {key: median([b[key] for b in bare_slices]) for key in bare_slices[0]}
            rows.append([workload, label, "bare", f"{bare[rate_key]:.0f}", "100%", "",
                         f"{bare['server_cpu_us']:.1f}", f"{bare['client_cpu_us']:.1f}"])  # fmt: skip
            entry: dict[str, Any] = {"bare": {k: round(v, 1) for k, v in bare.items()}}
            for mode in modes:
                if mode == "bare":
                    continue
                pairs = samples[(workload, mode, concurrency)]
                ratios = sorted(m[rate_key] / b[rate_key] for m, b in pairs)
                quartiles = (ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4])
                added = {
                    side: median([m[f"{side}_cpu_us"] - b[f"{side}_cpu_us"] for m, b in pairs])
                    for side in ("server", "client")
                }
                rate = median([m[rate_key] for m, _ in pairs])
                rows.append([workload, label, mode, f"{rate:.0f}", f"{median(ratios):.1%}",
                             f"{quartiles[0]:.0%}-{quartiles[1]:.0%}", f"{added['server']:+.1f}",
                             f"{added['client']:+.1f}"])  # fmt: skip
                entry[mode] = {
                    rate_key: round(rate),
                    "ratio_to_bare": round(median(ratios), 3),
                    "ratio_iqr": [round(q, 3) for q in quartiles],
                    "server_cpu_us_added": round(added["server"], 2),
                    "client_cpu_us_added": round(added["client"], 2),
                }
            figures[workload][label] = entry
    return rows, figures


def report(
    result: dict[str, Any],
    modes: tuple[str, ...],
    workloads: tuple[str, ...],
    *,
    slices: int,
    seconds: float,
    pair_count: int,
    cpus: tuple[int, int],
) -> None:
    """The table, the sink's and the access log's counts, then ONE JSON line of figures."""
    rows, figures = summarise(result["samples"], modes, workloads)
    print_table(
        "Over loopback, server and client in separate processes. 'rate': calls/s for unary,\n"
        f"messages/s for streams ({STREAM_MESSAGES} per call). 'vs bare': median ratio of a mode's\n"
        "slice to the bare slices either side of it (interquartile range beside it). CPU:\n"
        "microseconds per call (unary) or per message (streams), for bare, then what each mode\n"
        "adds (median difference). "
        + (f"Servers on CPU {cpus[0]}, clients on CPU {cpus[1]}." if cpus[0] >= 0 else "Not pinned."),
        ["workload", "load", "mode", "rate", "vs bare", "ratio IQR", "server cpu us", "client cpu us"],
        rows,
    )
    print(
        f"\nspan batches received by the sink: {result['sink_batches']}; "
        f"access-log lines written in full mode: {result['full_log_lines']}"
    )
    emit_json(
        {
            "benchmark": "overhead",
            "slices": slices,
            "slice_seconds": seconds,
            "pairs": pair_count,
            "pinned_cpus": list(cpus) if cpus[0] >= 0 else None,
            "stream_messages": STREAM_MESSAGES,
            "workloads": figures,
        }
    )
