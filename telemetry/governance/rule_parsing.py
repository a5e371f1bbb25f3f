"""Parsing machinery of the governance rules (``telemetry.governance.rules``): bounded JSON text,
typed conversion of a mapping into the frozen rule dataclasses, range checks, short messages.

Import the public names from ``telemetry.governance.rules``, which re-exports them.

* :func:`json_text` / :func:`load_json` bound JSON text before it is parsed (:data:`MAX_JSON_BYTES`,
  :data:`MAX_JSON_DEPTH`), so a 100,000-deep value is refused instead of exhausting the recursion.
* :func:`parse` builds a rule dataclass from a mapping, converting each field by its type hint
  (unions with None, ``Literal``, tuples, ``Mapping[str, ...]`` keyed by method pattern, nested
  dataclasses, bool/int/float/str) and checking the range declared with :func:`bounded`; then the
  rule's own ``check(path)``, if it has one. Every refusal is a :class:`RuleError` naming the path.
* A value echoed in a message is shortened (``telemetry._validation.short_repr``).

:class:`RuleError` and :func:`finite_number` come from ``telemetry._validation``, shared with the
live sampling key (``telemetry.tracing.samplers``), so both refuse with the same error class.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from telemetry._validation import RuleError, finite_number, short_repr

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "bounded",
    "describe",
    "dump",
    "json_text",
    "load_json",
    "number_in_range",
    "parse",
    "validate_pattern",
]

_T = TypeVar("_T")

MAX_JSON_BYTES = 256 * 1024
"""Largest JSON text accepted for rules (bytes; characters for a ``str``): real ones take a few KiB."""
MAX_JSON_DEPTH = 32
"""Deepest JSON nesting accepted: a rules document is 6 levels deep, so deeper is refused before the
parser (which recurses once per level) sees it."""


def bounded(
    *, default: Any = dataclasses.MISSING, minimum: float, maximum: float, off: bool = False
) -> Any:
    """A numeric field accepted within ``[minimum, maximum]``, checked at parse time; with ``off``, 0
    is accepted too (it turns the feature off) while the tiny values between stay refused."""
    meta = {"min": minimum, "max": maximum, "off": off}
    return dataclasses.field(default=default, metadata=meta)


def validate_pattern(pattern: str, path: str) -> None:
    if not isinstance(pattern, str):
        raise RuleError(path, f"method pattern must be a string, got {short_repr(pattern)}")
    if pattern == "*":
        return
    service, sep, method = pattern.partition("/")
    bad_wildcard = "*" in service or ("*" in method and method != "*")
    if not sep or not service or not method or "/" in method or bad_wildcard:
        expected = "'*', 'pkg.Service/*' or 'pkg.Service/Method'"
        raise RuleError(path, f"method pattern must be {expected}, got {short_repr(pattern)}")


# -- bounded JSON ------------------------------------------------------------------------------------

# A JSON string (an unterminated one runs to the end) or a bracket: brackets inside strings do not nest.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def json_text(text: str | bytes, path: str, *, source: str = "") -> str:
    """``text`` as a ``str`` once it is known to be at most :data:`MAX_JSON_BYTES` long and nested
    at most :data:`MAX_JSON_DEPTH` deep (bytes are decoded as ``json.loads`` would); RuleError
    naming ``path`` otherwise. ``source`` (an etcd key, a file) is named in the message."""
    where = f" in {source}" if source else ""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_JSON_BYTES:
            raise RuleError(path, f"too large{where}: {len(text)} bytes, at most {MAX_JSON_BYTES}")
        try:
            text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
        except (UnicodeError, LookupError) as exc:
            raise RuleError(path, f"not valid JSON{where}: {exc}") from None
    elif not isinstance(text, str):
        raise RuleError(path, f"must be JSON text, got {type(text).__name__}")
    elif len(text) > MAX_JSON_BYTES:
        raise RuleError(path, f"too large{where}: {len(text)} characters, at most {MAX_JSON_BYTES}")
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise RuleError(path, f"nesting too deep{where} (more than {MAX_JSON_DEPTH} levels)")
        elif bracket in ("]", "}"):
            depth -= 1
    return text


def load_json(text: str | bytes, path: str, *, source: str = "") -> Any:
    """The value of bounded JSON text (see :func:`json_text`); RuleError naming ``path`` otherwise."""
    checked = json_text(text, path, source=source)
    try:
        return json.loads(checked)
    except ValueError as exc:
        where = f" in {source}" if source else ""
        raise RuleError(path, f"not valid JSON{where}: {exc}") from None
    except RecursionError:  # not with the depth bound above; kept so the contract cannot break
        raise RuleError(path, "nesting too deep") from None


# -- generic parsing and dumping of the rule dataclasses --------------------------------------------


def parse(cls: type[_T], data: Any, path: str) -> _T:
    """An instance of the dataclass ``cls`` from the mapping ``data`` (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise RuleError(path, f"must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if not isinstance(name, str):  # JSON keys always are; YAML or code may give others
            raise RuleError(path, f"field names must be strings, got {short_repr(name)}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RuleError(
            f"{path}.{_key(unknown[0])}", f"unknown field (known: {', '.join(sorted(fields))})"
        )
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        field_path = f"{path}.{name}"
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise RuleError(field_path, "is required")
            continue
        value = _convert(hints[name], data[name], field_path)
        _check_range(spec, value, field_path)
        values[name] = value
    rule = cls(**values)
    check = getattr(rule, "check", None)
    if check is not None:
        check(path)
    return rule


def number_in_range(
    value: Any, path: str, minimum: float, maximum: float, *, off: bool = False
) -> float:
    """``value`` as a float within ``[minimum, maximum]`` (or 0 with ``off``); RuleError naming
    ``path`` otherwise. The check every numeric rule field gets, for numbers parsed elsewhere."""
    number = finite_number(value, path)
    _in_range(number, path, minimum, maximum, off)
    return number


def _convert(hint: Any, value: Any, path: str) -> Any:
    # Generic hints (X | None, Literal, tuple, Mapping) by their origin, then dataclasses, then
    # scalars by the hint itself: the order of the former chain of ifs.
    convert = _BY_ORIGIN.get(get_origin(hint))
    if convert is not None:
        return convert(hint, value, path)
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, path)  # type: ignore[arg-type]
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        return scalar(value, path)
    raise TypeError(f"rules model has an unsupported type at {path}: {hint!r}")  # a bug here


def _optional(hint: Any, value: Any, path: str) -> Any:
    options = [a for a in get_args(hint) if a is not type(None)]
    return None if value is None else _convert(options[0], value, path)


def _literal(hint: Any, value: Any, path: str) -> Any:
    if not isinstance(value, str) or value not in get_args(hint):
        raise RuleError(path, f"must be one of {list(get_args(hint))}, got {short_repr(value)}")
    return value


def _tuple(hint: Any, value: Any, path: str) -> Any:
    if not isinstance(value, list | tuple):
        raise RuleError(path, f"must be a list, got {type(value).__name__}")
    args = get_args(hint)
    item_types = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
    if len(item_types) != len(value):
        raise RuleError(path, f"must have {len(item_types)} items, got {len(value)}")
    return tuple(
        _convert(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(item_types, value, strict=True))
    )


def _mapping(hint: Any, value: Any, path: str) -> Any:
    if not isinstance(value, Mapping):
        raise RuleError(path, f"must be an object, got {type(value).__name__}")
    item_type = get_args(hint)[1]
    parsed = {}
    for key, item in value.items():
        item_path = f"{path}[{short_repr(key)}]"
        validate_pattern(key, item_path)
        parsed[str(key)] = _convert(item_type, item, item_path)  # str(): a plain str, not a subclass
    return types.MappingProxyType(parsed)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(path, f"must be true or false, got {short_repr(value)}")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(path, f"must be an integer, got {short_repr(value)}")
    return int(value)  # an int subclass (IntEnum ...) would not round-trip


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"must be a string, got {short_repr(value)}")
    return str(value)


_BY_ORIGIN: dict[Any, Callable[[Any, Any, str], Any]] = {
    typing.Union: _optional,
    types.UnionType: _optional,
    Literal: _literal,
    tuple: _tuple,
    Mapping: _mapping,
}
_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _bool,
    int: _int,
    float: finite_number,
    str: _str,
}


def _check_range(spec: dataclasses.Field[Any], value: Any, path: str) -> None:
    meta = spec.metadata
    if meta and value is not None:  # None: an optional field left unset
        _in_range(value, path, meta["min"], meta["max"], meta["off"])


def _in_range(value: float, path: str, low: float, high: float, off: bool) -> None:
    if off and value == 0:
        return
    if value < low:
        if off:
            need = f"0 (off) or >= {_bound(low)}" if value > 0 else ">= 0"
        elif value <= 0 < low < 1:  # the floor only keeps tiny values out: say "positive" first
            need = f"> 0 (at least {_bound(low)})"
        else:
            need = f">= {_bound(low)}"
        raise RuleError(path, f"must be {need}, got {short_repr(value)}")
    if value > high:
        raise RuleError(path, f"must be <= {_bound(high)}, got {short_repr(value)}")


def _bound(number: float) -> str:
    """A range bound as written in the docs: ``0.001``, ``60.0``, ``1000000`` (an int), ``1e6``."""
    if isinstance(number, float) and number >= 1e5 and number.is_integer():
        return re.sub(r"e\+?0*", "e", f"{number:g}")
    return repr(number)


def _key(name: str) -> str:
    """A field name as a path segment: as it is when short, else shortened."""
    return name if len(name) <= 60 and name.isprintable() else short_repr(name)


def describe(exc: BaseException) -> str:
    """An exception in a message: its type and its text, shortened."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def dump(value: Any) -> Any:
    """A rule dataclass (or any value of one) as plain JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: dump(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [dump(item) for item in value]
    return value
