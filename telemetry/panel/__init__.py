"""The control panel: a Streamlit app over etcd and Prometheus that shows every service live (CPU,
latency, instances, breakers, limits, which rules each instance applied) and changes governance at
runtime (limits, breakers, degradation, adaptive limiter, faults, sampling, dynamic thresholds),
every change validated, audited in etcd and confirmed per instance.

    pip install 'telemetry[panel,etcd]'
    ETCD_ENDPOINTS=127.0.0.1:2379 PROMETHEUS_URL=http://127.0.0.1:9090 PANEL_PASSWORD_FILE=... \\
        python -m telemetry.panel --server.port 8501

The parts below the page need no Streamlit and serve scripts as well as the panel:
:class:`ControlPlane` (audited, validated writes; rollout status), :mod:`controls` (transforms of
one control key), :func:`recommend_limit` (the knee of the load curve), :class:`SignInGuard`
(delays and lockouts against password guessing).
"""

from telemetry.panel.autolimit import AutoLimit, parse_autolimit
from telemetry.panel.control_plane import (
    AUDIT_PREFIX,
    Change,
    ConflictError,
    ControlPlane,
    InstanceRollout,
    Rollout,
    validate,
)
from telemetry.panel.prometheus import Prometheus, PrometheusError
from telemetry.panel.settings import PanelSettings
from telemetry.panel.signin import SignInGuard, SignInPolicy
from telemetry.panel.thresholds import LoadPoint, Recommendation, follow_step, recommend_limit

__all__ = [
    "AUDIT_PREFIX",
    "AutoLimit",
    "Change",
    "ConflictError",
    "ControlPlane",
    "InstanceRollout",
    "LoadPoint",
    "PanelSettings",
    "Prometheus",
    "PrometheusError",
    "Recommendation",
    "Rollout",
    "SignInGuard",
    "SignInPolicy",
    "follow_step",
    "parse_autolimit",
    "recommend_limit",
    "validate",
]
