"""Declared keys of a structured config value (a tenant, an agent...): one declaration per key, with its type,
default, meaning and how it is read. The parser's known keys, the parse and the docs table all derive from it
(tests/test_config_keys.py checks docs/cluster.md#tenant-keys against the declarations).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.config.reader import Reader, positive_quantity

REQUIRED = object()  # no default: the key must be set
KeyReader = Callable[
    [Reader, "Key", Mapping[str, Any]], Any
]  # reads one key (the parse's context as the last argument)


@dataclass(frozen=True)
class Derived:
    """A default computed from the values read before it and the parse's context; ``doc`` says how (docs table)."""

    doc: str
    compute: Callable[[Mapping[str, Any], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Key:
    name: str  # as written in the stack file
    kind: str  # for the docs: string, integer, number, boolean, quantity, list of strings, object, list of objects
    doc: str
    read: KeyReader
    default: Any = REQUIRED

    @property
    def attr(self) -> str:
        """The dataclass field the value lands in: ``storageGiB`` -> ``storage_gib``."""
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", self.name).lower()

    @property
    def default_doc(self) -> str:
        if self.default is REQUIRED:
            return "required"
        if isinstance(self.default, Derived):
            return self.default.doc
        return f"`{json.dumps(self.default)}`"


def read_keys(r: Reader, keys: Sequence[Key], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every declared key of ``r`` (field name -> value), in declaration order, refusing any other key with a
    did-you-mean. ``context``: what the readers and derived defaults of these keys may use from outside them."""
    r.reject_unknown([k.name for k in keys])
    values: dict[str, Any] = {}
    for key in keys:
        if isinstance(key.default, Derived):
            key = dataclasses.replace(key, default=key.default.compute(values, context or {}))
        # A reader sees the context and the values read before it (a tenant's agents see its isolation).
        values[key.attr] = key.read(r, key, {**(context or {}), **values})
    return values


def _default(key: Key) -> Any:
    return None if key.default is REQUIRED else key.default


# --- readers: how a key is read (its default comes from the declaration)


def text(check: Callable[[str, str], Any] | None = None) -> Callable[[Reader, Key, Mapping[str, Any]], str]:
    def read(r: Reader, key: Key, _: Mapping[str, Any]) -> str:
        value = r.str(key.name, _default(key))
        if check is not None:
            check(r.key(key.name), value)
        return value

    return read


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[Reader, Key, Mapping[str, Any]], int]:
    return lambda r, key, _: r.int(key.name, default=_default(key), lo=lo, hi=hi)


def optional_integer(lo: int, hi: int) -> Callable[[Reader, Key, Mapping[str, Any]], int | None]:
    return lambda r, key, _: None if r.values.get(key.name) is None else r.int(key.name, lo=lo, hi=hi)


def number(lo: float | None = None) -> Callable[[Reader, Key, Mapping[str, Any]], float]:
    return lambda r, key, _: r.number(key.name, default=_default(key), lo=lo)


def boolean() -> Callable[[Reader, Key, Mapping[str, Any]], bool]:
    return lambda r, key, _: r.bool(key.name, default=_default(key))


def optional_boolean() -> Callable[[Reader, Key, Mapping[str, Any]], bool | None]:
    """True or false when set, None when not (the value is inherited)."""
    return lambda r, key, _: r.bool(key.name) if key.name in r.values else None


def quantity(kind: str) -> Callable[[Reader, Key, Mapping[str, Any]], str]:
    """A Kubernetes quantity above zero (``kind`` "memory": bytes, at least 1Mi)."""
    return lambda r, key, _: positive_quantity(r.key(key.name), r.values.get(key.name, key.default), kind)


def strings(
    item: Callable[[str, str], str] | None = None,
) -> Callable[[Reader, Key, Mapping[str, Any]], tuple[str, ...]]:
    """A list of strings, each checked (and normalized) by ``item(key path, value)``."""

    def read(r: Reader, key: Key, _: Mapping[str, Any]) -> tuple[str, ...]:
        values = r.strs(key.name, default=_default(key))
        return values if item is None else tuple(item(f"{r.key(key.name)}[{i}]", v) for i, v in enumerate(values))

    return read


def one_of(choices: Sequence[str]) -> Callable[[Reader, Key, Mapping[str, Any]], str]:
    return lambda r, key, _: r.choice(key.name, choices, default=_default(key))


def matching(pattern: str | re.Pattern[str], what: str) -> Callable[[Reader, Key, Mapping[str, Any]], str]:
    return lambda r, key, _: r.matching(key.name, pattern, what, default=_default(key))


def section(parse: Callable[[Reader], Any]) -> Callable[[Reader, Key, Mapping[str, Any]], Any]:
    """An object of declared keys of its own (its keys' defaults apply when it is left out)."""
    return lambda r, key, _: r.object(key.name, parse)


def sections(parse: Callable[[Reader], Any]) -> Callable[[Reader, Key, Mapping[str, Any]], tuple[Any, ...]]:
    return lambda r, key, _: r.objects(key.name, parse, default=_default(key))
