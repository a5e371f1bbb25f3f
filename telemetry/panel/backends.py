"""What every part of the page works with: the settings and the clients of etcd, Prometheus and
Grafana. Its own module so that the page (:mod:`ui`) and its tabs (:mod:`views`, :mod:`forms`,
:mod:`thresholds_tab`) all depend on it, and not on each other."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry.discovery.etcd import EtcdClient, EtcdError
from telemetry.panel.annotations import GrafanaAnnotator
from telemetry.panel.control_plane import ControlPlane
from telemetry.panel.follower import ThresholdFollower
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus
from telemetry.panel.settings import PanelSettings

__all__ = ["Panel"]


@dataclass(frozen=True)
class Panel:
    """What every part of the page works with (one per panel process, shared by sessions)."""

    settings: PanelSettings
    plane: ControlPlane
    live: LiveQueries
    follower: ThresholdFollower
    annotator: GrafanaAnnotator | None

    @classmethod
    def open(cls, settings: PanelSettings) -> Panel:
        """Connect to the backends and start the threshold follower (:meth:`close` stops it)."""
        annotator = None
        if settings.grafana_url:
            annotator = GrafanaAnnotator(
                settings.grafana_url,
                token=settings.grafana_token,
                basic_auth=settings.grafana_basic_auth,
            )
        plane = ControlPlane(EtcdClient(settings.etcd), on_change=annotator)
        live = LiveQueries(Prometheus(settings.prometheus_url), service_label=settings.service_label)
        follower = ThresholdFollower(plane, live, minutes=settings.window_minutes).start()
        return cls(settings, plane, live, follower, annotator)

    def etcd_problem(self) -> str | None:
        try:
            self.plane.client.revision("/governance/")
        except EtcdError as exc:
            return f"etcd ({', '.join(self.settings.etcd.endpoints)}) is unreachable: {exc}"
        return None

    def prometheus_problem(self) -> str | None:
        return self.live.prometheus.healthy()

    def close(self) -> None:
        self.follower.stop()
        self.plane.client.close()
