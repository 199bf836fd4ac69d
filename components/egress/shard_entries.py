"""The egress entries of tenants in shard stacks (docs/shards.md#ownership): what a shard exports for the platform's
proxy, and how the platform reads them.

A shard exports two strings: its tenants' allowlists (JSON) and their htpasswd lines (a Pulumi secret). The platform
parses, checks and merges them inside the one ``apply`` that renders squid.conf (or the htpasswd file), and returns
only that text: an ``apply`` that returned the merged map would make an Output of every tenant, domain and line
(``Output.from_input`` walks dicts and lists), several seconds at 5,000 tenants (docs/benchmarks.md).

A shard writes data, never configuration: every tenant name must be a tenant name, every domain must pass the same
check as a configured one, and every htpasswd line must be one MD5-crypt user line, so nothing a shard exports can
become a Squid directive or another tenant's credential (one owner per tenant).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.config import ConfigError
from components.config.tenants import egress_domain
from components.egress.squid import ProxyTenant

# What a tenant name is in the configuration (components/config/tenants.py, TENANT_KEYS "name").
_TENANT = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
# user:$1$<salt, 1-8>$<22 characters>, as components/egress/squid.py md5_crypt writes it.
_HTPASSWD_LINE = re.compile(r"^(?P<user>[^:\s]+):\$1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}$")


def allowlists_text(entries: Mapping[str, Any]) -> str:
    """A shard's ``egressAllowlists`` output: ``{tenant: {"domains": [...], "cidrs": [...]}}`` as compact JSON."""
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def htpasswd_text(lines: Mapping[str, str]) -> str:
    """A shard's ``egressProxyUsers`` output: its tenants' htpasswd lines, one per line, sorted."""
    return "".join(f"{lines[user]}\n" for user in sorted(lines))


def _refuse(stack: str, what: str) -> pulumi.RunError:
    return pulumi.RunError(f"shard {stack}: {what}: the platform serves only well-formed egress entries")


def _tenant(stack: str, name: Any) -> str:
    if not isinstance(name, str) or not _TENANT.match(name):
        raise _refuse(stack, f"{name!r} is not a tenant name")
    return name


def parse_allowlists(stack: str, text: str | None) -> dict[str, tuple[str, ...]]:
    """A shard's allowlists -> {tenant: domains}, every name and domain checked (CIDRs stay platform tenants')."""
    try:
        entries = json.loads(text) if text else {}
    except ValueError as error:
        raise _refuse(stack, f"egressAllowlists is not JSON ({error})") from None
    if not isinstance(entries, dict):
        raise _refuse(stack, "egressAllowlists is not a map of tenants")
    parsed: dict[str, tuple[str, ...]] = {}
    checked: dict[str, str] = {}  # tenants share most domains (their agent types' defaults): each checked once
    for name, entry in entries.items():
        domains = entry.get("domains", []) if isinstance(entry, dict) else None
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise _refuse(stack, f"egressAllowlists.{name} has no list of domains")
        key = f"shard {stack} egressAllowlists.{_tenant(stack, name)}.domains"
        try:
            parsed[name] = tuple(checked.get(d) or checked.setdefault(d, egress_domain(key, d)) for d in domains)
        except ConfigError as error:
            raise pulumi.RunError(f"{key}: {error.reason}") from None
    return parsed


def parse_htpasswd(stack: str, text: str | None) -> dict[str, str]:
    """A shard's htpasswd lines -> {user: line}; a line that is not ``tenant:$1$salt$hash`` is refused."""
    lines: dict[str, str] = {}
    for line in (text or "").splitlines():
        match = _HTPASSWD_LINE.match(line)
        if line and match is None:
            raise _refuse(stack, f"egressProxyUsers has a line that is not user:$1$salt$hash ({line.split(':')[0]!r})")
        if match is not None:
            lines[_tenant(stack, match["user"])] = line
    return lines


def merge_shard_entries(parts: Mapping[str, Mapping[str, Any] | None], own: Sequence[str]) -> dict[str, Any]:
    """One output of every shard (``{stack: {tenant: entry}}``; None before a shard's first update) as one map;
    a tenant of two stacks (or of a shard and the platform's own list) is refused: one owner per tenant."""
    owners = {tenant: "the platform stack" for tenant in own}
    entries: dict[str, Any] = {}
    for stack, part in parts.items():
        for tenant, entry in (part or {}).items():
            if tenant in owners:
                raise pulumi.RunError(f"tenant {tenant!r} is in shard {stack} and in {owners[tenant]}: keep one")
            owners[tenant] = f"shard {stack}"
            entries[tenant] = entry
    return entries


def shard_proxy_tenants(texts: Mapping[str, str | None], own: Sequence[str]) -> list[ProxyTenant]:
    """The proxy users of every shard's tenants, from their ``egressAllowlists`` texts (``{stack: text}``)."""
    merged = merge_shard_entries({stack: parse_allowlists(stack, text) for stack, text in texts.items()}, own)
    return [ProxyTenant(tenant, domains) for tenant, domains in sorted(merged.items())]


def shard_htpasswd_lines(texts: Mapping[str, str | None], own: Sequence[str]) -> dict[str, str]:
    """Every shard's htpasswd lines (``{stack: text}``) as ``{user: line}``, one owner per user."""
    return merge_shard_entries({stack: parse_htpasswd(stack, text) for stack, text in texts.items()}, own)
