"""Instrumented channels: to one address (sync or grpc.aio, calls skip grpc's interceptor
machinery: telemetry.rpc.channel, telemetry.rpc.aio_channel), or, with etcd, to every live
instance of a service by its bare name, balanced (telemetry.discovery.balanced)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeAlias

import grpc
import grpc.aio

from telemetry.config import ConfigError
from telemetry.discovery.aio_service_channel import AioServiceChannel
from telemetry.discovery.balancer import build_balancer
from telemetry.discovery.node import Discovery
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.factories.chains import ConcernChains
from telemetry.governance.engine import Governance
from telemetry.rpc.aio_channel import InstrumentedAioChannel
from telemetry.rpc.aio_client import AioClientInterceptor
from telemetry.rpc.channel import InstrumentedChannel
from telemetry.rpc.client import ClientInterceptor

__all__ = ["Channels"]

Options: TypeAlias = Sequence[tuple[str, Any]]
Credentials: TypeAlias = grpc.ChannelCredentials | None


class Channels:
    def __init__(
        self, chains: ConcernChains, discovery: Discovery | None, governance: Governance | None
    ) -> None:
        self.chains = chains
        self.discovery = discovery
        self.governance = governance

    def channel(
        self,
        target: str,
        *,
        credentials: Credentials = None,
        options: Options = (),
        interceptors: Sequence[Any] = (),
        **select: bool,
    ) -> grpc.Channel:
        if self._is_service_name(target):
            return self.service_channel(target, credentials=credentials, options=options,
                                        interceptors=interceptors, select=select)  # fmt: skip
        if credentials is not None:
            channel = grpc.secure_channel(target, credentials, options=list(options))
        else:
            channel = grpc.insecure_channel(target, options=list(options))
        if interceptors:
            channel = grpc.intercept_channel(channel, *interceptors)
        deferral = self._deferral_channel(target, credentials, options)
        runner = ClientInterceptor(self.chains.client(target, channel=deferral, **select), target)
        return InstrumentedChannel(channel, runner)

    def aio_channel(
        self,
        target: str,
        *,
        credentials: Credentials = None,
        options: Options = (),
        interceptors: Sequence[Any] = (),
        **select: bool,
    ) -> grpc.aio.Channel:
        if self._is_service_name(target):
            return self.aio_service_channel(target, credentials=credentials, options=options,
                                            interceptors=interceptors, select=select)  # fmt: skip
        deferral = self._deferral_channel(target, credentials, options)
        core = AioClientInterceptor(self.chains.client(target, channel=deferral, **select), target)
        # The caller's own interceptors, if any, run after the chain.
        chain = list(interceptors) or None
        if credentials is not None:
            channel = grpc.aio.secure_channel(
                target, credentials, options=list(options), interceptors=chain
            )
        else:
            channel = grpc.aio.insecure_channel(target, options=list(options), interceptors=chain)
        return InstrumentedAioChannel(channel, core)

    def service_channel(
        self, service: str, *, balancer: str = "p2c", credentials: Credentials = None,
        options: Options = (), interceptors: Sequence[Any] = (),
        select: Mapping[str, bool] | None = None,
    ) -> ServiceChannel:  # fmt: skip
        return ServiceChannel(**self._balanced(
            service, balancer, self.channel, credentials, options, interceptors, select
        ))  # fmt: skip

    def aio_service_channel(
        self, service: str, *, balancer: str = "p2c", credentials: Credentials = None,
        options: Options = (), interceptors: Sequence[Any] = (),
        select: Mapping[str, bool] | None = None,
    ) -> AioServiceChannel:  # fmt: skip
        return AioServiceChannel(**self._balanced(
            service, balancer, self.aio_channel, credentials, options, interceptors, select
        ))  # fmt: skip

    def _is_service_name(self, target: str) -> bool:
        return self.discovery is not None and ":" not in target and "/" not in target

    def _balanced(
        self, service: str, balancer: str, make_one: Callable[..., Any], credentials: Credentials,
        options: Options, interceptors: Sequence[Any], select: Mapping[str, bool] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """A service channel's arguments; ``make_one`` (channel or aio_channel) makes the
        channel of each instance, with the same credentials, options and concerns."""
        if self.discovery is None:
            raise ConfigError(f"a channel to service {service!r} needs etcd: init(..., etcd=...)")
        chosen = dict(select or {})
        governance = self.governance if chosen.get("governance", True) else None
        # One retry layer: the balanced channel retries (on another instance), with governance's
        # plan for the service when it has one; the instance channels never retry themselves.
        return {
            "service": service,
            "source": self.discovery.directory,
            "balancer": build_balancer(balancer),
            "make_channel": partial(make_one, credentials=credentials, options=options,
                                    interceptors=interceptors, **{**chosen, "retries": False}),
            "retry_plans": (
                None if governance is None
                else lambda method: governance.retry_plan(method, service)
            ),
        }  # fmt: skip

    def _deferral_channel(
        self, target: str, credentials: Credentials, options: Options
    ) -> Callable[[], grpc.Channel] | None:
        """How deferred calls reach ``target`` later: a sync channel (traced, counted, not
        governed: the call was already admitted), made on first use."""
        if self.governance is None:
            return None

        def make() -> grpc.Channel:
            return self.channel(target, credentials=credentials, options=options, governance=False)

        return make
