"""Tenants and their agents: one namespace per tenant, one Deployment (and optionally a warm pool) per agent.

Pod templates come from agent_pod.py (agent types: agent_types/); this module adds the per-tenant and per-agent
objects around them. Details: docs/cluster.md#tenants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import ImagesConfig, KataConfig, NetworkConfig, PlatformConfig, TenantConfig
from components.contracts.gateway import MCP_PATH
from components.contracts.labels import FARGATE_POD_LABELS, ISOLATION_LABEL, SANDBOX_LABEL
from components.tenants.agent_builder import AgentBuilder, Meta
from components.tenants.agent_pod import (
    SERVICE_ACCOUNT,
)
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.lifecycle import renamed
from components.tenants.sandbox_network import OPEN_EGRESS, SandboxEgress, sandbox_egress_rules

PSA_LABELS = {
    # Enforce restricted: the sandbox pod template meets it (non-root, no escalation, every capability
    # dropped, seccomp RuntimeDefault, only emptyDir/configMap/PVC volumes; tests/test_admission.py checks
    # every rendered template), so a pod that kubectl or a controller creates must too.
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/audit-version": "latest",
}


# ---------------------------------------------------------------------------------------------------
# Tenant component


@dataclass(frozen=True)
class TenantArgs:
    config: TenantConfig
    network: NetworkConfig
    kata: KataConfig
    images: ImagesConfig
    litellm_url: pulumi.Input[str]  # http://<internal NLB>:4000
    litellm_key: pulumi.Input[str]  # the tenant's LiteLLM virtual key (secret)
    models: tuple[str, ...]  # LiteLLM model names, first is the agents' default
    model_limits: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)  # see AgentFiles
    # tenantSecrets.<tenant> as {agent: {ENV: value}} (secret); every agent.secretEnv key must be there.
    secrets: pulumi.Input[Mapping[str, Mapping[str, str]]] | None = None
    # The agent-sandbox install (CRDs + controller), required when an agent has a warm pool.
    sandbox_controller: pulumi.Resource | None = None
    scaler: pulumi.Resource | None = None  # the KEDA install, required when an agent has a schedule
    depends_on: tuple[pulumi.Resource, ...] = ()  # e.g. the RuntimeClasses
    egress: SandboxEgress = OPEN_EGRESS  # allowlist mode needs proxy_url
    proxy_url: pulumi.Input[str] | None = None  # http://<tenant>:<password>@<proxy NLB>:3128 (secret)
    # Its MCP servers: agent -> the bearer token the gateway sends it (secret, McpTokens in gateway_access.py), and the
    # tenant gateway's MCP endpoint its other agents get (LITELLM_MCP_URL).
    mcp_tokens: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    mcp_url: pulumi.Input[str] | None = None
    protect: bool = False  # the stack protects data: Pulumi leaves the namespace and volumes when it deletes them
    # Fargate tenants: the pods' security group (components/tenants/fargate.py), bound by a SecurityGroupPolicy.
    fargate_security_group_id: pulumi.Input[str] | None = None

    @classmethod
    def for_tenant(
        cls,
        tenant: TenantConfig,
        platform: PlatformConfig,
        *,
        litellm_url: pulumi.Input[str],
        litellm_key: pulumi.Input[str],
        secrets: pulumi.Input[Mapping[str, Mapping[str, str]]] | None = None,
        sandbox_controller: pulumi.Resource | None = None,
        depends_on: tuple[pulumi.Resource, ...] = (),
        proxy_url: pulumi.Input[str] | None = None,
        mcp_tokens: Mapping[str, pulumi.Input[str]] | None = None,
        scaler: pulumi.Resource | None = None,
        fargate_security_group_id: pulumi.Input[str] | None = None,
    ) -> TenantArgs:
        """Args for one of the platform's tenants; its models are those its key may call (every Bedrock model when
        it lists none, and the self-hosted ones granted to it), its egress follows the stack's egressMode and its
        own cidrs; with MCP servers its agents get the gateway's MCP URL."""
        has_mcp = any(agent.mcp is not None for agent in tenant.agents)
        return cls(
            tenant,
            network=platform.network,
            kata=platform.kata,
            images=platform.images,
            litellm_url=litellm_url,
            litellm_key=litellm_key,
            models=platform.tenant_models(tenant),
            model_limits=platform.model_limits(),
            secrets=secrets,
            sandbox_controller=sandbox_controller,
            scaler=scaler,
            depends_on=depends_on,
            egress=SandboxEgress(allowlist=platform.egress.allowlist, cidrs=tenant.egress_cidrs),
            proxy_url=proxy_url,
            mcp_tokens=mcp_tokens or {},
            mcp_url=pulumi.Output.from_input(litellm_url).apply(lambda url: url + MCP_PATH) if has_mcp else None,
            protect=platform.protect,
            fargate_security_group_id=fargate_security_group_id,
        )


SECURITY_GROUP_POLICY = "sandbox-pods"  # per Fargate tenant: its pods' security group (vpcresources.k8s.aws)


def security_group_policy_spec(group_id: str) -> dict[str, Any]:
    """Every Fargate pod of the namespace (the tier label, as the profile selects) gets exactly this group: the VPC
    resource controller's SecurityGroupPolicy (CRD v1beta1; EKS user guide sg-pods-example-deployment.html)."""
    return {"podSelector": {"matchLabels": dict(FARGATE_POD_LABELS)}, "securityGroups": {"groupIds": [group_id]}}


class Tenant(pulumi.ComponentResource):
    namespace: str

    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        cfg = args.config
        # a renamed tenant's resources keep their state (``name`` is the tenant's name)
        opts = pulumi.ResourceOptions.merge(opts, renamed(name, cfg.former_names))
        super().__init__("agent-platform:agents:Tenant", name, None, opts)
        if not args.models:
            raise ValueError(f"tenant {cfg.name}: no LiteLLM model to configure the agents with")
        if args.egress.allowlist and args.proxy_url is None:
            raise ValueError(f"tenant {cfg.name}: egressMode allowlist needs the egress proxy URL (proxy_url)")
        if missing := [a.name for a in cfg.agents if a.mcp is not None and a.name not in args.mcp_tokens]:
            raise ValueError(f"tenant {cfg.name}: MCP servers {missing} need their gateway tokens (mcp_tokens)")
        if cfg.fargate != (args.fargate_security_group_id is not None):
            raise ValueError(f"tenant {cfg.name}: a Fargate tenant, and only one, needs its pods' security group")
        ns_name = cfg.namespace
        base_labels = {"app.kubernetes.io/part-of": "agent-platform", "agent-platform.io/tenant": cfg.name}
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": ns_name,
                "labels": {**base_labels, SANDBOX_LABEL: "true", ISOLATION_LABEL: cfg.isolation, **PSA_LABELS},
            },
            # retain_on_delete: deleting the tenant for good leaves its namespace to the operator (docs/tenants.md)
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), retain_on_delete=args.protect),
        )
        child = pulumi.ResourceOptions(parent=namespace)
        meta = Meta(ns_name, base_labels)

        _namespace_limits(name, cfg, meta, child)
        egress_rules = sandbox_egress_rules(args.network, args.egress)
        ready: list[pulumi.Resource] = []
        if args.fargate_security_group_id is not None:
            # A pod gets the profile's placement and the policy's group only if both exist when it is created.
            ready.extend(args.depends_on)
            ready.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-pod-sg",
                    api_version="vpcresources.k8s.aws/v1beta1",
                    kind="SecurityGroupPolicy",
                    metadata=meta(SECURITY_GROUP_POLICY),
                    spec=pulumi.Output.from_input(args.fargate_security_group_id).apply(security_group_policy_spec),
                    opts=child,
                )
            )
        # Not enforced on Fargate (the security group is), kept so every tenant namespace says the same.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta("sandbox-isolation"),
            spec={
                "podSelector": {},  # every pod in the namespace
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],  # agents only connect out (WebSocket / long polling)
                "egress": egress_rules,
            },
            opts=child,
        )
        k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(SERVICE_ACCOUNT),
            automount_service_account_token=False,
            opts=child,
        )

        secrets = pulumi.Output.secret(args.secrets if args.secrets is not None else {})
        agents = AgentBuilder(
            name, args, namespace, meta, secrets, egress_rules, pulumi.ResourceOptions(parent=self), ready
        )
        for agent in cfg.agents:
            agents.add(agent, AGENT_TYPES[agent.type])

        self.namespace = ns_name
        self.register_outputs({"namespace": ns_name})


def _namespace_limits(name: str, cfg: TenantConfig, meta: Meta, opts: pulumi.ResourceOptions) -> None:
    """The tenant's ResourceQuota and LimitRange."""
    k8s.core.v1.ResourceQuota(
        f"{name}-quota",
        metadata=meta("sandbox-quota"),
        spec={
            # Kata RuntimeClass overhead is charged to every pod on top of its requests/limits.
            "hard": {
                "requests.cpu": cfg.quota.cpu,
                "limits.cpu": cfg.quota.cpu,
                "requests.memory": cfg.quota.memory,
                "limits.memory": cfg.quota.memory,
                "pods": str(cfg.quota.pods),
                "requests.storage": cfg.quota.storage,
                "persistentvolumeclaims": str(cfg.quota.pods),
            }
        },
        opts=opts,
    )
    k8s.core.v1.LimitRange(
        f"{name}-limits",
        metadata=meta("sandbox-limits"),
        spec={
            "limits": [
                {
                    # Defaults for pods that do not size themselves (agents always do).
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "2Gi"},
                    "defaultRequest": {"cpu": "1", "memory": "2Gi"},
                    "max": {"cpu": cfg.quota.cpu, "memory": cfg.quota.memory},
                },
                {"type": "PersistentVolumeClaim", "max": {"storage": cfg.quota.storage}},
            ]
        },
        opts=opts,
    )
