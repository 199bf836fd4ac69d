"""Tenants and their agents: sizing, quota, LiteLLM limits and egress allowlists.

Tenant input is the least trusted part of the configuration (it comes from many teams), so unknown keys are
refused with a did-you-mean and every value is checked against what the platform reserves for itself.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

from components.config.reader import (
    DURATION,
    ConfigError,
    Reader,
    check,
    check_match,
    parse_cidr,
    positive_quantity,
    unique,
)
from components.contracts.namespaces import RESERVED_NAMESPACES
from components.k8s.quantity import quantity_value
from components.tenants.agent_types import AGENT_TYPES

# Hosts each agent type needs to reach its chat platforms when egressMode is allowlist (docs/egress.md lists
# the sources). "*.example.com" means example.com and every subdomain (Squid's ".example.com").
# Hermes: Telegram Bot API (long polling and file downloads on api.telegram.org); Discord REST on discord.com,
#   the gateway WebSocket on gateway.discord.gg and its regional resume hosts (gateway-us-east1-b.discord.gg...),
#   attachments on cdn.discordapp.com / media.discordapp.net.
# OpenClaw: Slack Web API on slack.com (apps.connections.open, chat.postMessage...), the Socket Mode WebSocket
#   on wss-primary.slack.com / wss-backup.slack.com and files on files.slack.com.
AGENT_EGRESS_DEFAULTS: dict[str, tuple[str, ...]] = {
    "hermes": ("api.telegram.org", "discord.com", "*.discord.gg", "cdn.discordapp.com", "media.discordapp.net"),
    "openclaw": ("slack.com", "*.slack.com"),
}
EGRESS_MODES = ("allowlist", "open")
# Ranges a tenant's egress.cidrs may not touch, none of them reachable on the internet (IANA special-purpose
# registry, RFC 6890): "this network", shared address space (RFC 6598: carrier NAT, and EKS custom networking's
# secondary pod ranges), loopback, link-local (instance metadata), IETF protocol assignments, benchmarking,
# multicast and reserved. The VPC CIDR and the service CIDR are checked too (components/config/platform.py).
EGRESS_FORBIDDEN_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
# Environment variables the platform sets in agent containers (components/tenants/tenant.py: each AgentType's env and
# token, the LiteLLM key, the egress proxy settings in both spellings). A later env entry overrides an earlier
# one, so a secretEnv of the same name would replace the platform's value: tenantSecrets may not use them.
# tests/test_reserved_env.py derives the set from the pod templates the program builds and fails on any drift.
PLATFORM_AGENT_ENV = frozenset(
    {
        "LITELLM_API_KEY",
        "API_SERVER_KEY",
        "OPENCLAW_GATEWAY_TOKEN",
        "HOME",
        "HERMES_HOME",
        "HERMES_GATEWAY_NO_SUPERVISE",
        "API_SERVER_ENABLED",
        "API_SERVER_HOST",
        "API_SERVER_PORT",
        "OPENCLAW_CONFIG_DIR",
        "NODE_ENV",
        "NODE_OPTIONS",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "NODE_USE_ENV_PROXY",
    }
)
# Reserved too although the platform does not set them: they would reroute the agent's binaries, interpreters,
# shell start-up or traffic, or they are set by Kubernetes (service links, HOSTNAME) or by EKS Pod Identity / IRSA
# credential injection.
EXTRA_RESERVED_AGENT_ENV = frozenset(
    {
        "PATH",
        "SHELL",
        "ENV",
        "BASH_ENV",
        "HOSTNAME",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "NODE_PATH",
        "ALL_PROXY",
        "all_proxy",
        "FTP_PROXY",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_STS_REGIONAL_ENDPOINTS",
    }
)
RESERVED_AGENT_ENV = PLATFORM_AGENT_ENV | EXTRA_RESERVED_AGENT_ENV
# Whole families: the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...), Kubernetes service links
# (KUBERNETES_SERVICE_HOST...) and the Pod Identity agent's credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI...).
RESERVED_AGENT_ENV_PREFIXES = ("LD_", "KUBERNETES_", "AWS_CONTAINER_")


def reserved_env_reason(name: str) -> str:
    """Why ``name`` may not come from a tenant ("" when it may)."""
    if name in PLATFORM_AGENT_ENV:
        return f"{name} is set by the platform and cannot come from tenantSecrets"
    if name in EXTRA_RESERVED_AGENT_ENV or name.startswith(RESERVED_AGENT_ENV_PREFIXES):
        return (
            f"{name} is reserved (it changes how the agent's programs load, where its traffic goes, or is set by "
            "Kubernetes or EKS) and cannot come from tenantSecrets"
        )
    return ""


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

_HOSTNAME = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def egress_domain(key: str, value: str) -> str:
    """A lower-cased exact host name or a leading wildcard (``*.example.com``); never a bare ``*`` or an IP."""
    domain = value.strip().lower().rstrip(".")
    check(
        key,
        domain not in ("*", "*.", ".") and not domain.startswith("*.*"),
        f"{value!r} would allow every domain; list the domains (or set egressMode: open during a transition)",
    )
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        pass
    else:
        raise ConfigError(key, f"{value!r} is an IP address: list it under egress.cidrs")
    name = domain[2:] if domain.startswith("*.") else domain
    check(key, not domain.startswith("*.") or "." in name, f"{value!r} is a wildcard over a whole top-level domain")
    check(
        key,
        bool(_HOSTNAME.match(name)) and len(name) <= 253,
        f"{value!r} is not a host name or a leading wildcard like *.example.com",
    )
    return domain


def egress_cidr(key: str, value: str) -> str:
    net = parse_cidr(key, value)
    check(key, net.prefixlen >= 8, f"{net} is too wide for an allowlist (at most /8)")
    for forbidden in EGRESS_FORBIDDEN_RANGES:
        check(
            key, not net.overlaps(forbidden), f"{net} overlaps {forbidden} (loopback, link-local/metadata or reserved)"
        )
    return str(net)


@dataclass(frozen=True)
class EgressRules:
    """``egress: {domains, cidrs, typeDefaults}`` of a tenant or an agent."""

    domains: tuple[str, ...]
    cidrs: tuple[str, ...]
    type_defaults: bool | None  # None: inherit (agent from tenant, tenant: true)

    @classmethod
    def from_reader(cls, r: Reader) -> EgressRules:
        r.reject_unknown(("domains", "cidrs", "typeDefaults"))
        domains = tuple(
            egress_domain(f"{r.key('domains')}[{i}]", d) for i, d in enumerate(r.strs("domains", default=[]))
        )
        cidrs = tuple(egress_cidr(f"{r.key('cidrs')}[{i}]", c) for i, c in enumerate(r.strs("cidrs", default=[])))
        unique(r.key("domains"), domains, "domain")
        unique(r.key("cidrs"), cidrs, "CIDR")
        type_defaults = r.bool("typeDefaults") if "typeDefaults" in r.values else None
        return cls(domains, cidrs, type_defaults)


@dataclass(frozen=True)
class EgressConfig:
    """Stack-level egress settings: the mode switch and the proxy deployment."""

    mode: str  # "allowlist" (proxy + tight NetworkPolicy) or "open" (HTTPS anywhere, the pre-proxy behaviour)
    squid_image: str
    mtail_image: str
    replicas: int
    log_retention_days: int  # VPC Flow Logs and Route 53 Resolver query logs

    @property
    def allowlist(self) -> bool:
        return self.mode == "allowlist"

    @classmethod
    def from_reader(cls, r: Reader) -> EgressConfig:
        retention = r.int("egressLogRetentionDays", lo=1)
        check(
            "egressLogRetentionDays",
            retention in CLOUDWATCH_RETENTION_DAYS,
            f"{retention} is not a CloudWatch Logs retention ({', '.join(map(str, CLOUDWATCH_RETENTION_DAYS))})",
        )
        return cls(
            mode=r.choice("egressMode", EGRESS_MODES),
            squid_image=r.image("squidImage"),
            mtail_image=r.image("mtailImage"),
            replicas=r.int("egressProxyReplicas", lo=2, hi=20),
            log_retention_days=retention,
        )


# Values CloudWatch Logs accepts for a log group's retention.
CLOUDWATCH_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@dataclass(frozen=True)
class AgentConfig:
    name: str
    type: str
    runtime_class: str
    warm_pool: int
    cpu: str
    memory: str
    storage_gib: int
    vm_cpus: int | None
    vm_memory_mib: int | None
    secret_env: tuple[str, ...]
    egress: EgressRules

    @classmethod
    def from_reader(cls, r: Reader, default_runtime_class: str) -> AgentConfig:
        r.reject_unknown(
            (
                "name",
                "type",
                "runtimeClass",
                "warmPool",
                "cpu",
                "memory",
                "storageGiB",
                "vmCpus",
                "vmMemoryMiB",
                "secretEnv",
                "egress",
            )
        )
        name = r.str("name")
        check(
            r.key("name"),
            bool(_DNS_LABEL.match(name)) and len(name) <= 30,
            f"{name!r} must be a DNS label of at most 30 characters",
        )
        secret_env = r.strs("secretEnv", default=[])
        for k, env in enumerate(secret_env):
            check_match(f"{r.key('secretEnv')}[{k}]", env, _ENV_NAME, "an environment variable name")
            reserved = reserved_env_reason(env)
            check(f"{r.key('secretEnv')}[{k}]", not reserved, reserved)
        unique(r.key("secretEnv"), secret_env, "variable")
        cpu = positive_quantity(r.key("cpu"), r.values.get("cpu", "1"), "cpu")
        memory = positive_quantity(r.key("memory"), r.values.get("memory", "2Gi"), "memory")
        vm_cpus = None if r.values.get("vmCpus") is None else r.int("vmCpus", lo=1, hi=64)
        vm_memory = None if r.values.get("vmMemoryMiB") is None else r.int("vmMemoryMiB", lo=256, hi=262144)
        # Kata sizes the VM at these plus the container limits, while the pod (and its quota) is charged only the
        # limits and the RuntimeClass overhead: a VM larger than its pod overcommits the node unseen.
        check(
            r.key("vmMemoryMiB"),
            vm_memory is None or vm_memory * 2**20 <= quantity_value(memory),
            f"{vm_memory} MiB is more than the pod's memory ({memory}); raise memory or lower vmMemoryMiB",
        )
        check(
            r.key("vmCpus"),
            vm_cpus is None or vm_cpus <= math.ceil(quantity_value(cpu)),
            f"{vm_cpus} vCPUs is more than the pod's cpu ({cpu}); raise cpu or lower vmCpus",
        )
        agent_type = r.str("type")
        check(
            r.key("type"),
            agent_type in AGENT_TYPES,
            f"unknown agent type {agent_type!r}: not one of {', '.join(AGENT_TYPES)}",
        )
        return cls(
            name=name,
            type=agent_type,
            runtime_class=r.str("runtimeClass", default=default_runtime_class),
            warm_pool=r.int("warmPool", default=0, lo=0, hi=100),
            cpu=cpu,
            memory=memory,
            storage_gib=r.int("storageGiB", default=0, lo=0, hi=1024),
            vm_cpus=vm_cpus,
            vm_memory_mib=vm_memory,
            secret_env=secret_env,
            egress=r.object("egress", EgressRules.from_reader),
        )


@dataclass(frozen=True)
class TenantQuota:
    cpu: str
    memory: str
    pods: int
    storage: str

    @classmethod
    def from_reader(cls, r: Reader) -> TenantQuota:
        r.reject_unknown(("cpu", "memory", "pods", "storage"))
        return cls(
            cpu=positive_quantity(r.key("cpu"), r.values.get("cpu", "16"), "cpu"),
            memory=positive_quantity(r.key("memory"), r.values.get("memory", "64Gi"), "memory"),
            pods=r.int("pods", default=20, lo=1, hi=1000),
            storage=positive_quantity(r.key("storage"), r.values.get("storage", "200Gi"), "memory"),
        )


@dataclass(frozen=True)
class TenantLitellmConfig:
    max_budget: float
    budget_duration: str
    rpm_limit: int
    tpm_limit: int
    models: tuple[str, ...]

    @classmethod
    def from_reader(cls, r: Reader) -> TenantLitellmConfig:
        r.reject_unknown(("maxBudget", "budgetDuration", "rpmLimit", "tpmLimit", "models"))
        duration = r.matching("budgetDuration", DURATION, "a duration like 30d", default="30d")
        return cls(
            max_budget=r.number("maxBudget", default=100, lo=0),
            budget_duration=duration,
            rpm_limit=r.int("rpmLimit", default=60, lo=1),
            tpm_limit=r.int("tpmLimit", default=100000, lo=1),
            models=r.strs("models", default=[]),
        )


@dataclass(frozen=True)
class TenantConfig:
    name: str
    namespace: str
    agents: tuple[AgentConfig, ...]
    quota: TenantQuota
    litellm: TenantLitellmConfig
    egress: EgressRules
    dedicated_nodes: bool  # its own tainted Karpenter NodePool: no other tenant's VM shares its hosts

    @property
    def warm_pool_total(self) -> int:
        return sum(agent.warm_pool for agent in self.agents)

    def agent_domains(self, agent: AgentConfig) -> tuple[str, ...]:
        """What one agent needs: its type's defaults (unless typeDefaults: false on the agent or, failing
        that, on the tenant), the tenant's domains and its own."""
        use_defaults = next((v for v in (agent.egress.type_defaults, self.egress.type_defaults) if v is not None), True)
        defaults = AGENT_EGRESS_DEFAULTS[agent.type] if use_defaults else ()
        return tuple(dict.fromkeys((*defaults, *self.egress.domains, *agent.egress.domains)))

    @property
    def egress_domains(self) -> tuple[str, ...]:
        """Every domain the tenant's proxy user may reach: the union over its agents (one proxy credential per
        tenant, so the proxy enforces the tenant's union)."""
        return tuple(sorted({d for agent in self.agents for d in self.agent_domains(agent)}))

    @property
    def egress_cidrs(self) -> tuple[str, ...]:
        """Addresses the tenant reaches directly (NetworkPolicy) or as raw IPs through the proxy."""
        return tuple(sorted({*self.egress.cidrs, *(c for a in self.agents for c in a.egress.cidrs)}))

    @classmethod
    def from_reader(cls, r: Reader, default_runtime_class: str) -> TenantConfig:
        r.reject_unknown(("name", "namespace", "agents", "quota", "litellm", "egress", "dedicatedNodes"))
        name = r.str("name")
        check(
            r.key("name"),
            bool(_DNS_LABEL.match(name)) and len(name) <= 40,
            f"{name!r} must be a DNS label of at most 40 characters",
        )
        namespace = r.str("namespace", default=f"tenant-{name}")
        check(
            r.key("namespace"),
            bool(_DNS_LABEL.match(namespace)) and len(namespace) <= 63,
            f"{namespace!r} is not a valid namespace name",
        )
        check(
            r.key("namespace"),
            not namespace.startswith("kube-") and namespace not in RESERVED_NAMESPACES,
            f"{namespace!r} is reserved for the platform",
        )
        agents = r.objects("agents", lambda a: AgentConfig.from_reader(a, default_runtime_class))
        check(r.key("agents"), len(agents) > 0, "needs at least one agent")
        unique(r.key("agents"), [a.name for a in agents], "agent name")
        dedicated = r.bool("dedicatedNodes", default=False)
        for j, agent in enumerate(agents):
            check(
                f"{r.key('agents')}[{j}].runtimeClass",
                not dedicated or agent.runtime_class.startswith("kata-"),
                f"{agent.runtime_class!r}: dedicatedNodes are Kata nodes; use a kata-* runtime class",
            )
        return cls(
            name,
            namespace,
            agents,
            r.object("quota", TenantQuota.from_reader),
            r.object("litellm", TenantLitellmConfig.from_reader),
            r.object("egress", EgressRules.from_reader),
            dedicated,
        )
