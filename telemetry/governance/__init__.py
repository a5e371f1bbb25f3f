"""Governance: rate limiting, circuit breaking, throttling, adaptive shedding, degradation, bulkheads
and retries, as pure decision objects driven by one validated rules model and applied to gRPC calls
by thin concerns of the chain (``telemetry.rpc.server_governance``, ``client_governance``).
Every mechanism has one shape (``telemetry.governance.gate``): admit a call, then hear how it
ended. Nothing in this package imports grpc.

    gov = Governance({"server": {"methods": {"*": {"rate_limit": {"limit": 100}}}}})
    tel = telemetry.init(service_name="order", governance=gov)
    gov.apply(new_rules)   # at runtime; invalid rules raise RuleError and the old ones stay
"""

from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.brownout import Brownout
from telemetry.governance.cluster_limit import BucketBackend, ClusterLimiter, ClusterStore
from telemetry.governance.degrade import (
    DeferralQueue,
    DeferralWorker,
    LastGoodCache,
    Priority,
    PriorityShedder,
)
from telemetry.governance.engine import Governance
from telemetry.governance.gate import Admitted, CallEnv, Gate, Mechanism, Outcome, Verdict
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.loading import parse_rules
from telemetry.governance.pressure import LoopLagMonitor, ProcessCpuSampler
from telemetry.governance.ratelimit import (
    ConcurrencyLimiter,
    FixedWindowLimiter,
    LeakyBucketLimiter,
    RateLimiter,
    SlidingWindowLimiter,
    TokenBucketLimiter,
    WarmUpLimiter,
)
from telemetry.governance.redis_bucket import redis_cluster_store
from telemetry.governance.retry import RetryBudget, RetryCall, RetryPlan, RetryPolicy
from telemetry.governance.rules import (
    AdaptiveRule,
    BreakerRule,
    BrownoutRule,
    BulkheadRule,
    ClientMethodRules,
    FallbackRule,
    GovernanceRules,
    RateLimitRule,
    RetryRule,
    RuleError,
    ServerMethodRules,
    SheddingRule,
    ThrottleRule,
)
from telemetry.governance.throttle import AdaptiveThrottle

__all__ = [
    "Admitted",
    "CallEnv",
    "Gate",
    "Mechanism",
    "Outcome",
    "Verdict",
    "AdaptiveLimiter",
    "AdaptiveRule",
    "AdaptiveThrottle",
    "BreakerRule",
    "Brownout",
    "BrownoutRule",
    "BreakerState",
    "BulkheadRule",
    "CircuitBreaker",
    "BucketBackend",
    "ClientMethodRules",
    "ClusterLimiter",
    "ClusterStore",
    "ConcurrencyLimiter",
    "DeferralQueue",
    "DeferralWorker",
    "FallbackRule",
    "FixedWindowLimiter",
    "Governance",
    "GovernanceRules",
    "KeyedLimiter",
    "LastGoodCache",
    "LeakyBucketLimiter",
    "LoopLagMonitor",
    "Priority",
    "PriorityShedder",
    "ProcessCpuSampler",
    "RateLimitRule",
    "RateLimiter",
    "RetryBudget",
    "RetryCall",
    "RetryPlan",
    "RetryPolicy",
    "RetryRule",
    "RuleError",
    "ServerMethodRules",
    "SheddingRule",
    "SlidingWindowLimiter",
    "ThrottleRule",
    "TokenBucketLimiter",
    "WarmUpLimiter",
    "parse_rules",
    "redis_cluster_store",
]
