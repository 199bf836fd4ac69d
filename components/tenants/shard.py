"""Tenant shards: the contract the platform exports for them, and the egress proxy passwords a shard owns beside its
Tenants (served by the platform). A shard's gateway access (LiteLLM keys, MCP tokens) is the same component the
platform uses for its own tenants: components/tenants/gateway_access.py.

Who owns what, and why: docs/shards.md#ownership.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_random as random

from components.config import TenantConfig
from components.egress.proxy import allowlists
from components.egress.squid import allowlists_text, htpasswd_line, htpasswd_text, proxy_url

# The contract's own version (tenantContract.version): a shard refuses another major. docs/outputs.md.
CONTRACT_VERSION = "1.1"
CONTRACT_KEYS = ("version", "platformStack", "region", "settings", "gatewayUrl", "egressProxyHost", "agentSandbox")
CONTRACT_KEYS += ("tenants", "mcpServers")
ADDED_IN_MINOR = ("mcpServers",)  # a 1.0 platform lacks them: a shard that needs one checks it (docs/outputs.md)
# What a shard exports for the platform (read through tenantShards): non-secret allowlists, secret passwords.
EGRESS_ALLOWLISTS, EGRESS_USERS = "egressAllowlists", "egressProxyUsers"


def tenant_contract(
    *,
    platform_stack: str,
    region: str,
    settings: Mapping[str, Any],
    gateway_url: pulumi.Input[str],
    egress_proxy_host: pulumi.Input[str] | None,
    agent_sandbox: bool,
    tenants: Sequence[str],
) -> dict[str, Any]:
    """The ``tenantContract`` stack output: everything a shard needs from the platform, no secret."""
    return {
        "version": CONTRACT_VERSION,
        "platformStack": platform_stack,
        "region": region,
        "settings": dict(settings),
        "gatewayUrl": gateway_url,
        "egressProxyHost": egress_proxy_host,
        "agentSandbox": agent_sandbox,
        "tenants": sorted(tenants),
        "mcpServers": True,  # the platform registers its shards' MCP servers (their mcpServers outputs)
    }


def check_contract(contract: Any, supported_major: str = CONTRACT_VERSION.split(".")[0]) -> Mapping[str, Any]:
    """The contract as read through the stack reference; a missing one or another major version stops the shard."""
    if not isinstance(contract, Mapping):
        raise pulumi.RunError(
            "the platform stack exports no tenantContract: update the platform first (docs/shards.md)"
        )
    version = str(contract.get("version", ""))
    if version.split(".")[0] != supported_major:
        raise pulumi.RunError(f"platform tenantContract {version or '?'} is not compatible with {supported_major}.x")
    missing = [key for key in CONTRACT_KEYS if key not in contract and key not in ADDED_IN_MINOR]
    if missing:
        raise pulumi.RunError(f"platform tenantContract {version} lacks {', '.join(missing)}")
    return contract


def shard_references(stacks: Sequence[str]) -> dict[str, pulumi.StackReference]:
    """One stack reference per shard stack: the platform reads every output of a shard through it."""
    return {stack: pulumi.StackReference(stack) for stack in stacks}


def shard_texts(refs: Mapping[str, pulumi.StackReference], name: str) -> pulumi.Output[dict[str, Any]]:
    """Output ``name`` of every shard as ``{stack: value}`` (None before a shard's first update)."""
    stacks = list(refs)
    return pulumi.Output.all(*(refs[stack].get_output(name) for stack in stacks)).apply(
        lambda values: dict(zip(stacks, values, strict=True))
    )


def shard_egress_entries(
    refs: Mapping[str, pulumi.StackReference],
) -> tuple[pulumi.Output[dict[str, str]] | None, ...]:
    """The egress outputs of every shard as ``{stack: text}``: the allowlists and the (secret) htpasswd lines;
    (None, None) in single-stack mode. The proxy parses, checks and merges them as it renders
    (components/egress/squid.py)."""
    if not refs:
        return None, None
    return shard_texts(refs, EGRESS_ALLOWLISTS), pulumi.Output.secret(shard_texts(refs, EGRESS_USERS))


def shard_resource_name(stack: str) -> str:
    """A stack name as a Kubernetes name part (lowercase letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")[:40]


def moved_from(parent: pulumi.Resource, platform_name: str) -> pulumi.ResourceOptions:
    """A child of ``parent`` that adopts the platform's resource of ``platform_name`` once ``pulumi state move`` has
    brought it here: the move re-parents a resource whose parent stays behind to the root stack, so that is the
    alias (pulumi/pulumi pkg/cmd/pulumi/state/state_move.go; docs/shards.md#migration)."""
    return pulumi.ResourceOptions(
        parent=parent, aliases=[pulumi.Alias(name=platform_name, parent=pulumi.ROOT_STACK_RESOURCE)]
    )


class TenantProxyUsers(pulumi.ComponentResource):
    """A shard's egress proxy users: one password per tenant, generated and hashed here (the htpasswd line) and
    served by the platform's proxy, which reads ``htpasswd`` (secret) and ``allowlists`` through the shard's
    stack outputs (tenantShards): the password itself never leaves the shard."""

    urls: dict[str, pulumi.Output[str]]  # secret
    htpasswd: pulumi.Output[str]  # secret: "tenant:$1$salt$hash" lines
    allowlists: str  # JSON: {tenant: {"domains": [...], "cidrs": []}}

    def __init__(
        self,
        name: str,
        tenants: Sequence[TenantConfig],
        proxy_host: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("agent-platform:agents:TenantProxyUsers", name, None, opts)
        results = {
            t.name: random.RandomPassword(
                f"{name}-{t.name}", length=40, special=False, opts=moved_from(self, f"egress-{t.name}-password")
            ).result
            for t in tenants
        }
        self.urls = {
            tenant: pulumi.Output.secret(
                pulumi.Output.all(proxy_host, password).apply(lambda v, t=tenant: proxy_url(t, v[1], v[0]))
            )
            for tenant, password in results.items()
        }
        self.htpasswd = pulumi.Output.secret(
            pulumi.Output.all(**results).apply(
                lambda pw: htpasswd_text({t: htpasswd_line(t, p) for t, p in pw.items()})
            )
        )
        self.allowlists = allowlists_text(allowlists(tenants))
        self.register_outputs({})
