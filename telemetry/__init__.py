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

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Any

from telemetry._version import VERSION

if TYPE_CHECKING:
    from telemetry.config import ConfigError, TelemetryConfig
    from telemetry.discovery.aio_service_channel import AioServiceChannel
    from telemetry.discovery.etcd import EtcdConfig
    from telemetry.discovery.instance import Instance
    from telemetry.discovery.service_channel import ServiceChannel
    from telemetry.governance.engine import Governance
    from telemetry.governance.rules import GovernanceRules, RuleError
    from telemetry.handle import Telemetry
    from telemetry.logging.pipeline import add_log_fields, get_logger
    from telemetry.process import current, init
    from telemetry.rpc.aio_client import AioClientInterceptor
    from telemetry.rpc.aio_server import AioServerInterceptor
    from telemetry.rpc.call import AnswerCall, CallState, MethodInfo, RejectCall, RpcKind, Side
    from telemetry.rpc.client import AnsweredCall, ClientInterceptor, FailedCall
    from telemetry.rpc.concern import Concern, InvalidConcernError
    from telemetry.rpc.deadline import deadline_scope, remaining
    from telemetry.rpc.server import ServerInterceptor
    from telemetry.tracing.samplers import RateLimitingSampler

_IMPORT_LOCK = threading.RLock()

# Each public name is imported on first use (PEP 562), so importing one part of the package --
# the grpc-free governance algorithms, say -- does not import every other part, grpc included.
_EXPORTS = {
    "AioClientInterceptor": "telemetry.rpc.aio_client",
    "AioServerInterceptor": "telemetry.rpc.aio_server",
    "AioServiceChannel": "telemetry.discovery.aio_service_channel",
    "AnswerCall": "telemetry.rpc.call",
    "AnsweredCall": "telemetry.rpc.client",
    "CallState": "telemetry.rpc.call",
    "ClientInterceptor": "telemetry.rpc.client",
    "Concern": "telemetry.rpc.concern",
    "ConfigError": "telemetry.config",
    "EtcdConfig": "telemetry.discovery.etcd",
    "FailedCall": "telemetry.rpc.client",
    "Governance": "telemetry.governance.engine",
    "GovernanceRules": "telemetry.governance.rules",
    "Instance": "telemetry.discovery.instance",
    "InvalidConcernError": "telemetry.rpc.concern",
    "MethodInfo": "telemetry.rpc.call",
    "RateLimitingSampler": "telemetry.tracing.samplers",
    "RejectCall": "telemetry.rpc.call",
    "RpcKind": "telemetry.rpc.call",
    "RuleError": "telemetry.governance.rules",
    "ServerInterceptor": "telemetry.rpc.server",
    "ServiceChannel": "telemetry.discovery.service_channel",
    "Side": "telemetry.rpc.call",
    "Telemetry": "telemetry.handle",
    "TelemetryConfig": "telemetry.config",
    "add_log_fields": "telemetry.logging.pipeline",
    "current": "telemetry.process",
    "deadline_scope": "telemetry.rpc.deadline",
    "get_logger": "telemetry.logging.pipeline",
    "init": "telemetry.process",
    "remaining": "telemetry.rpc.deadline",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None and (
        name.startswith("_") or importlib.util.find_spec(f"telemetry.{name}") is None
    ):
        raise AttributeError(f"module 'telemetry' has no attribute {name!r}")
    # One import at a time: two threads importing the same modules for the first time can each
    # see the other's half-initialised module (ImportError, KeyError, _DeadlockError).
    with _IMPORT_LOCK:
        if module is None:  # a subpackage (telemetry.governance ...), as `import` would give it
            return importlib.import_module(f"telemetry.{name}")
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
