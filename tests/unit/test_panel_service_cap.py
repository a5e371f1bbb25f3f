"""The panel's service cap (``set_concurrency_cap``): a server bulkhead on ``*`` shared by every
method rule without one of its own, so one count covers the whole service on each instance. The
cap on a real server: tests/loopback/test_governance_limits.py."""

from __future__ import annotations

import pytest
from transform_checks import methods, twice

from telemetry.governance.rules import GovernanceRules
from telemetry.panel.control_plane import validate
from telemetry.panel.controls import set_concurrency_cap

LIMIT_10 = {"algorithm": "token_bucket", "limit": 10}


def test_a_concurrency_cap_covers_every_method_of_the_service() -> None:
    """One count for the whole service: ``*`` gets the cap and every entry without a bulkhead of
    its own shares it (marked ``shared: "*"``); a method's own bulkhead stays; None takes back
    only the service cap."""
    own = {"bulkhead": {"max_concurrent": 7}}
    start = {"methods": {"*": {"rate_limit": LIMIT_10}, "a.B/M": {"priority": "low"},
                         "a.B/N": own, "a.B/O": {"bulkhead": None}}}  # fmt: skip
    capped = twice(set_concurrency_cap(3), start)
    cap = {"max_concurrent": 3, "shared": "*"}
    assert methods(capped) == {
        "*": {"rate_limit": LIMIT_10, "bulkhead": cap},
        "a.B/M": {"priority": "low", "bulkhead": cap},
        "a.B/N": own,
        "a.B/O": {"bulkhead": cap},
    }
    validate("server", capped)
    rules = GovernanceRules.from_dict({"server": capped}).server.methods
    assert rules["a.B/M"].bulkhead == rules["*"].bulkhead  # one rule, so one instance
    assert methods(twice(set_concurrency_cap(2), capped))["a.B/M"]["bulkhead"]["max_concurrent"] == 2
    back = twice(set_concurrency_cap(None), capped)
    assert methods(back) == {"*": {"rate_limit": LIMIT_10}, "a.B/M": {"priority": "low"},
                             "a.B/N": own, "a.B/O": {}}  # fmt: skip
    # From nothing: a ``*`` entry holding only the cap, gone again with it.
    four = {**cap, "max_concurrent": 4}
    assert twice(set_concurrency_cap(4), None) == {"methods": {"*": {"bulkhead": four}}}
    assert set_concurrency_cap(None)(set_concurrency_cap(4)(None)) == {"methods": {}}
    for bad in (0, True, 2.5, 10**7):
        with pytest.raises(ValueError, match="max_concurrent must be a whole number"):
            set_concurrency_cap(bad)  # type: ignore[arg-type]


def test_the_service_cap_replaces_a_bulkhead_star_had() -> None:
    """``*``'s own bulkhead would be a second count beside the copies (an instance is keyed by its
    rule): the service cap takes its place."""
    start = {"methods": {"*": {"bulkhead": {"max_concurrent": 10}}, "a.B/M": {"priority": "low"}}}
    capped = twice(set_concurrency_cap(3), start)
    assert methods(capped)["*"]["bulkhead"] == methods(capped)["a.B/M"]["bulkhead"]
    validate("server", capped)


def test_a_shared_rule_unlike_the_one_it_names_is_refused() -> None:
    """Two counts where one was meant (and a count forgotten on every rules change): refused,
    naming the field, for bulkheads and rate limits alike."""
    spoiled = {"methods": {"*": {"bulkhead": {"max_concurrent": 10}},
                           "a.B/M": {"bulkhead": {"max_concurrent": 3, "shared": "*"}}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"rules.server.methods\['a.B/M'\].bulkhead.shared: names '\*'"):
        validate("server", spoiled)
    nowhere = {"methods": {"a.B/M": {"rate_limit": {"limit": 5, "shared": "a.B/*"}}}}
    with pytest.raises(ValueError, match=r"rate_limit.shared: names 'a.B/\*'"):
        validate("server", nowhere)
    client = {"methods": {"a.B/M": {"bulkhead": {"max_concurrent": 2, "shared": "*"}}}}
    with pytest.raises(ValueError, match=r"rules.client.methods\['a.B/M'\].bulkhead.shared"):
        validate("client", client)
