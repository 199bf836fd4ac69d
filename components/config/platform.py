"""The whole stack configuration, parsed once, and the cross-section checks no single section can make.

`load()` reads the running stack (values reach the program as strings, decoded by their declared type);
`PlatformConfig.from_dict` is the same path for tests and tools.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.config.agents import ImagesConfig
from components.config.aws_facts import REGION_PARTITION, arn_partition, region_partition
from components.config.cluster import ClusterConfig, KarpenterConfig, KataConfig, NetworkConfig
from components.config.fargate import FARGATE_MEMORY_OVERHEAD_MIB, PROFILES_PER_CLUSTER_QUOTA, fargate_size
from components.config.gateway import GatewayConfig
from components.config.models import ModelsConfig
from components.config.observability import ObservabilityConfig
from components.config.reader import (
    NAMESPACE,
    REMOVED_KEYS,
    UNDECLARED_KEYS,
    ConfigError,
    Reader,
    check,
    check_declared_type,
    decode_raw,
    project_schema,
    unique,
)
from components.config.shards import shard_stacks
from components.config.tenants import EgressConfig, TenantConfig
from components.config.versions import catalog_note, check_kubernetes_version, check_published
from components.contracts.gateway import mcp_server_name
from components.k8s.quantity import quantity_value

ADMISSION_MODES = ("Deny", "Audit")
# Keys whose values must be Pulumi secrets (`pulumi config set --secret`), never plain text in the stack file.
SECRET_KEYS = ("grafanaAdminPassword", "tenantSecrets")


def _looks_like_ours(namespace: str) -> bool:
    """``agent-platfrom``, ``agent_platform``, ``AgentPlatform``...: a typo of the namespace, not another package's."""
    squashed = re.sub(r"[^a-z0-9]", "", namespace.lower())
    return (
        squashed == re.sub(r"[^a-z0-9]", "", NAMESPACE)
        or difflib.SequenceMatcher(None, namespace.lower(), NAMESPACE).ratio() >= 0.75
    )


def check_namespaces(keys: Iterable[str]) -> None:
    """A key in a namespace that looks like ours (or naming one of our keys under another namespace) would be
    silently ignored, ``protect`` included: refuse it, naming the key as written."""
    ours = set(project_schema()) | set(UNDECLARED_KEYS) | set(REMOVED_KEYS)
    for key in keys:
        namespace, _, name = key.rpartition(":")
        if namespace == NAMESPACE:
            continue
        check(
            key,
            not _looks_like_ours(namespace) and name not in ours,
            f"unknown config namespace {namespace!r}, so the program would never read it; did you mean "
            f"{NAMESPACE}:{name}?",
        )


def secret_leaves(value: Any, path: str) -> Iterable[tuple[str, bool]]:
    """(path, is a ``secure:`` value) for every leaf of a stack-file value, e.g. ``tenantSecrets.acme.hermes.TOKEN``."""
    if isinstance(value, Mapping) and set(value) == {"secure"}:
        yield path, True
    elif isinstance(value, Mapping) and value:
        for name, item in value.items():
            yield from secret_leaves(item, f"{path}.{name}")
    elif value not in (None, "") and not isinstance(value, Mapping):  # an empty value is missing, not plain text
        yield path, False


def _plain_secret(key: str) -> str:
    path = f"--path '{NAMESPACE}:{key}'" if "." in key else f"{NAMESPACE}:{key}"
    return f"is plain text where a secret is expected; set it with `pulumi config set --secret {path} <value>`"


def check_stack_file(values: Mapping[str, Any]) -> None:
    """What only the stack file shows (the offline path reads it; the CLI refuses or hides these before the program
    runs): keys without a namespace, and plain values in the secret keys, leaf by leaf."""
    for key in values:
        check(
            f"{NAMESPACE}:{key}" if ":" not in key else key,
            ":" in key,
            f"is written without its namespace ({key!r}); the Pulumi CLI refuses it: write {NAMESPACE}:{key}",
        )
    for key in SECRET_KEYS:
        if f"{NAMESPACE}:{key}" in values:
            for path, secure in secret_leaves(values[f"{NAMESPACE}:{key}"], key):
                check(path, secure, _plain_secret(path))


def _human(field_name: str, value: float) -> str:
    if field_name in ("memory", "storage"):
        return f"{value / 2**30:.2f}Gi"
    return f"{value:g}" + (" pods" if field_name == "pods" else " CPU")


def _secret_paths(value: Any) -> frozenset[str]:
    """``{"acme": {"hermes": {"TOKEN": ...}}}`` -> ``{"acme.hermes.TOKEN"}``; the values are never kept."""
    if not isinstance(value, Mapping):
        return frozenset()
    return frozenset(
        f"{tenant}.{agent}.{env}"
        for tenant, agents in value.items()
        if isinstance(agents, Mapping)
        for agent, envs in agents.items()
        if isinstance(envs, Mapping)
        for env in envs
    )


@dataclass(frozen=True)
class PlatformConfig:
    stack: str
    region: str
    protect: bool
    network: NetworkConfig
    cluster: ClusterConfig
    karpenter: KarpenterConfig
    kata: KataConfig
    gateway: GatewayConfig
    observability: ObservabilityConfig
    images: ImagesConfig
    egress: EgressConfig
    models: ModelsConfig
    tenants: tuple[TenantConfig, ...]
    known_tenants: tuple[str, ...] | None  # the stack's record of tenants whose data it holds (None: not kept)
    admission_mode: str  # ValidatingAdmissionPolicyBinding actions: Deny, or Audit (+ Warn) during rollout
    grafana_password_set: bool  # grafanaAdminPassword is a secret: only its presence is kept
    tenant_secret_paths: frozenset[str]  # "tenant.agent.ENV" present in tenantSecrets (no values)
    tenant_shards: tuple[str, ...] = ()  # shard stacks whose egress entries the platform serves (docs/shards.md)

    @property
    def fargate_tenants(self) -> tuple[TenantConfig, ...]:
        return tuple(t for t in self.tenants if t.fargate)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the configuration allows but a tenant must know: the guarantees that hold differently on Fargate
        (docs/fargate.md#limits), one line each, naming the key."""
        found = []
        for i, tenant in enumerate(self.tenants):
            if not tenant.fargate:
                continue
            key = f"agent-platform:tenants[{i}].isolation"
            found.append(
                f"{key}: fargate: no NetworkPolicy is enforced on Fargate (its security group is the boundary), "
                "pods use no EBS volume (the workspace is lost when a pod stops), and node-exporter/kata-monitor "
                "metrics do not exist for its pods (docs/fargate.md#limits)"
            )
            if self.egress.allowlist:
                found.append(
                    f"{key}: fargate pulls images over the pod's own network interface, whose security group "
                    "allows no internet: its agent images must be reachable through egress.cidrs (a registry "
                    "mirror or VPC endpoints), or the pods wait in ImagePullBackOff (docs/fargate.md#limits)"
                )
            for j, agent in enumerate(tenant.agents):
                size = fargate_size(agent.cpu, agent.memory)
                if size is not None and (
                    abs(size.vcpu - quantity_value(agent.cpu)) > 1e-9
                    or abs(size.memory_gb * 2**30 - quantity_value(agent.memory)) > 1
                ):
                    found.append(
                        f"agent-platform:tenants[{i}].agents[{j}].memory: Fargate bills {size} (about "
                        f"${size.hourly_usd * 730:.0f}/month in us-east-1) for {agent.cpu} CPU and {agent.memory} "
                        f"(+{FARGATE_MEMORY_OVERHEAD_MIB} MiB, rounded up; docs/fargate.md#sizing)"
                    )
        if len(self.fargate_tenants) > PROFILES_PER_CLUSTER_QUOTA:
            found.append(
                f"agent-platform:tenants: {len(self.fargate_tenants)} Fargate tenants need as many Fargate profiles; "
                f"EKS allows {PROFILES_PER_CLUSTER_QUOTA} per cluster unless the service quota is raised"
            )
        return tuple(found)

    @property
    def any_warm_pool(self) -> bool:
        return any(t.warm_pool_total > 0 for t in self.tenants)

    def tenant_models(self, tenant: TenantConfig) -> tuple[str, ...]:
        """The LiteLLM models a tenant's team and key may call, never empty (LiteLLM reads an empty list as every
        model): the ones it lists (every Bedrock model when it lists none), then the self-hosted models granted to
        it (models.selfHosted[].tenants) that it does not list."""
        granted = tuple(m.name for m in self.models.self_hosted if tenant.name in m.tenants)
        listed = tenant.litellm.models or self.gateway.model_names
        return (*listed, *(m for m in granted if m not in listed))

    def model_limits(self) -> dict[str, tuple[int | None, int | None]]:
        """Model name -> (context window, output limit) the agents configure; None where the config sets none."""
        limits = {m.name: (m.context_window, m.max_output_tokens) for m in self.gateway.models}
        return limits | {m.name: (m.max_model_len, None) for m in self.models.self_hosted}

    def _check_self_hosted(self) -> None:
        """Granted tenants exist, names do not clash with Bedrock's, and a tenant lists only models it may call."""
        tenants = {t.name for t in self.tenants}
        bedrock = set(self.gateway.model_names)
        for i, model in enumerate(self.models.self_hosted):
            key = f"models.selfHosted[{i}]"
            check(f"{key}.name", model.name not in bedrock, f"{model.name!r} is also a bedrockModels name")
            for j, tenant in enumerate(model.tenants):
                check(f"{key}.tenants[{j}]", tenant in tenants, f"{tenant!r} is not a tenant of this stack")

    def _check_known_tenants(self) -> None:
        """Data survives config edits: a tenant the stack holds data for (knownTenants) may leave ``tenants`` only
        deliberately (removed from both lists), and a new tenant joins the record (docs/tenants.md)."""
        if self.known_tenants is None:
            return
        unique("knownTenants", self.known_tenants, "tenant")
        present = {n: t for t in self.tenants for n in (*t.former_names, t.name)}
        for name in self.known_tenants:
            check(
                "tenants",
                name in present,
                f"tenant {name!r} is missing (it is in knownTenants): that would delete its namespace, volumes and "
                f"Secrets. A rename keeps it with formerNames: [{name}]; to remove it set state: decommissioned, "
                "then after its retention delete it from tenants and knownTenants together (docs/tenants.md)",
            )
        for i, tenant in enumerate(self.tenants):
            check(
                f"tenants[{i}].name",
                any(n in self.known_tenants for n in (*tenant.former_names, tenant.name)),
                f"tenant {tenant.name!r} is not in knownTenants: add it there (a new tenant), or list its old name "
                "in formerNames (a rename)",
            )

    def _check_quota(self, i: int, tenant: TenantConfig) -> None:
        """The tenant's agents (plus warm pools) must fit its ResourceQuota, Kata pod overhead included:
        the quota charges RuntimeClass overhead to every pod, so an agent asking for 1 CPU uses 1.25."""
        pods = cpu = memory = storage = 0.0
        for agent in tenant.agents:
            count = 1 + agent.warm_pool
            overhead = self.kata.pod_overhead(agent.runtime_class) or {"cpu": "0", "memory": "0"}
            pods += count
            cpu += count * (quantity_value(agent.cpu) + quantity_value(overhead["cpu"]))
            memory += count * (quantity_value(agent.memory) + quantity_value(overhead["memory"]))
            storage += count * agent.storage_gib * 2**30
        quota = tenant.quota
        for field_name, used, hard in (
            ("pods", pods, float(quota.pods)),
            ("cpu", cpu, quantity_value(quota.cpu)),
            ("memory", memory, quantity_value(quota.memory)),
            ("storage", storage, quantity_value(quota.storage)),
        ):
            check(
                f"tenants[{i}].quota.{field_name}",
                used <= hard + 1e-9,
                f"the agents of tenant {tenant.name!r} need {_human(field_name, used)} (warm pools and Kata "
                f"pod overhead included) but the quota allows {_human(field_name, hard)}",
            )

    def _check_fits_the_node_pool(self, key: str, cpu: str, memory: str) -> None:
        """An agent larger than the NodePools' limits (karpenterCpuLimit, karpenterMemoryLimitGiB) is never scheduled."""
        check(
            f"{key}.cpu",
            quantity_value(cpu) <= self.karpenter.cpu_limit,
            f"{cpu} CPU is more than a Karpenter node pool may ever hold (karpenterCpuLimit {self.karpenter.cpu_limit})",
        )
        check(
            f"{key}.memory",
            quantity_value(memory) <= self.karpenter.memory_limit_gib * 2**30,
            f"{memory} is more than a Karpenter node pool may ever hold "
            f"(karpenterMemoryLimitGiB {self.karpenter.memory_limit_gib})",
        )

    def _check_egress_cidrs(self, i: int, tenant: TenantConfig) -> None:
        """A tenant's cidrs stay outside the VPC and the service CIDR: inside them they would reach other tenants'
        pods, the EKS API endpoints, internal load balancers and cluster services, which the NetworkPolicy keeps
        sandboxes away from."""
        ranges = (("vpcCidr", self.network.network), ("serviceCidr", ipaddress.IPv4Network(self.cluster.service_cidr)))
        scopes = [(f"tenants[{i}].egress.cidrs", tenant.egress.cidrs)] + [
            (f"tenants[{i}].agents[{j}].egress.cidrs", agent.egress.cidrs) for j, agent in enumerate(tenant.agents)
        ]
        for key, cidrs in scopes:
            for k, cidr in enumerate(cidrs):
                for name, net in ranges:
                    check(f"{key}[{k}]", not ipaddress.IPv4Network(cidr).overlaps(net), f"{cidr} overlaps {name} {net}")

    def __post_init__(self) -> None:
        vpc, services = (
            self.network.network,
            ipaddress.IPv4Network(self.cluster.service_cidr),
        )
        check(
            "serviceCidr",
            not vpc.overlaps(services),
            f"{services} overlaps vpcCidr {vpc}; Kubernetes services need their own range",
        )
        check_kubernetes_version(self.cluster.kubernetes_version, self.karpenter.version)
        partition = REGION_PARTITION[self.region]
        for i, arn in enumerate(self.cluster.admin_role_arns):
            check(
                f"adminRoleArns[{i}]",
                arn_partition(arn) == partition,
                f"{arn} is in partition {arn_partition(arn)}, but aws:region {self.region} is in {partition}",
            )
        check(
            "bedrockRegion",
            REGION_PARTITION.get(self.gateway.bedrock_region) == partition,
            f"{self.gateway.bedrock_region} is not in the partition of aws:region {self.region} ({partition}): "
            "the gateway's Pod Identity credentials cannot call Bedrock across partitions",
        )
        unique("tenants", [t.name for t in self.tenants], "tenant name")
        unique("tenants", [n for t in self.tenants for n in (*t.former_names, t.name)], "tenant name or former name")
        unique("tenants", [t.namespace for t in self.tenants], "tenant namespace")
        unique(
            "tenants",
            [mcp_server_name(t.name, a.name) for t in self.tenants for a in t.agents if a.mcp is not None],
            "MCP server name (<tenant>_<agent>, '-' read as '_')",
        )
        self._check_self_hosted()
        self._check_known_tenants()
        models = set(self.gateway.model_names)
        for i, tenant in enumerate(self.tenants):
            granted = {m.name for m in self.models.self_hosted if tenant.name in m.tenants}
            for model in tenant.litellm.models:
                check(
                    f"tenants[{i}].litellm.models",
                    model in models | granted,
                    f"{model!r} is a self-hosted model not granted to {tenant.name} (models.selfHosted[].tenants)"
                    if model in self.models.names
                    else f"{model!r} is not in bedrockModels ({', '.join(sorted(models))})",
                )
            for j, agent in enumerate(tenant.agents):
                check(
                    f"tenants[{i}].agents[{j}].runtimeClass",
                    tenant.fargate or agent.runtime_class in self.kata.runtime_classes,
                    f"unknown runtime class {agent.runtime_class!r}; enabled: {', '.join(self.kata.runtime_classes)}",
                )
                check(
                    f"tenants[{i}].agents[{j}].vmCpus",
                    agent.vm_cpus is None and agent.vm_memory_mib is None or agent.runtime_class.startswith("kata-"),
                    "VM sizing only applies to kata runtime classes",
                )
                if tenant.fargate:
                    check(
                        f"tenants[{i}].agents[{j}].memory",
                        fargate_size(agent.cpu, agent.memory) is not None,
                        f"{agent.cpu} CPU and {agent.memory} (+{FARGATE_MEMORY_OVERHEAD_MIB} MiB Fargate adds) is more "
                        "than the largest Fargate pod (16 vCPU / 120 GB)",
                    )
                else:
                    self._check_fits_the_node_pool(f"tenants[{i}].agents[{j}]", agent.cpu, agent.memory)
                for env in agent.secret_env:
                    check(
                        f"tenantSecrets.{tenant.name}.{agent.name}.{env}",
                        f"{tenant.name}.{agent.name}.{env}" in self.tenant_secret_paths,
                        f"is required by tenants[{i}].agents[{j}].secretEnv: set it with "
                        f"`pulumi config set --secret --path 'tenantSecrets.{tenant.name}.{agent.name}.{env}' <value>`",
                    )
            self._check_quota(i, tenant)
            self._check_egress_cidrs(i, tenant)
        check(
            "grafanaAdminPassword",
            self.grafana_password_set,
            "is required: set it with `pulumi config set --secret`",
        )

    @classmethod
    def from_dict(cls, stack: str, region: str, values: Mapping[str, Any]) -> PlatformConfig:
        """Parse namespace-less keys (``vpcCidr``...) with typed values; Pulumi.yaml supplies defaults."""
        schema = project_schema()
        merged = {key: decl["default"] for key, decl in schema.items() if "default" in decl}
        merged.update(values)
        r = Reader(merged)
        for key, why in REMOVED_KEYS.items():
            check(key, key not in values, why)
        r.reject_unknown(list(schema) + list(UNDECLARED_KEYS))
        for key, decl in schema.items():
            if key in values:
                check_declared_type(key, decl, values[key])
        region_partition("aws:region", region)
        kata = KataConfig.from_reader(r)
        sections = {
            "network": NetworkConfig.from_reader(r),
            "cluster": ClusterConfig.from_reader(r, stack),
            "karpenter": KarpenterConfig.from_reader(r),
            "kata": kata,
            "gateway": GatewayConfig.from_reader(r),
            "observability": ObservabilityConfig.from_reader(r),
            "images": ImagesConfig.from_reader(r),
            "egress": EgressConfig.from_reader(r),
            "models": ModelsConfig.from_reader(r),
        }
        check_published(merged)  # once every version key has the shape of a version
        return cls(
            stack=stack,
            region=region,
            protect=r.bool("protect"),
            **sections,
            tenants=r.objects(
                "tenants",
                lambda t: TenantConfig.from_reader(t, kata.default_runtime_class),
                default=[],
            ),
            known_tenants=r.strs("knownTenants") if r.values.get("knownTenants") is not None else None,
            admission_mode=r.choice("admissionMode", ADMISSION_MODES),
            tenant_shards=shard_stacks(r.strs("tenantShards")),
            grafana_password_set=values.get("grafanaAdminPassword") not in (None, ""),
            tenant_secret_paths=_secret_paths(values.get("tenantSecrets")),
        )


def from_engine(stack: str, config: Mapping[str, str], secret_keys: Collection[str]) -> PlatformConfig:
    """The configuration as the engine hands it to the program: every ``namespace:key`` as a string, and the keys
    that are secrets. ``load()`` on a real run, ``tools.program.load_stack`` offline: one path for both."""
    check_namespaces(config)
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix) :]: decode_raw(k[len(prefix) :], v) for k, v in config.items() if k.startswith(prefix)}
    for key in SECRET_KEYS:  # an empty value ({} or "") holds nothing to protect
        check(key, not values.get(key) or f"{prefix}{key}" in secret_keys, _plain_secret(key))
    region = config.get("aws:region") or ""
    if not region:
        raise ConfigError("aws:region", "is required (pulumi config set aws:region us-east-1)")
    return PlatformConfig.from_dict(stack, region, values)


def load() -> PlatformConfig:
    """Read the running stack's configuration (call once, from __main__.py)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = {*runtime_config.get_config_secret_keys_env(), *filter(runtime_config.is_config_secret, config)}
    cfg = from_engine(pulumi.get_stack(), config, secret_keys)
    if note := catalog_note():
        pulumi.log.info(note)
    return cfg
