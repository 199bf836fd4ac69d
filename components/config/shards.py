"""Tenant shards: which platform settings a shard reads from the contract, and the shard's own configuration.

A shard stack (project ``tenant-shards``, folder tenants/) holds ``agent-platform:tenants`` and
``agent-platform:tenantSecrets`` like a single stack does; everything else it parses with the same typed parser from
the platform's contract (``tenantContract.settings``), so a tenant renders the same in both modes. docs/shards.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pulumi

from components.config.reader import NAMESPACE, ConfigError, check, decode_raw, unique

if TYPE_CHECKING:
    from components.config.platform import PlatformConfig

SHARD_PROJECT = "tenant-shards"
PLATFORM_STACK_KEY = f"{SHARD_PROJECT}:platformStack"
# Keys a shard owns (its tenants), the platform's secrets, and the shard list: never in the shared settings.
NOT_SHARED = ("tenants", "tenantSecrets", "knownTenants", "grafanaAdminPassword", "litellmDatabaseUrl", "tenantShards")
# grafanaAdminPassword is the platform's: a shard's parse passes this marker so the platform-only check holds.
HELD_BY_PLATFORM = "held-by-the-platform-stack"
_STACK = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def shard_stacks(names: Iterable[str]) -> tuple[str, ...]:
    """``tenantShards``: fully qualified ``<org>/<project>/<stack>`` names, each once."""
    names = tuple(names)
    for i, name in enumerate(names):
        check(f"tenantShards[{i}]", bool(_STACK.match(name)), f"{name!r} is not <org>/{SHARD_PROJECT}/<stack>")
    unique("tenantShards", list(names), "shard stack")
    return names


def shared_settings(config: Mapping[str, str]) -> dict[str, str]:
    """The platform's non-secret settings that a shard parses its tenants against (everything but the tenants, the
    secrets and the shard list), namespace-less, as the engine passes them: strings, objects and lists as JSON. A
    stack output carries numbers as floats; strings come back exactly, and the shard decodes them as the platform."""
    prefix = f"{NAMESPACE}:"
    return {
        key[len(prefix) :]: value
        for key, value in sorted(config.items())
        if key.startswith(prefix) and key[len(prefix) :] not in NOT_SHARED
    }


def running_stack_settings() -> dict[str, str]:
    """``shared_settings`` of the running stack's configuration (call from a program)."""
    from pulumi.runtime import config as runtime_config

    return shared_settings({**runtime_config.get_config_env(), **runtime_config.CONFIG.get()})


def shard_config(
    contract: Mapping[str, Any],
    tenants: Any,
    tenant_secrets: Any,
    secret_keys: Iterable[str] = (),
    known_tenants: Any = None,
) -> PlatformConfig:
    """A shard's typed configuration: the platform's settings from ``contract`` plus the shard's tenants, checked by
    the same parser, then against what only the platform can serve (docs/shards.md#ownership)."""
    from components.config.platform import PlatformConfig

    values = {
        **{key: decode_raw(key, value) for key, value in contract["settings"].items()},
        "tenants": tenants or [],
        "tenantSecrets": tenant_secrets or {},
        "grafanaAdminPassword": HELD_BY_PLATFORM,
        **({"knownTenants": known_tenants} if known_tenants is not None else {}),  # the shard's own record
    }
    if tenant_secrets and f"{NAMESPACE}:tenantSecrets" not in set(secret_keys):
        raise ConfigError("tenantSecrets", "must be a secret (pulumi config set --secret --path ...)")
    cfg = PlatformConfig.from_dict(contract["platformStack"], contract["region"], values)
    # A tenant in the platform's own list too is refused by the platform (one owner per tenant), not here: during a
    # migration the shard takes its tenants over before the platform lets them go (docs/shards.md#migration).
    for i, tenant in enumerate(cfg.tenants):
        check(
            f"tenants[{i}].dedicatedNodes",
            not tenant.dedicated_nodes,
            "dedicated nodes are the platform's NodePools: keep this tenant in the platform stack",
        )
        check(
            f"tenants[{i}].isolation",
            not tenant.fargate,
            "a Fargate tenant's profile, role and security group are the platform's: keep it in the platform stack",
        )
        check(
            f"tenants[{i}].egress.cidrs",
            not tenant.egress_cidrs,
            "egress CIDRs open the sandbox nodes' security group (platform): keep this tenant in the platform stack",
        )
    return cfg


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
