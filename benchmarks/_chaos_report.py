"""The chaos benchmark's report: the table rows, one comparison line per scenario (governed, or
no_deferral, against ungoverned) and a chart per scenario. ``chaos.py`` is the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _chaos_scenarios import MODES, NO_DEFERRAL, Phases, Scenario
from _chaos_traffic import TIMEOUT_MS
from chaos_analysis import Bin, Record, bins

COLOURS = {"governed": "#1f77b4", "ungoverned": "#d62728", NO_DEFERRAL: "#2a9d8f"}


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:g}{unit}" if isinstance(value, float | int) else str(value)


def _recovery(figures: dict[str, Any]) -> str:
    value = figures.get("recovery_s")
    return "never" if value is None else f"{value:g}"


def table_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, entry in results.items():
        for mode in entry.get("order", MODES):
            f = entry.get(mode)
            if f is None:
                continue
            if "error" in f:
                rows.append(
                    [name, mode, "error: " + f["error"].splitlines()[0][:60], "", "", "", "", ""]
                )
                continue
            hops = f["amplification_hops"]
            worst = max((h for h in hops if hops[h] is not None), key=lambda h: hops[h], default=None)
            rows.append([
                name, mode, f"{f['failed_during']}/{f['sent_during']}",
                f"{f['failed_after']}/{f['sent_after']}", _recovery(f), _fmt(f["p99_ok_ms"]),
                _fmt(f["p99_ok_during_ms"]),
                "-" if worst is None else f"{hops[worst]:g} ({worst})",
            ])  # fmt: skip
    return rows


def comparison(name: str, entry: dict[str, Any], mode: str = "governed") -> str:
    g, u = entry.get(mode), entry.get("ungoverned")
    if not g or not u or "error" in g or "error" in u:
        return f"{name}: no comparison (a run failed)"
    return (
        f"{name}: {mode} vs ungoverned: failed during {g['failed_during']} vs {u['failed_during']}"
        f" (of {g['sent_during']} / {u['sent_during']}), after {g['failed_after']} vs "
        f"{u['failed_after']}, recovery {_recovery(g)} vs {_recovery(u)} s, p99 during fault "
        f"{_fmt(g['p99_ok_during_ms'])} vs {_fmt(u['p99_ok_during_ms'])} ms, amplification "
        f"{_fmt(g['amplification'])} vs {_fmt(u['amplification'])}"
    )


def chart(
    path: Path, scenario: Scenario, phases: Phases, runs: dict[str, tuple[dict[str, Any], list[Record]]]
) -> None:
    """Success rate and p99 latency per 1 s bin, both modes, the fault window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 6.5), height_ratios=(1, 1))
    start, end = -phases.warmup, phases.fault + phases.after
    subtitle = []
    for mode in (*MODES, NO_DEFERRAL):
        if mode not in runs:
            continue
        figures, records = runs[mode]
        series: list[Bin] = bins(records, start, end, 1.0)
        xs = [b.start + 0.5 for b in series]
        rates = [None if b.success_rate is None else 100 * b.success_rate for b in series]
        colour = COLOURS[mode]
        top.plot(xs, [float("nan") if r is None else r for r in rates], color=colour, lw=1.6,
                 marker=".", ms=4, label=mode)  # fmt: skip
        bottom.plot(xs, [float("nan") if b.p99_ok_ms is None else b.p99_ok_ms for b in series],
                    color=colour, lw=1.4, marker=".", ms=4, label=mode)  # fmt: skip
        recovery = figures.get("recovery_s")
        if recovery is not None and recovery > 0:
            for axis in (top, bottom):
                axis.axvline(phases.fault + recovery, color=colour, ls="--", lw=1)
        subtitle.append(
            f"{mode}: failed {figures['failed_during']}/{figures['sent_during']} during, "
            f"{figures['failed_after']}/{figures['sent_after']} after, recovery "
            f"{'never' if recovery is None else f'{recovery:g} s'}, "
            f"p99 during {_fmt(figures['p99_ok_during_ms'])} ms, amp {_fmt(figures['amplification'])}"
        )
    for axis in (top, bottom):
        axis.axvspan(0, phases.fault, color="#f4a261", alpha=0.25, lw=0)
        axis.grid(True, alpha=0.3)
    top.text(phases.fault / 2, 103, "fault", ha="center", va="bottom", fontsize=9, color="#b5651d")
    top.set_ylim(-3, 112)
    top.set_ylabel("orders OK per 1 s bin (%)")
    top.axhline(95, color="grey", ls=":", lw=1, label="95% (recovery threshold)")
    top.legend(loc="lower left", fontsize=8)
    bottom.set_yscale("log")
    bottom.axhline(TIMEOUT_MS, color="grey", ls=":", lw=1, label="request timeout")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.set_ylabel("p99 of OK orders (ms, log)")
    bottom.set_xlabel("seconds since the fault started (by send time; dashed: recovered)")
    bottom.set_xlim(start, end)
    fig.suptitle(f"{scenario.name}: {scenario.description}\n" + "\n".join(subtitle), fontsize=9.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
