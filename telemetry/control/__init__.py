"""The control plane: governance rules, demo faults and trace sampling, written to etcd by the panel
and applied live by every instance, which reports back what it made of them.

    live = LiveRules(etcd, tel.governance, service="order", instance_id=instance.id, faults=faults,
                     sampler=tel.tracing.sampler)
    live.start()          # watches /governance/order/, writes /governance-status/order/<id>
    ...
    live.stop()           # deletes the status key; the rules in force stay
"""

from telemetry.control.faults import (
    FAULT_KEY,
    Fault,
    FaultError,
    FaultInjector,
    FaultsInput,
    burn_cpu,
    parse_faults,
)
from telemetry.control.live_rules import (
    CLUSTER,
    DOCUMENT,
    FAULTS,
    GOVERNANCE_PREFIX,
    KEYS,
    SAMPLING,
    SECTIONS,
    STATUS_PREFIX,
    LiveRules,
    governance_prefix,
    read_all_statuses,
    read_statuses,
    rules_key,
    status_key,
)

__all__ = [
    "CLUSTER",
    "DOCUMENT",
    "FAULTS",
    "FAULT_KEY",
    "GOVERNANCE_PREFIX",
    "KEYS",
    "SAMPLING",
    "SECTIONS",
    "STATUS_PREFIX",
    "Fault",
    "FaultError",
    "FaultInjector",
    "FaultsInput",
    "LiveRules",
    "burn_cpu",
    "governance_prefix",
    "parse_faults",
    "read_all_statuses",
    "read_statuses",
    "rules_key",
    "status_key",
]
