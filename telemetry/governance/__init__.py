"""Governance: rate limiting, circuit breaking, throttling, adaptive shedding, degradation, bulkheads
and retries, as pure decision objects driven by one validated rules model and applied to gRPC calls
by thin concerns (see ``telemetry.governance.concerns``).

    gov = Governance({"server": {"methods": {"*": {"rate_limit": {"limit": 100}}}}})
    tel = telemetry.init(service_name="order", governance=gov)
    gov.apply(new_rules)   # at runtime; invalid rules raise RuleError and the old ones stay
"""

from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.concerns import ClientGovernance, ServerGovernance
from telemetry.governance.degrade import (
    DeferralQueue,
    DeferralWorker,
    LastGoodCache,
    Priority,
    PriorityShedder,
)
from telemetry.governance.engine import Governance, parse_rules
from telemetry.governance.keyed import KeyedLimiter
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
from telemetry.governance.retry import RetryBudget, RetryCall, RetryPlan, RetryPolicy
from telemetry.governance.rules import (
    AdaptiveRule,
    BreakerRule,
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
    "AdaptiveLimiter",
    "AdaptiveRule",
    "AdaptiveThrottle",
    "BreakerRule",
    "BreakerState",
    "BulkheadRule",
    "CircuitBreaker",
    "ClientGovernance",
    "ClientMethodRules",
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
    "ServerGovernance",
    "ServerMethodRules",
    "SheddingRule",
    "SlidingWindowLimiter",
    "ThrottleRule",
    "TokenBucketLimiter",
    "WarmUpLimiter",
    "parse_rules",
]
