"""Brownout: refuse a set share of a method's calls, on purpose.

An operator's lever for planned degradation: shed a fixed share of a non-critical method's calls
(recommendations during a sale) before overload forces worse choices, or rehearse how callers cope
with refusals. Klein et al., "Brownout: Building More Robust Cloud Applications" (ICSE 2014), turn
optional work down under load the same way; Envoy's fault filter aborts a percentage of requests
(``abort.percentage``). A refused call gets RESOURCE_EXHAUSTED with a one-second retry pushback,
or the method's fallback (``on: [limit]``).

It is also the worked example of adding a mechanism (docs/governance.md): this module (the
algorithm, which is its own gate), :class:`~telemetry.governance.rules.BrownoutRule` in the rules
model, and one line in ``telemetry.governance.registry``.
"""

from __future__ import annotations

from telemetry.governance._types import RandomSource, default_random
from telemetry.governance.gate import PASS, Admitted, BuildContext, CallEnv
from telemetry.governance.rules import BrownoutRule

__all__ = ["Brownout", "build"]


class Brownout:
    """Refuses each call with probability ``share`` (0 to 1)."""

    __slots__ = ("_random", "share")

    def __init__(self, share: float, random: RandomSource = default_random) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share!r}")
        self.share = share
        self._random = random

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        return None if self._random() < self.share else PASS

    def refusal(self) -> tuple[str, float | None]:
        return f"{self.share:.0%} of calls", 1.0


def build(rule: BrownoutRule, context: BuildContext) -> Brownout:
    return Brownout(rule.share, context.random)
