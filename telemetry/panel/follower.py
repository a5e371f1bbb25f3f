"""The automatic rate limit: every ``interval`` seconds, for each service whose ``autolimit`` is on,
recommend a limit from its live load curve and write it (clamped, with hysteresis) as the
cluster-wide limit, through the audited control plane.

One follower runs in the panel's server process (not per browser session), so the limit keeps
following while nobody has the panel open. Run one panel per etcd cluster: two followers would
both write (harmlessly, the same value, but twice in the audit trail).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from telemetry.control.cluster_limits import CLUSTER, parse_cluster
from telemetry.governance.rules import RuleError
from telemetry.panel.autolimit import parse_autolimit
from telemetry.panel.control_plane import AUTOLIMIT, Change, ControlPlane
from telemetry.panel.controls import set_cluster_limit
from telemetry.panel.live import LiveQueries
from telemetry.panel.thresholds import Recommendation, follow_step, recommend_limit

__all__ = ["FOLLOWER_ACTOR", "FollowResult", "ThresholdFollower"]

_log = logging.getLogger("telemetry.panel")

FOLLOWER_ACTOR = "auto-threshold"


@dataclass(frozen=True, slots=True)
class FollowResult:
    service: str
    recommendation: Recommendation
    change: Change | None
    """The change written, None when the limit stayed (no knee, or within the hysteresis)."""


class ThresholdFollower:
    def __init__(
        self, plane: ControlPlane, live: LiveQueries, *, minutes: int = 15, interval: float = 30.0
    ) -> None:
        self.plane = plane
        self.live = live
        self.minutes = minutes
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict[str, FollowResult] = {}

    def step(self) -> list[FollowResult]:
        """One pass over every service with ``autolimit`` on. Raises what etcd/Prometheus raise."""
        results = []
        for service in self.plane.services():
            raw, _ = self.plane.read(service, AUTOLIMIT)
            try:
                setting = parse_autolimit(raw)
            except ValueError as exc:
                _log.warning("autolimit of %s is invalid, not following: %s", service, exc)
                continue
            if not setting.enabled:
                continue
            recommendation = recommend_limit(self.live.load_curve(service, self.minutes))
            cluster, _ = self.plane.read(service, CLUSTER)
            try:
                current = parse_cluster(cluster).get(setting.pattern) if cluster else None
            except RuleError:  # the control plane refuses such a write; someone bypassed it
                current = None
            new = follow_step(
                None if current is None else current.total,
                recommendation,
                minimum=setting.minimum,
                maximum=setting.maximum,
            )
            change = None
            if new is not None:
                change = self.plane.update(
                    service,
                    CLUSTER,
                    # The burst set with the limit (a capacity test's, say) stays.
                    set_cluster_limit(setting.pattern, new, None if current is None else current.burst),
                    actor=FOLLOWER_ACTOR,
                    reason=recommendation.reason,
                )
            result = FollowResult(service, recommendation, change if change and change.written else None)
            self.last[service] = result
            results.append(result)
        return results

    def start(self) -> ThresholdFollower:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="threshold-follower", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception as exc:  # etcd or Prometheus away: try again next interval
                _log.warning("threshold follower: %s", exc)
