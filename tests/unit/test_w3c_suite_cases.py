"""W3C Trace Context, case by case: every case of the tables (the W3C test suite's and ours) runs
through three readers that must agree: the parser (:func:`w3c.parse_headers`), the propagator over
an HTTP carrier, and the gRPC metadata path; and every case is named once.

Where later versions of the suite differ: its Level 2 version (branch ``level-2``) lets a
tracestate with duplicated keys through, and its Level 3 draft (``main``) accepts ``@`` anywhere
in a key (``foo@``, ``t@vvvvvvvvvvvvvvv``); both are looser than Level 1, which we follow.
"""

from __future__ import annotations

import pytest
from w3c_cases import (
    CASES,
    HTTP,
    TRACEPARENT_CASES,
    TRACESTATE_CASES,
    Case,
    Headers,
    Read,
    expected,
    from_metadata,
    from_propagator,
)

from telemetry.tracing import w3c


def from_parser(headers: Headers) -> Read:
    parent = w3c.parse_headers(HTTP.get(headers, "traceparent"), HTTP.get(headers, "tracestate"))
    if parent is None:
        return Read(None, [])
    return Read(f"{parent.trace_id:032x}", parent.tracestate or [])


READERS = {"parser": from_parser, "propagator": from_propagator, "grpc metadata": from_metadata}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_w3c_suite_case(case: Case, reader: str) -> None:
    assert READERS[reader](case.headers) == expected(case)


def test_every_case_is_named_once() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    suite = (sum(case.suite for case in TRACEPARENT_CASES), sum(case.suite for case in TRACESTATE_CASES))
    assert suite == (39, 41)  # every request of the W3C suite's test.py (level-1 branch)
    assert (len(TRACEPARENT_CASES), len(TRACESTATE_CASES)) == (53, 56)
