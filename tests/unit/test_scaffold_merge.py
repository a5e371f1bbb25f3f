"""Stubs for new RPCs are added to a handler module the user owns without changing a byte of what
is there: bodies, comments, helpers, layout."""

from __future__ import annotations

import pytest

from telemetry.scaffold.errors import ScaffoldError
from telemetry.scaffold.merge import append_stubs

STUB = "    def Added(self, request: int, context: int) -> int:\n        return 0\n"

HANDLERS = '''"""Mine."""

from x import api


class Order(api.OrderBase):
    def Place(self, request: int, context: int) -> int:
        # written by hand, with odd   spacing kept
        return request + 1

    def helper(self) -> int:
        return 2


AFTER = 1
'''


def test_a_stub_goes_after_the_class_and_nothing_else_moves() -> None:
    merged = append_stubs(HANDLERS, "Order", {"Place": "ignored", "Added": STUB}, "order.py")
    assert merged.appended == ("Added",)
    head, _, tail = HANDLERS.partition("\n\n\nAFTER")
    assert merged.text == f"{head}\n\n{STUB}\n\nAFTER{tail}"
    assert merged.defined == {"Place", "helper", "Added"}


def test_an_rpc_the_class_defines_is_not_offered_again() -> None:
    merged = append_stubs(HANDLERS, "Order", {"Place": STUB, "helper": STUB}, "order.py")
    assert (merged.text, merged.appended) == (HANDLERS, ())


def test_a_module_without_the_class_is_left_alone() -> None:
    merged = append_stubs(HANDLERS, "Renamed", {"Added": STUB}, "order.py")
    assert (merged.text, merged.found) == (HANDLERS, False)


def test_the_class_body_keeps_its_own_indentation() -> None:
    text = "class Order:\n  def Place(self) -> int:\n    return 1\n"
    merged = append_stubs(text, "Order", {"Added": STUB}, "order.py")
    assert (
        merged.text == text + "\n  def Added(self, request: int, context: int) -> int:\n      return 0\n"
    )


def test_a_class_at_the_end_of_a_file_without_a_newline() -> None:
    merged = append_stubs("class Order:\n    x = 1", "Order", {"Added": STUB}, "order.py")
    assert merged.text == "class Order:\n    x = 1\n\n" + STUB


def test_a_module_that_does_not_parse_is_refused_with_its_line() -> None:
    with pytest.raises(ScaffoldError, match=r"order\.py:2: cannot add stubs"):
        append_stubs("class Order:\ndef", "Order", {"Added": STUB}, "order.py")
