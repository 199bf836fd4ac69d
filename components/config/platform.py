"""The whole stack configuration, parsed once, and the cross-section checks no single section can make.

`load()` reads the running stack (values reach the program as strings, decoded by their declared type);
`PlatformConfig.from_dict` is the same path for tests and tools.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.config.cluster import ClusterConfig, KarpenterConfig, KataConfig, NetworkConfig
from components.config.gateway import GatewayConfig
from components.config.observability import ImagesConfig, ObservabilityConfig
from components.config.reader import (
    NAMESPACE,
    REMOVED_KEYS,
    UNDECLARED_KEYS,
    ConfigError,
    Reader,
    check,
    check_declared_type,
    check_match,
    decode_raw,
    project_schema,
    quantity_value,
    unique,
)
from components.config.tenants import EgressConfig, TenantConfig

ADMISSION_MODES = ("Deny", "Audit")


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
    tenants: tuple[TenantConfig, ...]
    admission_mode: str  # ValidatingAdmissionPolicyBinding actions: Deny, or Audit (+ Warn) during rollout
    grafana_password_set: bool  # grafanaAdminPassword is a secret: only its presence is kept
    tenant_secret_paths: frozenset[str]  # "tenant.agent.ENV" present in tenantSecrets (no values)

    @property
    def any_warm_pool(self) -> bool:
        return any(t.warm_pool_total > 0 for t in self.tenants)

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

    def _check_egress_cidrs(self, i: int, tenant: TenantConfig) -> None:
        """A tenant's cidrs stay outside the VPC: inside it they would reach other tenants' pods, the EKS API
        endpoints and internal load balancers, which the NetworkPolicy keeps sandboxes away from."""
        vpc = self.network.network
        scopes = [(f"tenants[{i}].egress.cidrs", tenant.egress.cidrs)] + [
            (f"tenants[{i}].agents[{j}].egress.cidrs", agent.egress.cidrs) for j, agent in enumerate(tenant.agents)
        ]
        for key, cidrs in scopes:
            for k, cidr in enumerate(cidrs):
                check(f"{key}[{k}]", not ipaddress.IPv4Network(cidr).overlaps(vpc), f"{cidr} overlaps vpcCidr {vpc}")

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
        unique("tenants", [t.name for t in self.tenants], "tenant name")
        unique("tenants", [t.namespace for t in self.tenants], "tenant namespace")
        models = set(self.gateway.model_names)
        for i, tenant in enumerate(self.tenants):
            for model in tenant.litellm.models:
                check(
                    f"tenants[{i}].litellm.models",
                    model in models,
                    f"{model!r} is not in bedrockModels ({', '.join(sorted(models))})",
                )
            for j, agent in enumerate(tenant.agents):
                check(
                    f"tenants[{i}].agents[{j}].runtimeClass",
                    agent.runtime_class in self.kata.runtime_classes,
                    f"unknown runtime class {agent.runtime_class!r}; enabled: {', '.join(self.kata.runtime_classes)}",
                )
                check(
                    f"tenants[{i}].agents[{j}].vmCpus",
                    agent.vm_cpus is None and agent.vm_memory_mib is None or agent.runtime_class.startswith("kata-"),
                    "VM sizing only applies to kata runtime classes",
                )
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
        check_match("aws:region", region, r"^[a-z]{2}(-gov)?-[a-z]+-\d$", "an AWS region")
        kata = KataConfig.from_reader(r)
        return cls(
            stack=stack,
            region=region,
            protect=r.bool("protect"),
            network=NetworkConfig.from_reader(r),
            cluster=ClusterConfig.from_reader(r, stack),
            karpenter=KarpenterConfig.from_reader(r),
            kata=kata,
            gateway=GatewayConfig.from_reader(r),
            observability=ObservabilityConfig.from_reader(r),
            images=ImagesConfig.from_reader(r),
            egress=EgressConfig.from_reader(r),
            tenants=r.objects(
                "tenants",
                lambda t: TenantConfig.from_reader(t, kata.default_runtime_class),
                default=[],
            ),
            admission_mode=r.choice("admissionMode", ADMISSION_MODES),
            grafana_password_set=values.get("grafanaAdminPassword") not in (None, ""),
            tenant_secret_paths=_secret_paths(values.get("tenantSecrets")),
        )


def load() -> PlatformConfig:
    """Read the running stack's configuration (call once, from __main__.py)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    all_config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix) :]: decode_raw(k[len(prefix) :], v) for k, v in all_config.items() if k.startswith(prefix)}
    region = all_config.get("aws:region") or ""
    if not region:
        raise ConfigError("aws:region", "is required (pulumi config set aws:region us-east-1)")
    return PlatformConfig.from_dict(pulumi.get_stack(), region, values)
