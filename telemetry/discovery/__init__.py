"""Service discovery over etcd: registration, a watch cache, balancers and balanced channels.

Usually reached through :class:`telemetry.Telemetry` (``init(..., etcd=...)``,
``tel.register(address)``, ``tel.channel("service-name")``); the parts are usable on their own.
"""

from telemetry.discovery.aio_service_channel import AioServiceChannel
from telemetry.discovery.balancer import BALANCERS, Balancer, build_balancer, route
from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdConfig, EtcdError
from telemetry.discovery.instance import Instance
from telemetry.discovery.instance_pool import InstanceSource
from telemetry.discovery.node import Discovery
from telemetry.discovery.registry import Registration
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.discovery.watch import PrefixWatcher

__all__ = [
    "BALANCERS", "AioServiceChannel", "Balancer", "Discovery", "EtcdClient", "EtcdConfig",
    "EtcdError", "Instance", "InstanceSource", "PrefixWatcher", "Registration", "ServiceChannel",
    "ServiceDirectory", "build_balancer", "route",
]  # fmt: skip
