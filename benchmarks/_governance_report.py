"""The governance benchmark's report: the decision-cost table, the notes, the breaker-scaling
table, the targets and ONE JSON line. ``governance.py`` is the entry point."""

from __future__ import annotations

from typing import Any

from _common import emit_json, print_table
from _governance_timing import SCALING_TARGET, THREADS, Mechanism


def _fmt_ns(ns: float) -> str:
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def report(
    mechanisms: list[Mechanism], scaled: dict[str, dict[int, float]] | None, calls: int, repeats: int
) -> None:
    rows: list[list[str]] = []
    figures: dict[str, dict[str, float]] = {}
    target_met: dict[str, bool] = {}
    misses: list[str] = []
    for mechanism in mechanisms:
        ours = mechanism.ours.ns
        figures[mechanism.key] = {}
        for index, impl in enumerate(mechanism.impls):
            ratio = "" if index == 0 else f"{impl.ns / ours:.2f}" if ours > 0 else "inf"
            rows.append([mechanism.key if index == 0 else "", impl.label, _fmt_ns(impl.ns), ratio])
            figures[mechanism.key][impl.key] = round(impl.ns, 1)
        if mechanism.peers:
            fastest = min(mechanism.peers, key=lambda i: i.ns)
            met = ours <= fastest.ns
            target_met[mechanism.key] = met
            if not met:
                misses.append(
                    f"{mechanism.key}: ours {ours:.0f} ns vs {fastest.label} {fastest.ns:.0f} ns "
                    f"({ours / fastest.ns:.2f}x slower)"
                )
    print_table(
        f"Decision cost, ns per call (median of {repeats} repeats of {calls:,} calls, empty loop "
        "subtracted).\n'vs ours' = peer / ours: > 1 means ours is faster.",
        ["mechanism", "implementation", "ns/call", "vs ours"],
        rows,
    )
    notes = [f"  {m.key}: {m.note}" for m in mechanisms if m.note]
    if notes:
        print("\nNotes:")
        print("\n".join(notes))

    out: dict[str, Any] = {
        "benchmark": "governance",
        "calls": calls,
        "repeats": repeats,
        "mechanisms": figures,
    }
    if scaled is not None:
        scale_rows = [
            [
                str(t),
                *(f"{scaled[i][t]:,.0f}" for i in scaled),
                f"{scaled['ours'][t] / scaled['pybreaker'][t]:.1f}x",
            ]
            for t in THREADS
        ]
        print_table(
            "Breaker scaling: calls/s through ONE breaker, each call sleeping 1 ms (GIL released).",
            ["threads", *scaled, "ours / pybreaker"],
            scale_rows,
        )
        top = THREADS[-1]
        vs_peer = scaled["ours"][top] / scaled["pybreaker"][top]
        kept = scaled["ours"][top] / scaled["bare"][top]
        ours_gain = scaled["ours"][top] / scaled["ours"][1]
        peer_gain = scaled["pybreaker"][top] / scaled["pybreaker"][1]
        print(
            f"\nAt {top} threads: ours {vs_peer:.1f}x pybreaker; ours keeps {kept:.0%} of bare "
            f"(target >= {SCALING_TARGET:.0%}); from 1 to {top} threads ours scales {ours_gain:.1f}x, "
            f"pybreaker {peer_gain:.1f}x."
        )
        met = kept >= SCALING_TARGET
        target_met["breaker_scaling"] = met
        if not met:
            misses.append(f"breaker_scaling: ours keeps {kept:.0%} of bare at {top} threads")
        out["breaker_scaling"] = {
            i: {str(t): round(v, 1) for t, v in by.items()} for i, by in scaled.items()
        }
    print("\nTargets: " + ("all met" if not misses else "MISSED:\n  " + "\n  ".join(misses)))
    out["target_met"] = target_met
    emit_json(out)
