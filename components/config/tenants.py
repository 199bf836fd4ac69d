"""Tenants and their agents: sizing, quota, LiteLLM limits and egress allowlists.

Tenant input is the least trusted part of the configuration (it comes from many teams), so unknown keys are
refused with a did-you-mean and every value is checked against what the platform reserves for itself.
"""

from __future__ import annotations

import ipaddress
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.config.keys import (
    Derived,
    Key,
    boolean,
    integer,
    matching,
    number,
    one_of,
    optional_boolean,
    optional_integer,
    quantity,
    read_keys,
    section,
    strings,
    text,
)
from components.config.reader import (
    DURATION,
    ConfigError,
    Reader,
    check,
    check_match,
    parse_cidr,
    unique,
)
from components.contracts.labels import FARGATE
from components.contracts.namespaces import RESERVED_NAMESPACES
from components.k8s.quantity import quantity_value
from components.tenants.agent_types import AGENT_TYPES, platform_env
from components.tenants.agent_types.mcp import MCP_PORT, MCP_PORT_RANGE

EGRESS_MODES = ("allowlist", "open")
# A tenant's isolation tier (docs/fargate.md#choosing-a-tier): Kata micro-VMs or gVisor on the platform's EC2 nodes,
# or one Firecracker micro-VM per pod on AWS Fargate (no runtime class, no node).
ISOLATIONS = ("kata", "gvisor", FARGATE)
# Lifecycle (docs/tenants.md): a suspended agent or tenant runs no pods but keeps its volumes, Secrets and key; a
# decommissioned tenant's keys are blocked at the gateway too. Only removal from tenants and knownTenants deletes.
AGENT_STATES = ("running", "suspended")
TENANT_STATES = ("active", "suspended", "decommissioned")
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
# Environment variables the platform sets in agent containers: each agent type's environment and token, the LiteLLM
# key, the egress proxy settings (components/tenants/agent_types/). A later env entry overrides an earlier one, so a
# secretEnv of the same name would replace the platform's value: tenantSecrets may not use them.
# tests/test_reserved_env.py checks the set against the pod templates the program builds.
PLATFORM_AGENT_ENV = platform_env()
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
        values = read_keys(r, EGRESS_KEYS)
        unique(r.key("domains"), values["domains"], "domain")
        unique(r.key("cidrs"), values["cidrs"], "CIDR")
        return cls(**values)


EGRESS_KEYS = (
    Key(
        "domains",
        "list of strings",
        "Host names to allow through the egress proxy; `*.example.com` is example.com and every subdomain.",
        strings(egress_domain),
        default=[],
    ),
    Key(
        "cidrs",
        "list of strings",
        "Internet ranges to reach directly (any port), at most a /8, outside the VPC and the service CIDR.",
        strings(egress_cidr),
        default=[],
    ),
    Key(
        "typeDefaults",
        "boolean",
        "`false` drops the agent types' default domains (on an agent: for that agent, overriding the tenant).",
        optional_boolean(),
        default=Derived("inherited (`true` on a tenant)", lambda *_: None),
    ),
)


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


MCP_TRANSPORTS = ("http", "sse")  # LiteLLM's names: streamable HTTP, SSE (never stdio: it would run in LiteLLM's pod)
HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def image_pin(key: str, value: str) -> None:
    Reader({"image": value}, key.rpartition(".")[0]).image("image")


@dataclass(frozen=True)
class McpServerConfig:
    """``agents[].mcp`` of an agent of type ``mcp``: what runs and how the gateway reaches and registers it."""

    image: str
    port: int
    path: str
    transport: str
    args: tuple[str, ...]
    allowed_tools: tuple[str, ...]

    @classmethod
    def from_reader(cls, r: Reader) -> McpServerConfig:
        values = read_keys(r, MCP_KEYS)
        unique(r.key("allowedTools"), values["allowed_tools"], "tool")
        return cls(**values)


MCP_KEYS = (
    Key("image", "string", "The server's image, pinned by tag or digest (never `latest`).", text(image_pin)),
    Key("port", "integer", "The port it listens on (1024-65535).", integer(*MCP_PORT_RANGE), default=MCP_PORT),
    Key(
        "path",
        "string",
        "Its MCP endpoint's path (streamable HTTP: `/mcp`; SSE: usually `/sse`).",
        matching(HTTP_PATH, "a URL path starting with /"),
        default="/mcp",
    ),
    Key(
        "transport",
        "string",
        "`http` (streamable HTTP) or `sse`; stdio servers are not supported.",
        text(lambda key, v: check(key, v in MCP_TRANSPORTS, f"{v!r} is not one of {', '.join(MCP_TRANSPORTS)}")),
        default="http",
    ),
    Key("args", "list of strings", "Arguments to the image's entrypoint.", strings(), default=[]),
    Key(
        "allowedTools",
        "list of strings",
        "The only tools the gateway lists and calls (empty: all of them).",
        strings(lambda key, v: check_match(key, v, TOOL_NAME, "a tool name")),
        default=[],
    ),
)


_CRON_FIELD = r"[0-9A-Za-z*,/-]+"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")


def cron(key: str, value: str) -> None:
    check_match(key, value, _CRON, "a cron expression of 5 fields (minute hour day-of-month month day-of-week)")


def time_zone(key: str, value: str) -> None:
    zones = zoneinfo.available_timezones()
    check(key, value == "UTC" or value in zones or not zones, f"{value!r} is not an IANA time zone like Europe/Paris")


@dataclass(frozen=True)
class AgentSchedule:
    """When a running agent has its pod: from each ``start`` to the next ``end`` (KEDA cron scaler), in ``timezone``."""

    start: str
    end: str
    timezone: str

    @classmethod
    def from_reader(cls, r: Reader) -> AgentSchedule:
        values = read_keys(r, SCHEDULE_KEYS)
        check(r.key("end"), values["end"] != values["start"], "equals start: the window would be empty")
        return cls(**values)


SCHEDULE_KEYS = (
    Key("start", "string", "Cron expression: when its pod starts, e.g. `0 8 * * 1-5`.", text(cron)),
    Key("end", "string", "Cron expression: when its pod stops, e.g. `0 19 * * 1-5`.", text(cron)),
    Key("timezone", "string", "IANA time zone of both expressions.", text(time_zone), default="UTC"),
)


def optional_schedule(r: Reader, key: Key, _: Mapping[str, Any]) -> AgentSchedule | None:
    return None if r.values.get(key.name) is None else r.object(key.name, AgentSchedule.from_reader)


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
    mcp: McpServerConfig | None  # type mcp only
    state: str
    schedule: AgentSchedule | None

    @property
    def suspended(self) -> bool:
        return self.state == "suspended"

    @classmethod
    def from_reader(cls, r: Reader, context: Mapping[str, Any]) -> AgentConfig:
        values = read_keys(r, AGENT_KEYS, context)
        unique(r.key("secretEnv"), values["secret_env"], "variable")
        server = AGENT_TYPES[values["type"]].mcp_server
        check(
            r.key("mcp"),
            server == (values["mcp"] is not None),
            f"is {'required for' if server else 'only for'} type mcp",
        )
        check(r.key("warmPool"), not (server and values["warm_pool"]), "an MCP server runs no warm pool")
        if context["isolation"] == FARGATE:
            check_fargate_agent(r, values)
        cpu, memory, vm_cpus, vm_memory = (values[k] for k in ("cpu", "memory", "vm_cpus", "vm_memory_mib"))
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
        return cls(**values)


def dns_label(most: int, what: str) -> Callable[[str, str], None]:
    def check_label(key: str, value: str) -> None:
        check(key, bool(_DNS_LABEL.match(value)) and len(value) <= most, f"{value!r} must be a DNS label of {what}")

    return check_label


def agent_type(key: str, value: str) -> None:
    check(key, value in AGENT_TYPES, f"unknown agent type {value!r}: not one of {', '.join(AGENT_TYPES)}")


def secret_env_name(key: str, value: str) -> str:
    check_match(key, value, _ENV_NAME, "an environment variable name")
    reserved = reserved_env_reason(value)
    check(key, not reserved, reserved)
    return value


agent_name = dns_label(30, "at most 30 characters")  # also what a shard's MCP server entries must name

UNSET_VM = Derived("unset: from the shim's default and the limits", lambda *_: None)
AGENT_KEYS = (
    Key(
        "name",
        "string",
        "DNS label, at most 30 characters; names its objects in the namespace.",
        text(agent_name),
    ),
    Key("type", "string", "The agent type: one of the registry's (docs/cluster.md#sandbox-pods).", text(agent_type)),
    Key(
        "runtimeClass",
        "string",
        "Its RuntimeClass: kata-clh, kata-qemu, or kata-fc when the stack enables it (isolation kata); gvisor "
        "(isolation gvisor); none on Fargate.",
        text(),
        default=Derived(
            "from the tenant's isolation: the stack's `defaultRuntimeClass` (kata), gvisor, none (fargate)",
            lambda _, context: tier_runtime_class(context["isolation"], context["default_runtime_class"]),
        ),
    ),
    Key(
        "warmPool",
        "integer",
        "More than 0: a SandboxTemplate and a SandboxWarmPool of that size (0-100).",
        integer(0, 100),
        default=0,
    ),
    Key("cpu", "quantity", "CPU, requests = limits (Guaranteed).", quantity("cpu"), default="1"),
    Key(
        "memory",
        "quantity",
        "Memory, requests = limits; a unit is required (512 is bytes).",
        quantity("memory"),
        default="2Gi",
    ),
    Key(
        "storageGiB",
        "integer",
        "A persistent volume at the type's data path (0: an emptyDir), 0-1024.",
        integer(0, 1024),
        default=0,
    ),
    Key(
        "vmCpus",
        "integer",
        "Kata VM vCPUs (annotation), 1-64, at most the pod's cpu.",
        optional_integer(1, 64),
        default=UNSET_VM,
    ),
    Key(
        "vmMemoryMiB",
        "integer",
        "Kata VM memory in MiB (annotation), 256-262144, at most the pod's memory.",
        optional_integer(256, 262144),
        default=UNSET_VM,
    ),
    Key(
        "secretEnv",
        "list of strings",
        "Variables from tenantSecrets.<tenant>.<agent> (never one the platform sets or reserves).",
        strings(secret_env_name),
        default=[],
    ),
    Key(
        "egress",
        "object",
        "The agent's own egress rules (keys as the tenant's `egress`).",
        section(EgressRules.from_reader),
        default={},
    ),
    Key(
        "mcp",
        "object",
        "Type `mcp` only (required there): the MCP server (keys below; docs/mcp.md).",
        lambda r, key, _: r.object(key.name, McpServerConfig.from_reader) if key.name in r.values else None,
        default=Derived("none", lambda *_: None),
    ),
    Key(
        "state",
        "string",
        "`running`, or `suspended`: no pods (warm pool included), its volume, Secrets and key kept; a chat agent "
        "hears no messages while suspended.",
        one_of(AGENT_STATES),
        default="running",
    ),
    Key(
        "schedule",
        "object",
        "Office hours of a running agent: its pod runs only inside the window (keys below; KEDA cron scaler). A chat "
        "agent hears no messages outside it.",
        optional_schedule,
        default=Derived("unset: always running", lambda *_: None),
    ),
)


@dataclass(frozen=True)
class TenantQuota:
    cpu: str
    memory: str
    pods: int
    storage: str

    @classmethod
    def from_reader(cls, r: Reader) -> TenantQuota:
        return cls(**read_keys(r, QUOTA_KEYS))


QUOTA_KEYS = (
    Key("cpu", "quantity", "CPU of all its pods (Kata pod overhead included).", quantity("cpu"), default="16"),
    Key(
        "memory", "quantity", "Memory of all its pods (Kata pod overhead included).", quantity("memory"), default="64Gi"
    ),
    Key("pods", "integer", "Pods, and persistent volume claims (1-1000).", integer(1, 1000), default=20),
    Key("storage", "quantity", "Storage requested by its volume claims.", quantity("memory"), default="200Gi"),
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
        return cls(**read_keys(r, LITELLM_KEYS))


LITELLM_KEYS = (
    Key(
        "maxBudget",
        "number",
        "Spend limit (USD) of the tenant's LiteLLM team per budget period.",
        number(lo=0),
        default=100,
    ),
    Key(
        "budgetDuration",
        "string",
        "The budget period, e.g. 30d (resets on the 1st of the month).",
        matching(DURATION, "a duration like 30d"),
        default="30d",
    ),
    Key(
        "rpmLimit",
        "integer",
        "Requests per minute, shared by the tenant's keys and the gateway's replicas.",
        integer(lo=1),
        default=60,
    ),
    Key("tpmLimit", "integer", "Tokens per minute, likewise.", integer(lo=1), default=100000),
    Key(
        "models",
        "list of strings",
        "bedrockModels names it may use (empty: all); the first is its agents' default.",
        strings(),
        default=[],
    ),
)


@dataclass(frozen=True)
class TenantConfig:
    name: str
    former_names: tuple[str, ...]  # oldest first: the first is its identity (LiteLLM team, default namespace)
    namespace: str
    agents: tuple[AgentConfig, ...]
    quota: TenantQuota
    litellm: TenantLitellmConfig
    egress: EgressRules
    isolation: str  # kata, gvisor or fargate (ISOLATIONS)
    dedicated_nodes: bool  # its own tainted Karpenter NodePool: no other tenant's VM shares its hosts
    monthly_budget: float  # USD over a trailing 30 days, every cost; 0: no alert
    state: str

    @property
    def identity(self) -> str:
        """The name it was created with: what a rename must not change (its LiteLLM team, its namespace)."""
        return (*self.former_names, self.name)[0]

    @property
    def decommissioned(self) -> bool:
        return self.state == "decommissioned"

    def runs(self, agent: AgentConfig) -> bool:
        """Whether the agent has pods: it and its tenant are neither suspended nor decommissioned."""
        return self.state == "active" and not agent.suspended

    @property
    def warm_pool_total(self) -> int:
        return sum(agent.warm_pool for agent in self.agents)

    def agent_domains(self, agent: AgentConfig) -> tuple[str, ...]:
        """What one agent needs: its type's defaults (unless typeDefaults: false on the agent or, failing
        that, on the tenant), the tenant's domains and its own."""
        use_defaults = next((v for v in (agent.egress.type_defaults, self.egress.type_defaults) if v is not None), True)
        defaults = AGENT_TYPES[agent.type].egress_defaults if use_defaults else ()
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

    @property
    def fargate(self) -> bool:
        return self.isolation == FARGATE

    @classmethod
    def from_reader(cls, r: Reader, default_runtime_class: str) -> TenantConfig:
        values = read_keys(r, TENANT_KEYS, {"default_runtime_class": default_runtime_class})
        agents = values["agents"]
        check(
            r.key("dedicatedNodes"),
            not (values["dedicated_nodes"] and values["isolation"] == FARGATE),
            "Fargate has no nodes to dedicate (every pod is its own micro-VM already); remove it or use isolation kata",
        )
        check(r.key("agents"), len(agents) > 0, "needs at least one agent")
        unique(r.key("agents"), [a.name for a in agents], "agent name")
        unique(r.key("formerNames"), [*values["former_names"], values["name"]], "name (a former name repeats)")
        for kind in AGENT_TYPES.values():
            count = sum(a.type == kind.name for a in agents)
            check(
                r.key("agents"),
                kind.max_per_tenant is None or count <= kind.max_per_tenant,
                f"{count} agents of type {kind.name!r}: a tenant may run at most {kind.max_per_tenant}",
            )
        for j, agent in enumerate(agents):
            check(
                f"{r.key('agents')}[{j}].runtimeClass",
                not values["dedicated_nodes"] or agent.runtime_class.startswith("kata-"),
                f"{agent.runtime_class!r}: dedicatedNodes are Kata nodes; use a kata-* runtime class",
            )
            check_tier_runtime_class(f"{r.key('agents')}[{j}].runtimeClass", values["isolation"], agent.runtime_class)
        return cls(**values)


def tenant_namespace(key: str, value: str) -> None:
    check(key, bool(_DNS_LABEL.match(value)) and len(value) <= 63, f"{value!r} is not a valid namespace name")
    check(
        key,
        not value.startswith("kube-") and value not in RESERVED_NAMESPACES,
        f"{value!r} is reserved for the platform",
    )


def former_name(key: str, value: str) -> str:
    dns_label(40, "at most 40 characters")(key, value)
    return value


def agents(r: Reader, key: Key, context: Mapping[str, Any]) -> tuple[AgentConfig, ...]:
    return r.objects(key.name, lambda a: AgentConfig.from_reader(a, context))


def tier_runtime_class(isolation: str, default_runtime_class: str) -> str:
    """An agent's runtime class when it sets none: "" on Fargate (no runtime class at all)."""
    if isolation == FARGATE:
        return ""
    if isolation == "gvisor":
        return "gvisor"
    return default_runtime_class


def check_tier_runtime_class(key: str, isolation: str, runtime_class: str) -> None:
    if isolation == "kata":
        check(
            key,
            runtime_class.startswith("kata-"),
            f"{runtime_class!r} is not a Kata runtime class; use kata-* or set the tenant's isolation: gvisor",
        )
    elif isolation == "gvisor":
        check(key, runtime_class == "gvisor", f"{runtime_class!r}: a tenant with isolation gvisor runs gvisor")


# Fargate's own limits (EKS user guide, fargate.html "AWS Fargate considerations"): one line each, naming the key.
FARGATE_LIMITS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    (
        "storageGiB",
        lambda v: v == 0,
        "Fargate mounts no EBS volumes (only statically provisioned EFS); use 0: the workspace is an emptyDir on the "
        "pod's ephemeral storage, deleted when the pod stops (docs/fargate.md#workspace)",
    ),
    (
        "warmPool",
        lambda v: v == 0,
        "no warm pools on Fargate: agent-sandbox's managed NetworkPolicy is not enforced there and idle pods are "
        "billed per second; use 0 (docs/fargate.md#limits)",
    ),
    ("vmCpus", lambda v: v is None, "Kata VM sizing; Fargate sizes the VM from requests (docs/fargate.md#sizing)"),
    ("vmMemoryMiB", lambda v: v is None, "Kata VM sizing; Fargate sizes the VM from requests (docs/fargate.md#sizing)"),
)


def check_fargate_agent(r: Reader, values: Mapping[str, Any]) -> None:
    """What an agent of a Fargate tenant cannot use; the runtime class first (set at all is wrong)."""
    check(
        r.key("runtimeClass"),
        "runtimeClass" not in r.values,
        "a Fargate tenant's pods run in Fargate's own Firecracker micro-VM and take no runtime class; remove it",
    )
    for name, ok, why in FARGATE_LIMITS:
        key = next(k for k in AGENT_KEYS if k.name == name)
        check(r.key(name), ok(values[key.attr]), f"{values[key.attr]!r}: {why}")
    kind = AGENT_TYPES[values["type"]]
    check(
        r.key("type"),
        not kind.callers,
        f"{kind.name!r} is called by other services: its ingress NetworkPolicy is not enforced on Fargate",
    )


# A tenant's name: its identity (LiteLLM team, proxy user), also what every entry a shard exports must name.
tenant_name = dns_label(40, "at most 40 characters")

TENANT_KEYS = (
    Key(
        "name",
        "string",
        "DNS label, at most 40 characters: the tenant's identity (LiteLLM team, proxy user).",
        text(tenant_name),
    ),
    Key(
        "formerNames",
        "list of strings",
        "Names it had before, oldest first (a rename): its resources keep their state through aliases and it keeps "
        "the first one's LiteLLM team, budget and namespace.",
        strings(former_name),
        default=[],
    ),
    Key(
        "namespace",
        "string",
        "Its namespace (not a platform or kube-* one).",
        text(tenant_namespace),
        default=Derived(
            "`tenant-<name>` (the first former name's after a rename)",
            lambda values, _: f"tenant-{(*values['former_names'], values['name'])[0]}",
        ),
    ),
    Key(
        "isolation",
        "string",
        "Its isolation tier: kata or gvisor (a runtime class on the platform's nodes) or fargate (a Firecracker "
        "micro-VM per pod on AWS Fargate, no shared node; limits: docs/fargate.md).",
        lambda r, key, _: r.choice(key.name, ISOLATIONS, default=key.default),
        default=Derived(
            '`"kata"` (`"gvisor"` when the stack\'s `defaultRuntimeClass` is gvisor)',
            lambda _, context: "gvisor" if context["default_runtime_class"] == "gvisor" else "kata",
        ),
    ),
    Key("agents", "list of objects", "Its agents (at least one; keys below).", agents),
    Key("quota", "object", "Its ResourceQuota (keys below).", section(TenantQuota.from_reader), default={}),
    Key(
        "litellm",
        "object",
        "Its LiteLLM team: budget, limits, models (keys below).",
        section(TenantLitellmConfig.from_reader),
        default={},
    ),
    Key(
        "egress",
        "object",
        "Egress rules for all its agents (keys below).",
        section(EgressRules.from_reader),
        default={},
    ),
    Key(
        "dedicatedNodes",
        "boolean",
        "Its own tainted Karpenter NodePool: no other tenant's VM shares its hosts (Kata runtime classes only).",
        boolean(),
        default=False,
    ),
    Key(
        "monthlyBudget",
        "number",
        "USD: an alert fires when its cost over the last 30 days (compute, Kata overhead, volumes, dedicated nodes, "
        "models) passes it (0: no alert; docs/observability.md#cost-per-tenant).",
        number(lo=0),
        default=0,
    ),
    Key(
        "state",
        "string",
        "`active`; `suspended`: no agent pods, keys valid; `decommissioned`: no pods and its LiteLLM team and key "
        "blocked at the gateway, namespace, volumes and spend kept (docs/tenants.md).",
        one_of(TENANT_STATES),
        default="active",
    ),
)
# Every declared key set, by where it sits in the stack config (the docs table: docs/cluster.md#tenant-keys).
TENANT_KEY_SETS = (
    ("tenants[]", TENANT_KEYS),
    ("tenants[].agents[]", AGENT_KEYS),
    ("tenants[].agents[].schedule", SCHEDULE_KEYS),
    ("tenants[].quota", QUOTA_KEYS),
    ("tenants[].litellm", LITELLM_KEYS),
    ("tenants[].egress", EGRESS_KEYS),  # and tenants[].agents[].egress
    ("tenants[].agents[].mcp", MCP_KEYS),
)
