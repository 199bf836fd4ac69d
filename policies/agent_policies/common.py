"""Shared helpers for the agent platform policies: unknown- and garbage-safe property access.

An unknown value never crashes a policy or becomes a bogus violation (it raises ``UnknownValueError``, which the SDK
reports as its advisory preview note), and a value of the wrong shape reads as absent. Details:
policies/README.md#rules.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema, ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

SANDBOX_LABEL = "agent-platform.io/sandbox"

DEFAULT_RUNTIME_CLASSES: tuple[str, ...] = ("kata-clh", "kata-qemu", "kata-fc")
DEFAULT_SERVICE_CIDRS: tuple[str, ...] = ("172.20.0.0/16",)  # the platform's agent-platform:serviceCidr default
DEFAULT_NESTED_VIRT_FAMILIES: tuple[str, ...] = (
    "c8i",
    "m8i",
    "r8i",
    "c8i-flex",
    "m8i-flex",
    "r8i-flex",
)

# Unknown-value sentinels of the Pulumi wire protocol (pulumi_policy.proxy).
UNKNOWN_SENTINELS: frozenset[str] = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)


def get(obj: Any, key: str) -> Any:
    """Return ``obj[key]``, or None when obj is not a mapping or has no such key.

    Raises UnknownValueError when the value is unknown during preview.
    """
    if not isinstance(obj, Mapping):
        return None
    try:
        value = obj[key]
    except KeyError:
        return None
    if value.__class__ is str and value in UNKNOWN_SENTINELS:
        raise UnknownValueError(value, [key])
    return value


def dig(obj: Any, *keys: str) -> Any:
    """Walk nested mappings; None as soon as a level is absent or not a mapping."""
    for key in keys:
        obj = get(obj, key)
        if obj is None:
            return None
    return obj


def mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def items(value: Any, unknowns: Unknowns | None = None) -> Iterator[Any]:
    """Iterate a list-like value (never a string); nothing for anything else.

    An unknown element raises UnknownValueError, or, when ``unknowns`` is given, is
    recorded there and skipped so the known elements still get checked.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return
    for index in range(len(value)):
        try:
            element = value[index]
            if element.__class__ is str and element in UNKNOWN_SENTINELS:
                raise UnknownValueError(element, [str(index)])
        except UnknownValueError as error:
            if unknowns is None:
                raise
            unknowns.record(error)
            continue
        yield element


def string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def item_label(item: Any, index: int) -> str:
    """A list item's ``name`` (container, volume), or its index when the name is missing or unknown."""
    try:
        return string(get(item, "name")) or str(index)
    except UnknownValueError:
        return str(index)


def is_true(value: Any) -> bool:
    """True for a boolean true or the string "true" (any case), as Kubernetes labels use."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


class Unknowns:
    """Run independent checks, remember the first unknown value, re-raise it at the end."""

    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: UnknownValueError | None = None

    def record(self, error: UnknownValueError) -> None:
        if self.first is None:
            self.first = error

    def run(self, check: Callable[..., None], *args: Any) -> None:
        try:
            check(*args)
        except UnknownValueError as error:
            self.record(error)

    def finish(self) -> None:
        if self.first is not None:
            raise self.first


# --- type dispatch ---------------------------------------------------------------------------


def applies_to(policy: ResourceValidationPolicy, predicate: Callable[[str], bool]) -> None:
    """Declare the resource types ``policy`` reports on (an attribute of the pack's own policy object).

    A convention, not a dispatch: the unmodified SDK calls every validator for every resource,
    so each validator starts with the same type check and returns at once, without reading
    the properties, for any type the predicate rejects (a test holds every policy to it).
    """
    policy.applies_to = predicate  # type: ignore[attr-defined]


# --- configuration ---------------------------------------------------------------------------


def config_strings(config: Mapping[str, Any], key: str, default: Sequence[str]) -> tuple[str, ...]:
    """A list-of-strings config value (schema defaults apply when the CLI configured the pack)."""
    value = config.get(key) if isinstance(config, Mapping) else None
    if isinstance(value, (list, tuple)):
        return tuple(v for v in value if isinstance(v, str))
    return tuple(default)


def config_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key) if isinstance(config, Mapping) else None
    return value if isinstance(value, bool) else default


def config_str(config: Mapping[str, Any], key: str, default: str) -> str:
    value = config.get(key) if isinstance(config, Mapping) else None
    return value if isinstance(value, str) else default


def string_list_property(description: str, default: Sequence[str], **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string", "minLength": 1}
    if "pattern" in extra:
        item["pattern"] = extra.pop("pattern")
    return {
        "type": "array",
        "items": item,
        "uniqueItems": True,
        "description": description,
        "default": list(default),
        **extra,
    }


def schema(properties: dict[str, dict[str, Any]]) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties=properties)


# --- networks --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def parse_networks(
    cidrs: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as error:
            raise ValueError(f"invalid CIDR {cidr!r} in policy configuration: {error}") from None
    return tuple(networks)


@functools.lru_cache(maxsize=1024)
def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address written as Kubernetes accepts one (Go ``netip.ParseAddr``): no surrounding space, no zone
    (``fe80::1%eth0``), no leading zeros in IPv4; None for anything else. IPv4-mapped IPv6 parses (see dns.py)."""
    if value != value.strip() or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


# IPv6 spellings that embed an IPv4 address: (name, prefix, prefix length); the IPv4 address follows the prefix.
# A resolver told any of them may end up at the IPv4 address, so both gates judge them by it (the admission policy
# renders the same table: components/admission/sandbox_admission.py, tested equal). IPv4-mapped ``::ffff:a.b.c.d`` is not here:
# Kubernetes' CEL cannot parse it, so both gates refuse it outright.
IPV4_EMBEDDINGS: tuple[tuple[str, str, int], ...] = (
    ("IPv4-compatible", "::", 96),  # ::a.b.c.d (deprecated)
    ("IPv4-translated", "::ffff:0:0:0", 96),  # ::ffff:0:a.b.c.d (SIIT)
    ("NAT64", "64:ff9b::", 96),  # the well-known NAT64 prefix (RFC 6052), what AWS DNS64 uses
    ("6to4", "2002::", 16),  # 2002:aabb:ccdd::/48 (RFC 3056)
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=64)
def service_networks(cidrs: tuple[str, ...]) -> tuple[tuple[Network, str, Network], ...]:
    """Every network a nameserver must stay out of: each service CIDR and, for an IPv4 one, each IPv6 spelling
    of it (IPV4_EMBEDDINGS), as (network, spelling name or "", the service CIDR)."""
    found: list[tuple[Network, str, Network]] = []
    for network in parse_networks(cidrs):
        found.append((network, "", network))
        if network.version == 4:
            for name, prefix, length in IPV4_EMBEDDINGS:
                shift = 128 - length - 32
                base = int(ipaddress.IPv6Address(prefix)) | int(network.network_address) << shift
                found.append((ipaddress.IPv6Network((base, length + network.prefixlen)), name, network))
    return tuple(found)


def embedded_ipv4(address: ipaddress.IPv6Address, name: str) -> ipaddress.IPv4Address:
    """The IPv4 address the ``name`` spelling (IPV4_EMBEDDINGS) of ``address`` embeds."""
    length = next(length for spelling, _, length in IPV4_EMBEDDINGS if spelling == name)
    return ipaddress.IPv4Address((int(address) >> (128 - length - 32)) & 0xFFFFFFFF)


def instance_family(instance_type: str) -> str:
    """``c8i-flex.2xlarge`` -> ``c8i-flex``."""
    return instance_type.strip().lower().split(".", 1)[0]


def human_list(values: Sequence[str], conjunction: str = "or") -> str:
    if not values:
        return "(none configured)"
    if len(values) == 1:
        return values[0]
    return f"{', '.join(values[:-1])} {conjunction} {values[-1]}"
