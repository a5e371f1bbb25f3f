"""The panel's figures for people: rates to 3 significant digits (1 decimal at most), ms to one
decimal, shares as percentages."""

from __future__ import annotations

import math

import pytest

from telemetry.panel import figures


@pytest.mark.parametrize(
    ("value", "shown"),
    [(28.6364, 28.6), (0.012345, 0.0123), (1234.5, 1234.0), (99.96, 100.0), (5.0, 5.0), (0.0, 0.0)],
)
def test_rates_are_rounded_for_people(value: float, shown: float) -> None:
    assert figures.rate(value) == shown


def test_ms_shares_and_text() -> None:
    assert figures.ms(0.0123456) == 12.3
    assert figures.share(0.01234) == 1.2
    assert figures.rate_text(28.6364) == "28.6 calls/s"
    assert figures.rate_text(1234.5) == "1,234 calls/s"
    assert figures.rate_text(60.0, "/s") == "60/s"
    assert figures.ms_text(0.25) == "250 ms"
    assert figures.share_text(0.5) == "50%"
    assert figures.rate_text(None) == "-" and figures.rate(None) is None
    assert math.isnan(figures.rate(math.nan) or 0.0)
