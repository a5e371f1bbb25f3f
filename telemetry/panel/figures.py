"""Figures for people, and charts whose legends show every series' full name.

Tables keep numbers (they sort), rounded: rates to three significant digits (one decimal at most
below 100, whole numbers above), milliseconds to one decimal, shares as percentages with one
decimal. Text uses the same rounding through :func:`rate_text`, :func:`ms_text` and
:func:`share_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd

__all__ = ["line_chart", "ms", "ms_text", "rate", "rate_text", "share", "share_text"]


def rate(value: float | None) -> float | None:
    """Calls (or cores) per second for a table: 28.6364 -> 28.6, 0.012345 -> 0.0123, 1234.5 -> 1234."""
    if value is None or not math.isfinite(value):
        return value
    if abs(value) >= 100:
        return float(round(value))
    if abs(value) >= 1:
        return round(value, 1)
    return float(f"{value:.3g}")


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds with one decimal: 0.0123456 -> 12.3."""
    if seconds is None or not math.isfinite(seconds):
        return seconds
    return round(seconds * 1000, 1)


def share(ratio: float | None) -> float | None:
    """A ratio (0 to 1) as a percentage with one decimal: 0.01234 -> 1.2."""
    if ratio is None or not math.isfinite(ratio):
        return ratio
    return round(ratio * 100, 1)


def rate_text(value: float | None, unit: str = "calls/s") -> str:
    shown = rate(value)
    if shown is None:
        return "-"
    return f"{shown:,g}{'' if unit.startswith('/') else ' '}{unit}".rstrip()


def ms_text(seconds: float | None) -> str:
    shown = ms(seconds)
    return "-" if shown is None else f"{shown:g} ms"


def share_text(ratio: float | None) -> str:
    shown = share(ratio)
    return "-" if shown is None else f"{shown:g}%"


def line_chart(series: Mapping[str, pd.Series], *, y: str, height: int = 220) -> Any:
    """Time series, one line per name, the legend below the chart with full names (Streamlit's
    own charts put it at the right, where a narrow column cuts it off)."""
    frame = pd.concat(
        [pd.DataFrame({"time": s.index, y: s.to_numpy(), "series": name}) for name, s in series.items()],
        ignore_index=True,
    )
    return (
        alt.Chart(frame)
        .mark_line()
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y(f"{y}:Q", title=y),
            color=alt.Color("series:N", legend=legend()),
            tooltip=["series:N", "time:T", alt.Tooltip(f"{y}:Q", format=",.3~r")],
        )
        .properties(height=height)
    )


def legend(title: str | None = None) -> alt.Legend:
    """Below the chart, names never truncated, as many columns as fit."""
    return alt.Legend(orient="bottom", title=title, labelLimit=0, direction="horizontal")
