"""Tenant shards: the contract the platform exports for them, and the per-tenant pieces a shard owns beside its
Tenants: the LiteLLM key (minted and registered by the shard) and the egress proxy password (served by the platform).

Who owns what, and why: docs/shards.md#ownership.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import TenantConfig
from components.contracts.gateway import CLUSTER_URL, KEY_JOB_SELECTOR, MASTER_KEY_KEY, MASTER_KEY_SECRET, NAMESPACE
from components.egress.proxy import allowlists
from components.egress.squid import allowlists_text, htpasswd_line, htpasswd_text, proxy_url
from components.gateway.keys import (
    KEY_JOB_BACKOFF_LIMIT,
    KEY_JOB_DEADLINE,
    KEY_JOB_PULUMI_TIMEOUT,
    key_job_name,
    key_job_pod_spec,
)
from components.k8s.resources import run_to_completion_job

# The contract's own version (tenantContract.version): a shard refuses another major. docs/outputs.md.
CONTRACT_VERSION = "1.0"
CONTRACT_KEYS = ("version", "platformStack", "region", "settings", "gatewayUrl", "egressProxyHost", "agentSandbox")
CONTRACT_KEYS += ("tenants",)
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
    missing = [key for key in CONTRACT_KEYS if key not in contract]
    if missing:
        raise pulumi.RunError(f"platform tenantContract {version} lacks {', '.join(missing)}")
    return contract


def shard_egress_entries(stacks: Sequence[str]) -> tuple[pulumi.Output[dict[str, str]] | None, ...]:
    """The egress outputs of every shard in ``stacks`` as ``{stack: text}``: the allowlists and the (secret) htpasswd
    lines, read through stack references; (None, None) in single-stack mode. The proxy parses, checks and merges them
    as it renders (components/egress/squid.py)."""
    if not stacks:
        return None, None
    refs = [pulumi.StackReference(stack) for stack in stacks]

    def texts(name: str) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.all(*(ref.get_output(name) for ref in refs)).apply(
            lambda values: dict(zip(stacks, values, strict=True))
        )

    return texts(EGRESS_ALLOWLISTS), pulumi.Output.secret(texts(EGRESS_USERS))


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


class TenantKeys(pulumi.ComponentResource):
    """A shard's LiteLLM keys: one per tenant, generated here and registered by the same in-cluster Job the platform
    runs for its own tenants, in the gateway's namespace, where the master key Secret is read by reference only."""

    keys: dict[str, pulumi.Output[str]]  # secret
    jobs: dict[str, k8s.batch.v1.Job]

    def __init__(
        self,
        name: str,
        tenants: Sequence[TenantConfig],
        curl_image: str,
        models: Mapping[str, Sequence[str]],  # tenant -> the models its team and key may call
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("agent-platform:agents:TenantKeys", name, None, opts)
        passwords = {
            t.name: random.RandomPassword(
                f"{name}-{t.name}", length=40, special=False, opts=moved_from(self, f"gateway-key-{t.name}")
            )
            for t in tenants
        }
        self.keys = {t: pulumi.Output.secret(p.result.apply(lambda v: f"sk-{v}")) for t, p in passwords.items()}
        secret_name = f"litellm-tenant-keys-{shard_resource_name(name)}"
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": secret_name, "namespace": NAMESPACE},
            type="Opaque",
            string_data=dict(self.keys),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]),
        )
        self.jobs = {}
        for tenant in tenants:
            self.jobs[tenant.name] = run_to_completion_job(
                f"{name}-job-{tenant.name}",
                {
                    "name": key_job_name(tenant, curl_image, models[tenant.name]),
                    "namespace": NAMESPACE,
                    "labels": {**KEY_JOB_SELECTOR, "agent-platform.io/tenant": tenant.name},
                },
                key_job_pod_spec(
                    tenant,
                    curl_image,
                    models=models[tenant.name],
                    service_account="",  # the namespace's default account; the pod mounts no token
                    litellm_url=CLUSTER_URL,
                    master_key_secret=(MASTER_KEY_SECRET, MASTER_KEY_KEY),
                    tenant_keys_secret=secret_name,
                ),
                backoff_limit=KEY_JOB_BACKOFF_LIMIT,
                deadline_seconds=KEY_JOB_DEADLINE,
                opts=pulumi.ResourceOptions.merge(
                    moved_from(self, f"gateway-key-job-{tenant.name}"),
                    pulumi.ResourceOptions(
                        depends_on=[secret],
                        replace_with=[passwords[tenant.name]],
                        custom_timeouts=pulumi.CustomTimeouts(
                            create=KEY_JOB_PULUMI_TIMEOUT, update=KEY_JOB_PULUMI_TIMEOUT
                        ),
                    ),
                ),
            )
        self.register_outputs({})


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
