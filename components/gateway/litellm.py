"""Model gateway: LiteLLM (to Amazon Bedrock) on core nodes, with one LiteLLM virtual key per tenant.

Kata pods cannot reach ClusterIPs, so they call it through an internal cross-zone NLB, and the machine running Pulumi
never talks to LiteLLM (keys are registered by in-cluster Jobs). Details: docs/gateway.md#litellm-on-core-nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import GatewayConfig, SelfHostedModel, TenantConfig
from components.contracts.gateway import (
    CLUSTER_URL,
    KEY_JOB_SELECTOR,
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
from components.gateway.keys import (
    KEY_JOB_BACKOFF_LIMIT,
    KEY_JOB_DEADLINE,
    KEY_JOB_PULUMI_TIMEOUT,
    key_job_name,
    key_job_pod_spec,
)
from components.gateway.mcp import McpServer, mcp_servers, with_mcp
from components.gateway.stores import litellm_stores
from components.gateway.tenant_gateway import TenantGateway, TenantGatewayArgs, tenant_nlb
from components.gateway.values import LITELLM_CHART, SERVICE_ACCOUNT, release_values
from components.k8s.resources import child_options, keep_one_available, platform_namespace, run_to_completion_job
from components.tenants.lifecycle import former_aliases

if TYPE_CHECKING:
    from components.gateway.placement import ManagedPlacement

TENANT_KEYS_SECRET = "litellm-tenant-keys"
KEY_JOB_SERVICE_ACCOUNT = "litellm-key-registrar"


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
    tenants: tuple[TenantConfig, ...]
    tenant_models: Mapping[str, tuple[str, ...]]  # tenant -> the models its team and key may call
    cluster_name: pulumi.Input[str]
    region: str  # the cluster's region (the LB controller's); Bedrock's is config.bedrock_region
    vpc_cidr: str = ""  # NLB source range; empty leaves the controller's default
    placement: ManagedPlacement | None = None  # the managed database and cache (prod)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # e.g. the core node group
    lb_controller: Sequence[pulumi.Resource] = ()  # its webhook must admit the NLB Service
    self_hosted: tuple[SelfHostedModel, ...] = ()  # vLLM servers (components/models/): hosted_vllm routes


class Gateway(pulumi.ComponentResource):
    url: pulumi.Output[str]
    hostname: pulumi.Output[str]
    tenant_keys: dict[str, pulumi.Output[str]]  # secret
    mcp_tokens: dict[str, dict[str, pulumi.Output[str]]]  # tenant -> MCP server (agent) -> its bearer token (secret)
    key_jobs: dict[str, k8s.batch.v1.Job]  # tenant -> the Job that registered its key (tenant pods wait for it)
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
        servers = mcp_servers(args.tenants)
        mcp_secret = self._mcp_tokens(name, servers, k8s_opts(ns))
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
            values=with_mcp(release_values(cfg, database.env, cache.settings, cache.ca, args.self_hosted), servers),
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

        # --- tenant virtual keys: generated here, registered in LiteLLM by in-cluster Jobs
        passwords: dict[str, random.RandomPassword] = {}
        self.tenant_keys = {}
        self.key_jobs = {}
        for tenant in args.tenants:
            passwords[tenant.name] = random.RandomPassword(
                f"{name}-key-{tenant.name}",
                length=40,
                special=False,
                # a renamed tenant keeps its key (docs/tenants.md)
                opts=pulumi.ResourceOptions(parent=self, aliases=former_aliases(f"{name}-key-", tenant)),
            )
            self.tenant_keys[tenant.name] = pulumi.Output.secret(
                passwords[tenant.name].result.apply(lambda value: f"sk-{value}")
            )
        if args.tenants:
            self._key_jobs(name, args, ns, passwords, [self.release, master_key])

        self.register_outputs({"url": self.url, "hostname": self.hostname})

    def _mcp_tokens(
        self, name: str, servers: tuple[McpServer, ...], opts: pulumi.ResourceOptions
    ) -> list[k8s.core.v1.Secret]:
        """One generated bearer token per MCP server (its own: a leaked one opens nothing else), in the Secret
        LiteLLM's environment reads; the tenant's server gets the same value (``mcp_tokens``)."""
        self.mcp_tokens = {}
        for server in servers:
            password = random.RandomPassword(
                f"{name}-mcp-token-{server.tenant.name}-{server.agent.name}",
                length=48,
                special=False,
                # a renamed tenant keeps its servers' tokens (its LiteLLM server names follow the new name)
                opts=pulumi.ResourceOptions(
                    parent=self,
                    aliases=former_aliases(f"{name}-mcp-token-", server.tenant, f"-{server.agent.name}"),
                ),
            )
            tokens = self.mcp_tokens.setdefault(server.tenant.name, {})
            tokens[server.agent.name] = pulumi.Output.secret(password.result)
        if not servers:
            return []
        secret = k8s.core.v1.Secret(
            f"{name}-mcp-tokens",
            metadata={"name": MCP_TOKENS_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={s.name: self.mcp_tokens[s.tenant.name][s.agent.name] for s in servers},
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            ),
        )
        return [secret]

    def _key_jobs(
        self,
        name: str,
        args: GatewayArgs,
        ns: k8s.core.v1.Namespace,
        passwords: dict[str, random.RandomPassword],
        after: list[pulumi.Resource],
    ) -> None:
        opts = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        keys = k8s.core.v1.Secret(
            f"{name}-tenant-keys",
            metadata={"name": TENANT_KEYS_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={tenant: key for tenant, key in self.tenant_keys.items()},
            opts=opts,
        )
        registrar = k8s.core.v1.ServiceAccount(
            f"{name}-key-registrar",
            metadata={"name": KEY_JOB_SERVICE_ACCOUNT, "namespace": NAMESPACE},
            automount_service_account_token=False,
            opts=opts,
        )
        for tenant in args.tenants:
            models = args.tenant_models[tenant.name]
            job_name = key_job_name(tenant, args.config.curl_image, models)
            labels = {**KEY_JOB_SELECTOR, "agent-platform.io/tenant": tenant.name}
            self.key_jobs[tenant.name] = run_to_completion_job(
                f"{name}-key-job-{tenant.name}",
                {"name": job_name, "namespace": NAMESPACE, "labels": labels},
                key_job_pod_spec(
                    tenant,
                    args.config.curl_image,
                    models=models,
                    service_account=KEY_JOB_SERVICE_ACCOUNT,
                    litellm_url=CLUSTER_URL,
                    master_key_secret=(MASTER_KEY_SECRET, MASTER_KEY_KEY),
                    tenant_keys_secret=TENANT_KEYS_SECRET,
                ),
                backoff_limit=KEY_JOB_BACKOFF_LIMIT,
                deadline_seconds=KEY_JOB_DEADLINE,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    aliases=former_aliases(f"{name}-key-job-", tenant),
                    depends_on=[keys, registrar, *after],
                    # a rotated key (replaced RandomPassword) must be registered again
                    replace_with=[passwords[tenant.name]],
                    # longer than the Job's activeDeadlineSeconds (gateway_keys.py states the budget)
                    custom_timeouts=pulumi.CustomTimeouts(create=KEY_JOB_PULUMI_TIMEOUT, update=KEY_JOB_PULUMI_TIMEOUT),
                ),
            )
