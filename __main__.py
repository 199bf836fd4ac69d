"""Agent platform on Amazon EKS: read the stack config once, compose the components, export outputs."""

import pulumi

from components.admission.sandbox_admission import SandboxAdmission, SandboxAdmissionArgs
from components.capacity.karpenter import GpuPool, Karpenter, KarpenterArgs
from components.capacity.kata_node_group import KataNodes, KataNodesArgs
from components.capacity.keda import Keda, KedaArgs
from components.cluster.eks import Cluster, ClusterArgs
from components.cluster.lb_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.config import ConfigError, load
from components.config.shards import running_stack_settings
from components.contracts import namespaces
from components.egress.proxy import EgressProxy, EgressProxyArgs
from components.gateway.litellm import Gateway, GatewayArgs
from components.gateway.metrics_key import MetricsKey, MetricsKeyArgs
from components.gateway.placement import ManagedPlacement
from components.models.servers import ModelServers, ModelServersArgs
from components.network.network_policies import PlatformNetworkPolicies, PlatformNetworkPoliciesArgs
from components.network.node_security import SandboxNodeSecurityGroup, SandboxNodeSecurityGroupArgs
from components.network.vpc import Network, NetworkArgs
from components.observability.monitoring import Observability, ObservabilityArgs
from components.runtime.agent_sandbox import AgentSandbox, AgentSandboxArgs
from components.runtime.kata_deploy import KataRuntime, KataRuntimeArgs, firecracker_devmapper_userdata
from components.runtime.nvidia import DevicePluginArgs, NvidiaDevicePlugin
from components.tenants.fargate import FargateTier, FargateTierArgs
from components.tenants.gateway_access import McpTokens, TenantKeys, TenantKeysArgs, gateway_mcp
from components.tenants.shard import shard_egress_entries, shard_references, tenant_contract
from components.tenants.tenant import Tenant, TenantArgs

try:
    cfg = load()
except ConfigError as error:
    # One clear line naming the key, not a traceback from deep inside a provider.
    raise pulumi.RunError(str(error)) from None
for warning in cfg.warnings:  # what holds differently than the tenant may expect (Fargate): docs/fargate.md
    pulumi.log.warn(warning)

# --- network
network = Network(
    "network",
    NetworkArgs(cfg.network, cfg.cluster.name, protect=cfg.protect, log_retention_days=cfg.egress.log_retention_days),
)

# --- cluster and capacity
cluster = Cluster(
    "cluster",
    ClusterArgs(
        cfg.cluster,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        protect=cfg.protect,
    ),
)
# Every in-cluster part (and the in-cluster half of a mixed component) takes the cluster's Kubernetes provider
# from its component's opts.providers: children inherit it by package, AWS children keep the default provider.
in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
# Sandbox (Kata, gVisor) nodes carry their own security group: only what a host running untrusted code needs.
sandbox_nodes_sg = SandboxNodeSecurityGroup(
    "sandbox-nodes",
    SandboxNodeSecurityGroupArgs(
        cfg.cluster.name,
        vpc_id=network.vpc_id,
        cluster_security_group_id=cluster.cluster_security_group_id,
        network=cfg.network,
        allowlist=cfg.egress.allowlist,
        tenant_cidrs=tuple(c for t in cfg.tenants if not t.fargate for c in t.egress_cidrs),  # Fargate: own SG
        kata_monitor=cfg.kata.monitor,
    ),
)
# Kata nodes prepare the devmapper thin pool kata-fc needs, only when Firecracker is enabled.
kata_user_data = firecracker_devmapper_userdata() if cfg.kata.firecracker else None
# Karpenter launches Kata nodes; a managed node group is opt-in (kataManagedNodeGroup), see README.
kata_nodes = (
    KataNodes(
        "kata",
        KataNodesArgs(
            cfg.cluster.kata,
            cluster.node_group_cluster(),
            kata_user_data,
            security_group_id=sandbox_nodes_sg.id,
            security_group=sandbox_nodes_sg,
        ),
    )
    if cfg.cluster.kata_managed_node_group
    else None
)
karpenter = Karpenter(
    "karpenter",
    KarpenterArgs(
        cfg.karpenter,
        cfg.region,
        cluster_name=cluster.name,
        cluster_plain_name=cfg.cluster.name,
        cluster_endpoint=cluster.endpoint,
        cluster_security_group_id=cluster.cluster_security_group_id,
        disk_gib=cfg.cluster.kata.disk_gib,
        node_ssm_access=cfg.cluster.node_ssm_access,
        core_nodes=(cluster.core_node_group,),
        user_data=kata_user_data,
        gvisor=cfg.kata.gvisor,
        security_group_id=sandbox_nodes_sg.id,
        security_group=sandbox_nodes_sg,
        dedicated_tenants=tuple(t.name for t in cfg.tenants if t.dedicated_nodes),
        # Self-hosted models: a tainted GPU pool, room for every model at its maximum plus one rollout surge each.
        gpu=GpuPool(
            cfg.models.instance_families,
            cfg.models.gpu_capacity_types,
            cfg.models.gpu_disk_gib,
            cfg.models.gpu_limit + sum(m.gpus for m in cfg.models.self_hosted),
        )
        if cfg.models.enabled
        else None,
    ),
    opts=in_cluster,
)

# Cluster infrastructure the NLB Services (gateway, egress proxy) wait for. Created by the gateway before: its
# resources keep their names, and their URNs through aliases.
lb_controller = LoadBalancerController(
    "gateway-lb-controller",
    LoadBalancerControllerArgs(
        cfg.gateway.lb_controller_version,
        cluster_name=cluster.name,
        region=cfg.region,
        vpc_id=network.vpc_id,
        depends_on=[cluster.core_node_group],
        moved_from=pulumi.create_urn("gateway", "agent-platform:gateway:Gateway"),
    ),
    opts=in_cluster,
)

# --- model gateway (before the tenants: agents use gateway.url). Tenants' access to it (keys, MCP tokens) has an
# owner of its own, the same in a shard (components/tenants/gateway_access.py); the Gateway created those before:
# they keep their URNs through aliases.
secrets = pulumi.Config("agent-platform")
former_gateway = pulumi.create_urn("gateway", "agent-platform:gateway:Gateway")
mcp = McpTokens("gateway-mcp-token", cfg.tenants, former_parent=former_gateway)
# Tenant shards (docs/shards.md): one stack reference each; the gateway registers their MCP servers and the egress
# proxy serves their tenants' users, read from their outputs.
shards = shard_references(cfg.tenant_shards)
mcp_servers, mcp_tokens = gateway_mcp(mcp, shards, [t.name for t in cfg.tenants])
gateway = Gateway(
    "gateway",
    GatewayArgs(
        cfg.gateway,
        cluster_name=cluster.name,
        region=cfg.region,
        vpc_cidr=cfg.network.cidr,
        # Core and Kata nodes share this SG today; a core-only SG narrows the cache and database further.
        placement=ManagedPlacement(
            network.vpc_id, network.private_subnet_ids, cluster.node_security_group_id, protect=cfg.protect
        ),
        depends_on=[cluster.core_node_group],
        lb_controller=[lb_controller],
        self_hosted=cfg.models.self_hosted,
        mcp_servers=mcp_servers,
        mcp_tokens=mcp_tokens,
    ),
    opts=in_cluster,
)
tenant_keys = TenantKeys(
    "gateway-key",
    TenantKeysArgs.platform(
        cfg.tenants,
        cfg.gateway.curl_image,
        {t.name: cfg.tenant_models(t) for t in cfg.tenants},
        gateway=former_gateway,
        namespace=gateway.namespace,
        litellm=[gateway.release, gateway.master_key],
    ),
    opts=in_cluster,
)

# A scrape credential of its own for LiteLLM's /metrics (the ServiceMonitor's bearer token), not the master key.
MetricsKey(
    "gateway-metrics-key",
    MetricsKeyArgs(cfg.gateway.curl_image, depends_on=[gateway.release], namespace=gateway.namespace),
    opts=in_cluster,
)

# --- Kata runtime (kata-deploy, RuntimeClasses)
core_nodes = (cluster.core_node_group,)
kata_runtime = KataRuntime(
    "kata-runtime",
    KataRuntimeArgs(cfg.kata, depends_on=core_nodes, dedicated_nodes=any(t.dedicated_nodes for t in cfg.tenants)),
    opts=in_cluster,
)

# --- observability
observability = Observability(
    "observability",
    ObservabilityArgs(
        cfg.observability,
        admin_password=secrets.require_secret("grafanaAdminPassword"),
        litellm_namespace=gateway.namespace,
        kata_monitor=kata_runtime.release if cfg.kata.monitor else None,
        depends_on=[cluster.core_node_group],
        tenants=cfg.tenants,
    ),
    opts=in_cluster,
)

# --- KEDA: agent schedules (cron scaler) and the self-hosted models' queue (Prometheus scaler); one install
keda = (
    Keda("keda", KedaArgs(cfg.images.keda_version, core_nodes), opts=in_cluster)
    if cfg.models.enabled or any(a.schedule is not None for t in cfg.tenants for a in t.agents)
    else None
)
# --- self-hosted models (models.selfHosted): NVIDIA's device plugin on the GPU pool, KEDA, the vLLM servers
models = None
if cfg.models.enabled and keda is not None:
    device_plugin = NvidiaDevicePlugin(
        "nvidia",
        DevicePluginArgs(cfg.models.device_plugin_version, depends_on=core_nodes),
        opts=in_cluster,
    )
    models = ModelServers(
        "models",
        ModelServersArgs(
            cfg.models,
            cluster_name=cluster.name,
            region=cfg.region,
            keda=keda.release,
            monitoring=observability.release,
            depends_on=[device_plugin.release, karpenter],
        ),
        opts=in_cluster,
    )

# --- the shards' egress entries (checked and merged by the proxy as it renders)
shard_allowlists, shard_users = shard_egress_entries(shards)

# --- egress proxy (allowlist mode): per-tenant domain allowlists behind an internal NLB
egress = (
    EgressProxy(
        "egress",
        EgressProxyArgs(
            cfg.egress,
            tenants=cfg.tenants,
            vpc_cidr=cfg.network.cidr,
            lb_controller=lb_controller,
            monitoring=observability.release,
            depends_on=[cluster.core_node_group],
            shard_allowlists=shard_allowlists,
            shard_users=shard_users,
        ),
        opts=in_cluster,
    )
    if cfg.egress.allowlist
    else None
)

# --- kata runtime and tenants
sandbox_controller = (
    AgentSandbox("agent-sandbox", AgentSandboxArgs(cfg.images.agent_sandbox_version, core_nodes), opts=in_cluster)
    if cfg.any_warm_pool or cfg.tenant_shards  # shards' warm pools need the controller too
    else None
)
# agent schedules (office hours): KEDA's cron scaler, installed only when an agent has a schedule
# --- default-deny NetworkPolicies with explicit allows in every platform namespace, and allow-all in kube-system
# (strict mode would deny EKS's add-ons otherwise). They wait for the namespaces only, not for the workloads.
platform_namespaces: dict[str, pulumi.Resource | None] = {
    namespaces.KUBE_SYSTEM: None,
    namespaces.LITELLM_NAMESPACE: gateway.namespace,
    namespaces.MONITORING_NAMESPACE: observability.namespace,
    namespaces.KARPENTER_NAMESPACE: karpenter.namespace,
    namespaces.KATA_NAMESPACE: kata_runtime.namespace,
}
if egress is not None:
    platform_namespaces[namespaces.EGRESS_NAMESPACE] = egress.namespace
if sandbox_controller is not None:
    platform_namespaces[namespaces.AGENT_SANDBOX_NAMESPACE] = sandbox_controller.manifest  # the manifest creates it
if models is not None:
    platform_namespaces[namespaces.MODELS_NAMESPACE] = models.namespace
    platform_namespaces[namespaces.NVIDIA_NAMESPACE] = device_plugin.namespace
if keda is not None:
    platform_namespaces[namespaces.KEDA_NAMESPACE] = keda.namespace
if cfg.cluster.cloudwatch_observability:
    platform_namespaces[namespaces.CLOUDWATCH_NAMESPACE] = cluster.addons["amazon-cloudwatch-observability"]
PlatformNetworkPolicies(
    "network-policies",
    PlatformNetworkPoliciesArgs(
        platform_namespaces,
        vpc_cidr=cfg.network.cidr,
        external_database=cfg.gateway.rds_database,
        kata_monitor=cfg.kata.monitor,
        external_cache=cfg.gateway.elasticache,
        service_cidr=cfg.cluster.service_cidr,
    ),
    opts=in_cluster,
)
# In-cluster enforcement of the sandbox rules for what CrossGuard never sees (controllers, kubectl).
admission = SandboxAdmission(
    "admission",
    SandboxAdmissionArgs(
        mode=cfg.admission_mode,
        runtime_classes=cfg.kata.runtime_classes,
        service_cidrs=(cfg.cluster.service_cidr,),
        resolver_ip=cfg.network.resolver_ip,
        fargate_namespaces=tuple(t.namespace for t in cfg.fargate_tenants),
    ),
    opts=in_cluster,
)
# {tenant: {agent: {ENV: value}}} (bot tokens...); config validation checked every agent's secretEnv is there.
tenant_secrets = secrets.get_secret_object("tenantSecrets") or pulumi.Output.secret({})
# Fargate tenants: a profile, a pod execution role and the pods' security group each (docs/fargate.md).
fargate = {
    tenant.name: FargateTier(
        f"{tenant.name}-fargate",
        FargateTierArgs(
            tenant,
            cfg.network,
            allowlist=cfg.egress.allowlist,
            cluster_name=cluster.name,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            cluster_security_group_id=cluster.cluster_security_group_id,
        ),
    )
    for tenant in cfg.fargate_tenants
}
tenants = [
    Tenant(
        tenant.name,
        TenantArgs.for_tenant(
            tenant,
            cfg,
            litellm_url=gateway.url,
            litellm_key=tenant_keys.keys[tenant.name],
            secrets=tenant_secrets.apply(lambda s, t=tenant.name: (s or {}).get(t, {})),
            sandbox_controller=sandbox_controller,
            scaler=keda.release if keda else None,
            # the tenant's pods start after its key is registered (a rotation rolls them onto the new key)
            depends_on=(
                *kata_runtime.runtime_classes,
                tenant_keys.jobs[tenant.name],
                *([fargate[tenant.name].profile] if tenant.fargate else []),
            ),
            proxy_url=egress.tenant_proxy_urls[tenant.name] if egress else None,
            mcp_tokens=mcp.tokens.get(tenant.name),
            fargate_security_group_id=fargate[tenant.name].security_group_id if tenant.fargate else None,
        ),
        opts=in_cluster,
    )
    for tenant in cfg.tenants
]

# --- outputs (a contract with other teams: docs/outputs.md; bump the version when it changes)
OUTPUTS_VERSION = "1.1"
pulumi.export("outputsVersion", OUTPUTS_VERSION)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
pulumi.export("oidcProviderUrl", cluster.oidc_provider_url)
pulumi.export("clusterSecurityGroupId", cluster.cluster_security_group_id)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("coreNodeRoleArn", cluster.core_node_role_arn)
pulumi.export("kataNodeRoleArn", kata_nodes.node_role_arn if kata_nodes else karpenter.node_role_arn)
pulumi.export("karpenterNodeRoleArn", karpenter.node_role_arn)
pulumi.export("litellmEndpoint", gateway.url)
pulumi.export("runtimeClasses", kata_runtime.runtime_class_names)
pulumi.export("tenantNamespaces", {t.name: t.namespace for t in cfg.tenants})
# What tenant shards read through their stack reference (docs/shards.md, docs/outputs.md#tenantcontract).
pulumi.export(
    "tenantContract",
    tenant_contract(
        platform_stack=pulumi.get_stack(),
        region=cfg.region,
        settings=running_stack_settings(),
        gateway_url=gateway.url,
        egress_proxy_host=egress.hostname if egress else None,
        agent_sandbox=sandbox_controller is not None,
        tenants=[t.name for t in cfg.tenants],
    ),
)
