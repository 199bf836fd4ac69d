"""Model gateway: LiteLLM (to Amazon Bedrock) on core nodes, serving the MCP servers it is given.

Kata pods cannot reach ClusterIPs, so they call it through an internal cross-zone NLB, and the machine running Pulumi
never talks to LiteLLM. Tenants' keys and MCP tokens are not minted here: components/tenants/gateway_access.py.
Details: docs/gateway.md#litellm-on-core-nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import GatewayConfig, SelfHostedModel
from components.contracts.gateway import (
    LITELLM,
    MASTER_KEY_KEY,
    MASTER_KEY_SECRET,
    MCP_TOKENS_SECRET,
    NAMESPACE,
    RELEASE,
    SELECTOR,
    TENANT_GATEWAY,
)
from components.gateway.bedrock_access import bedrock_pod_identity
from components.gateway.stores import litellm_stores
from components.gateway.tenant_gateway import TenantGateway, TenantGatewayArgs, tenant_nlb
from components.gateway.values import LITELLM_CHART, SERVICE_ACCOUNT, release_values, with_mcp
from components.k8s.resources import child_options, keep_one_available, platform_namespace

if TYPE_CHECKING:
    from components.gateway.placement import ManagedPlacement


# ----------------------------------------------------------------------------------------------
# Component


MASTER_KEY_LENGTH = 64  # random characters after the sk- prefix LiteLLM requires


def generated_key(name: str, length: int, parent: pulumi.Resource) -> pulumi.Output[str]:
    """``sk-`` + ``length`` random letters and digits (about 6 bits each), as a Pulumi secret."""
    password = random.RandomPassword(name, length=length, special=False, opts=pulumi.ResourceOptions(parent=parent))
    return pulumi.Output.secret(password.result.apply(lambda value: f"sk-{value}"))


@dataclass(frozen=True)
class GatewayArgs:
    config: GatewayConfig
    cluster_name: pulumi.Input[str]
    region: str  # the cluster's region (the LB controller's); Bedrock's is config.bedrock_region
    vpc_cidr: str = ""  # NLB source range; empty leaves the controller's default
    placement: ManagedPlacement | None = None  # the managed database and cache (prod)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # e.g. the core node group
    lb_controller: Sequence[pulumi.Resource] = ()  # its webhook must admit the NLB Service
    self_hosted: tuple[SelfHostedModel, ...] = ()  # vLLM servers (components/models/): hosted_vllm routes
    # Tenants' MCP servers (components/tenants/gateway_access.py): LiteLLM name -> its mcp_servers entry, and -> its
    # token (secret); an Output when shards bring some (read through their outputs).
    mcp_servers: pulumi.Input[Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    mcp_tokens: pulumi.Input[Mapping[str, pulumi.Input[str]]] = field(default_factory=dict)


class Gateway(pulumi.ComponentResource):
    url: pulumi.Output[str]
    hostname: pulumi.Output[str]
    master_key: k8s.core.v1.Secret  # tenants' key Jobs read it by reference
    release: k8s.helm.v3.Release
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:Gateway", name, None, opts)
        cfg = args.config
        placement = args.placement
        if (cfg.rds_database or cfg.elasticache) and (placement is None or not placement.subnet_ids):
            raise pulumi.RunError("agent-platform:litellmDatabase: rds and elasticache need the subnets and core SG")

        k8s_opts = child_options(self)

        ns = platform_namespace(
            name, NAMESPACE, {"enforce": "baseline", "warn": "restricted"}, k8s_opts(*args.depends_on)
        )
        self.namespace = ns

        # --- identity: Bedrock through Pod Identity, only the configured models
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
            opts=k8s_opts(ns),
        )
        bedrock_identity = bedrock_pod_identity(
            f"{name}-bedrock", cfg, cluster_name=args.cluster_name, service_account=SERVICE_ACCOUNT, parent=self
        )

        # --- secrets the chart references. The master key is generated here, never chosen by hand.
        master_key = k8s.core.v1.Secret(
            f"{name}-master-key",
            metadata={"name": MASTER_KEY_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={MASTER_KEY_KEY: generated_key(f"{name}-master-key-value", MASTER_KEY_LENGTH, self)},
            opts=pulumi.ResourceOptions.merge(
                k8s_opts(ns), pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            ),
        )
        mcp_secret = self._mcp_tokens(name, args, k8s_opts(ns))
        database, cache = litellm_stores(
            name,
            cfg,
            cluster_name=args.cluster_name,
            region=args.region,
            placement=placement,
            identity=bedrock_identity,
            service_account=(SERVICE_ACCOUNT, service_account),
            namespace=ns,
            parent=self,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-litellm",
            name=RELEASE,
            namespace=NAMESPACE,
            chart=LITELLM_CHART,
            version=cfg.chart_version,
            values=with_mcp(
                release_values(cfg, database.env, cache.settings, cache.ca, args.self_hosted), args.mcp_servers
            ),
            timeout=900,
            opts=k8s_opts(
                ns, service_account, master_key, database.migrations, bedrock_identity, *cache.ready, *mcp_secret
            ),
        )
        keep_one_available(f"{name}-pdb", {"name": RELEASE, "namespace": NAMESPACE}, SELECTOR, k8s_opts(ns))

        # --- the internal NLB Kata pods use (they cannot reach the ClusterIP Service). It targets the tenant
        # gateway (nginx, inference routes only), never LiteLLM itself: components/gateway/tenant_gateway.py.
        self.tenant_gateway = TenantGateway(
            f"{name}-tenant-gateway",
            TenantGatewayArgs(
                namespace=NAMESPACE,
                image=cfg.tenant_gateway_image,
                replicas=cfg.replicas,
                upstream=f"{LITELLM.cluster_host}:{LITELLM.port}",
                depends_on=(ns, self.release),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        # The controller's webhook must be up before a LoadBalancer Service is admitted.
        nlb = tenant_nlb(f"{name}-nlb", args.vpc_cidr, k8s_opts(ns, *args.lb_controller))
        self.hostname = nlb.status.apply(lambda status: status.load_balancer.ingress[0].hostname)
        self.url = self.hostname.apply(TENANT_GATEWAY.url)

        self.master_key = master_key
        self.register_outputs({"url": self.url, "hostname": self.hostname})

    def _mcp_tokens(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions) -> list[k8s.core.v1.Secret]:
        """The servers' tokens in the Secret LiteLLM's environment reads (the registration names the variable)."""
        if not isinstance(args.mcp_servers, pulumi.Output) and not args.mcp_servers:
            return []
        secret = k8s.core.v1.Secret(
            f"{name}-mcp-tokens",
            metadata={"name": MCP_TOKENS_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data=args.mcp_tokens,
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            ),
        )
        return [secret]
