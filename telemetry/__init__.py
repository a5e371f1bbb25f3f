"""Telemetry and governance for Python gRPC services, from one call.

    import telemetry
    tel = telemetry.init(service_name="order")
    server = tel.server()                     # sync; tel.aio_server() for grpc.aio
    channel = tel.channel("inventory:50051")  # tel.aio_channel(...) for grpc.aio
    tel = telemetry.init(service_name="order", etcd="127.0.0.1:2379")
    tel.register("10.0.0.5:50051")            # in etcd under a lease; tel.serve(server) on SIGTERM
    channel = tel.channel("inventory")        # a bare name: balanced over its live instances
    log = telemetry.get_logger(__name__)      # JSON lines with trace_id / span_id
    tel = telemetry.init(service_name="order", governance={...})  # limits, breakers ... (see
                                              # telemetry.governance for the algorithms themselves)

Everything public is re-exported here; ``__all__`` is the API.
"""

from telemetry._version import VERSION
from telemetry.config import ConfigError, TelemetryConfig
from telemetry.deadline import deadline_scope, remaining
from telemetry.discovery.client import AioServiceChannel, ServiceChannel
from telemetry.discovery.etcd import EtcdConfig
from telemetry.discovery.instance import Instance
from telemetry.governance.engine import Governance
from telemetry.governance.rules import GovernanceRules, RuleError
from telemetry.handle import Telemetry, current, init
from telemetry.logging.pipeline import add_log_fields, get_logger
from telemetry.rpc.aio_client import AioClientInterceptor
from telemetry.rpc.aio_server import AioServerInterceptor
from telemetry.rpc.call import AnswerCall, CallState, MethodInfo, RejectCall, RpcKind, Side
from telemetry.rpc.client import AnsweredCall, ClientInterceptor, FailedCall
from telemetry.rpc.concern import Concern, InvalidConcernError
from telemetry.rpc.server import ServerInterceptor
from telemetry.tracing.samplers import RateLimitingSampler

__version__ = VERSION  # the installed distribution's (telemetry._version)

__all__ = [
    "AioClientInterceptor",
    "AioServerInterceptor",
    "AioServiceChannel",
    "CallState",
    "Concern",
    "ConfigError",
    "EtcdConfig",
    "ClientInterceptor",
    "AnswerCall",
    "AnsweredCall",
    "FailedCall",
    "Governance",
    "GovernanceRules",
    "Instance",
    "InvalidConcernError",
    "MethodInfo",
    "RateLimitingSampler",
    "RejectCall",
    "RpcKind",
    "RuleError",
    "ServerInterceptor",
    "ServiceChannel",
    "Side",
    "Telemetry",
    "TelemetryConfig",
    "__version__",
    "add_log_fields",
    "current",
    "deadline_scope",
    "get_logger",
    "init",
    "remaining",
]
