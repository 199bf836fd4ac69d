"""Typed stack configuration, parsed once.

Every key lives in the ``agent-platform:`` namespace. Defaults come from the ``config:`` section of
``Pulumi.yaml`` (the Pulumi CLI applies the same defaults to every stack), so this module never
repeats a default. Bad input raises :class:`ConfigError` naming the key, before any resource exists.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

NAMESPACE = "agent-platform"
SANDBOX_LABEL = "agent-platform.io/sandbox"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

# Keys the project schema cannot type (objects and secrets without default): value type and secrecy.
UNDECLARED_KEYS: dict[str, type] = {
    "tenants": list,
    "bedrockModels": list,
    "tenantSecrets": dict,
    "litellmDatabaseUrl": str,
}
SECRET_KEYS = frozenset({"litellmMasterKey", "grafanaAdminPassword", "tenantSecrets", "litellmDatabaseUrl"})

# 8th-gen Intel families with EC2 nested virtualization (KVM inside the instance).
NESTED_VIRT_FAMILIES = ("c8i", "c8i-flex", "m8i", "m8i-flex", "r8i", "r8i-flex")
KATA_SHIMS = ("clh", "qemu", "fc")
AGENT_TYPES = ("hermes", "openclaw")
ADMISSION_MODES = ("Deny", "Audit")
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
# Ranges a tenant's egress.cidrs may not touch: "this network", loopback, link-local (instance metadata),
# multicast and reserved. The VPC CIDR is checked too (other tenants' pods, the cluster's own endpoints).
EGRESS_FORBIDDEN_RANGES = tuple(
    ipaddress.IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)
# Environment variables the platform sets in every agent container; tenantSecrets may not override them.
RESERVED_AGENT_ENV = frozenset({"LITELLM_API_KEY", "API_SERVER_KEY", "OPENCLAW_GATEWAY_TOKEN", "HOME", "HERMES_HOME", "OPENCLAW_CONFIG_DIR", "PATH", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "NODE_USE_ENV_PROXY"})  # fmt: skip
# Regions where Amazon Bedrock runtime is offered (November 2026).
BEDROCK_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-west-1", "us-gov-east-1",
        "ca-central-1", "ca-west-1", "sa-east-1", "mx-central-1",
        "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
        "eu-north-1", "eu-south-1", "eu-south-2",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
        "ap-southeast-7", "ap-east-2", "me-central-1", "me-south-1", "il-central-1", "af-south-1",
    }
)  # fmt: skip
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_DURATION = re.compile(r"^[0-9]+(s|m|h|d|w|y)$")
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_HOSTNAME = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """A stack configuration value is missing or invalid. The message names the key."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key if ':' in key else f'{NAMESPACE}:{key}'}: {reason}")


T = TypeVar("T")


class Reader:
    """Reads typed values out of one mapping, naming ``path.key`` in every error."""

    def __init__(self, values: Mapping[str, Any], path: str = "") -> None:
        if not isinstance(values, Mapping):
            raise ConfigError(path or "<root>", f"expected an object, got {type(values).__name__}")
        self.values = values
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def reject_unknown(self, known: Sequence[str]) -> None:
        for name in self.values:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(sorted(known))}"
                raise ConfigError(self.key(name), f"unknown key; {hint}")

    def _get(self, name: str, default: Any, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.values.get(name, default)
        if value is _REQUIRED:
            raise ConfigError(self.key(name), "is required")
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(self.key(name), f"expected {what}, got a boolean")
        if not isinstance(value, kind):
            raise ConfigError(self.key(name), f"expected {what}, got {value!r}")
        return value

    def str(self, name: str, default: Any = None) -> str:
        return self._get(name, _REQUIRED if default is None else default, str, "a string")

    def int(
        self,
        name: str,
        default: Any = None,
        lo: int | None = None,
        hi: int | None = None,
    ) -> int:
        value = self._get(name, _REQUIRED if default is None else default, int, "an integer")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(
                self.key(name),
                f"must be between {lo} and {hi if hi is not None else 'any'}, got {value}",
            )
        return value

    def number(self, name: str, default: Any = None) -> float:
        return float(
            self._get(
                name,
                _REQUIRED if default is None else default,
                (int, float),
                "a number",
            )
        )

    def bool(self, name: str, default: Any = None) -> bool:
        return self._get(name, _REQUIRED if default is None else default, bool, "true or false")

    def strs(self, name: str, default: Any = None) -> tuple[str, ...]:
        value = self._get(
            name,
            _REQUIRED if default is None else default,
            (list, tuple),
            "a list of strings",
        )
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{self.key(name)}[{i}]", f"expected a string, got {item!r}")
        return tuple(value)

    def image(self, name: str) -> str:
        """A container image reference that pins a tag or digest (never ``latest``)."""
        image = self.str(name)
        pinned = "@sha256:" in image or (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"))
        _check(self.key(name), pinned, f"{image!r} must pin a tag or digest (not latest)")
        if "@" in image:  # repo[:tag]@sha256:<64 hex>
            digest = image.split("@", 1)[1]
            _check(self.key(name), bool(re.fullmatch(r"sha256:[0-9a-f]{64}", digest)), f"{digest!r} is not a sha256 digest")  # fmt: skip
        return image

    def choice(self, name: str, choices: Sequence[str], default: Any = None) -> str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(self.key(name), f"{value!r} is not one of {', '.join(choices)}")
        return value

    def objects(self, name: str, parse: Callable[[Reader], T], default: Any = None) -> tuple[T, ...]:
        value = self._get(
            name,
            _REQUIRED if default is None else default,
            (list, tuple),
            "a list of objects",
        )
        return tuple(parse(Reader(item, f"{self.key(name)}[{i}]")) for i, item in enumerate(value))

    def object(self, name: str, parse: Callable[[Reader], T]) -> T:
        return parse(Reader(self.values.get(name) or {}, self.key(name)))


_REQUIRED = object()


def _check(key: str, ok: bool, reason: str) -> None:
    if not ok:
        raise ConfigError(key, reason)


def _cidr(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ConfigError(key, f"{value!r} is not a valid CIDR ({exc})") from None
    _check(key, isinstance(net, ipaddress.IPv4Network), f"{value!r} must be an IPv4 CIDR")
    return net  # type: ignore[return-value]


def _quantity(key: str, value: Any) -> str:
    text = str(value)
    _check(
        key,
        bool(_QUANTITY.match(text)),
        f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)",
    )
    return text


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_value(text: str) -> float:
    """``"500m"`` -> 0.5, ``"4Gi"`` -> 4294967296.0 (a quantity already checked by ``_quantity``)."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    suffix = match.group(2) or ""
    return float(text[: len(text) - len(suffix)]) * _SUFFIXES.get(suffix, 1)


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


def _semver(key: str, value: str) -> tuple[int, int, int]:
    match = _SEMVER.match(value)
    _check(key, match is not None, f"{value!r} is not a version like 1.2.3")
    return tuple(int(part) for part in match.groups())  # type: ignore[union-attr,return-value]


def instance_family(instance_type: str) -> str:
    """``m8i-flex.2xlarge`` -> ``m8i-flex``."""
    return instance_type.split(".", 1)[0]


def check_nested_virt_types(key: str, instance_types: Sequence[str]) -> None:
    _check(key, len(instance_types) > 0, "needs at least one instance type")
    for instance_type in instance_types:
        _check(
            key,
            "." in instance_type and instance_family(instance_type) in NESTED_VIRT_FAMILIES,
            f"{instance_type} has no EC2 nested virtualization, which Kata needs; "
            f"use an 8th-gen Intel family: {', '.join(NESTED_VIRT_FAMILIES)}",
        )


# --------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str
    az_count: int
    nat_per_az: bool

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def resolver_ip(self) -> str:
        """The Amazon-provided DNS server: the VPC CIDR's base address + 2."""
        return str(self.network.network_address + 2)

    def subnet_cidrs(self) -> tuple[list[str], list[str]]:
        """(public, private) CIDRs, one of each per AZ. The VPC is cut in eight blocks: private
        subnets (pods live there) take one block each, public subnets share the last block."""
        blocks = list(self.network.subnets(prefixlen_diff=3))
        public = list(blocks[-1].subnets(prefixlen_diff=3))
        return [str(n) for n in public[: self.az_count]], [str(n) for n in blocks[: self.az_count]]

    @classmethod
    def from_reader(cls, r: Reader) -> NetworkConfig:
        net = _cidr("vpcCidr", r.str("vpcCidr"))
        _check(
            "vpcCidr",
            16 <= net.prefixlen <= 20,
            f"prefix must be between /16 and /20, got /{net.prefixlen}",
        )
        _check("vpcCidr", net.is_private, f"{net} is not a private (RFC 1918) range")
        return cls(
            cidr=str(net),
            az_count=r.int("azCount", lo=2, hi=6),
            nat_per_az=r.choice("natGateways", ("single", "perAz")) == "perAz",
        )


@dataclass(frozen=True)
class NodeGroupConfig:
    instance_types: tuple[str, ...]
    min_size: int
    desired_size: int
    max_size: int
    disk_gib: int

    @classmethod
    def from_reader(cls, r: Reader, prefix: str) -> NodeGroupConfig:
        group = cls(
            instance_types=r.strs(f"{prefix}InstanceTypes"),
            min_size=r.int(f"{prefix}MinSize", lo=0, hi=1000),
            desired_size=r.int(f"{prefix}DesiredSize", lo=0, hi=1000),
            max_size=r.int(f"{prefix}MaxSize", lo=1, hi=1000),
            disk_gib=r.int(f"{prefix}DiskGiB", lo=20, hi=16384),
        )
        _check(
            f"{prefix}InstanceTypes",
            len(group.instance_types) > 0,
            "needs at least one instance type",
        )
        _check(
            f"{prefix}MinSize",
            group.min_size <= group.max_size,
            f"min size {group.min_size} is greater than max size {group.max_size}",
        )
        _check(
            f"{prefix}DesiredSize",
            group.min_size <= group.desired_size <= group.max_size,
            f"desired size {group.desired_size} must be between min {group.min_size} and max {group.max_size}",
        )
        return group


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    kubernetes_version: str
    service_cidr: str
    admin_role_arns: tuple[str, ...]
    public_access_cidrs: tuple[str, ...]
    core: NodeGroupConfig
    kata: NodeGroupConfig

    @classmethod
    def from_reader(cls, r: Reader, stack: str) -> ClusterConfig:
        name = r.str("clusterName") or f"agents-{stack}"
        _check(
            "clusterName",
            bool(re.match(r"^[a-zA-Z][a-zA-Z0-9-]{0,99}$", name)),
            f"{name!r} is not a valid EKS name",
        )
        version = r.str("kubernetesVersion")
        _check(
            "kubernetesVersion",
            bool(re.match(r"^1\.(2[89]|3\d)$", version)),
            f"{version!r} is not 1.28-1.39",
        )
        for i, arn in enumerate(r.strs("adminRoleArns")):
            _check(
                f"adminRoleArns[{i}]",
                bool(re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", arn)),
                f"{arn!r} is not an IAM role ARN",
            )
        _unique("adminRoleArns", [arn.rsplit("/", 1)[-1] for arn in r.strs("adminRoleArns")], "role name")
        public = r.strs("endpointPublicAccessCidrs")
        for i, cidr in enumerate(public):
            _cidr(f"endpointPublicAccessCidrs[{i}]", cidr)
        kata = NodeGroupConfig.from_reader(r, "kata")
        check_nested_virt_types("kataInstanceTypes", kata.instance_types)
        return cls(
            name=name,
            kubernetes_version=version,
            service_cidr=str(_cidr("serviceCidr", r.str("serviceCidr"))),
            admin_role_arns=r.strs("adminRoleArns"),
            public_access_cidrs=public,
            core=NodeGroupConfig.from_reader(r, "core"),
            kata=kata,
        )


@dataclass(frozen=True)
class KarpenterConfig:
    version: str
    capacity_types: tuple[str, ...]
    instance_families: tuple[str, ...]
    cpu_limit: int
    memory_limit_gib: int
    consolidation_policy: str
    consolidate_after: str
    disruption_budget: str
    ami_alias: str

    @classmethod
    def from_reader(cls, r: Reader) -> KarpenterConfig:
        version = r.str("karpenterVersion")
        _check(
            "karpenterVersion",
            _semver("karpenterVersion", version) >= (1, 13, 0),
            f"{version} is below 1.13.0, the first release with EC2NodeClass cpuOptions.nestedVirtualization",
        )
        capacity = r.strs("karpenterCapacityTypes")
        _check(
            "karpenterCapacityTypes",
            bool(capacity) and set(capacity) <= {"on-demand", "spot"},
            f"{list(capacity)} must be a non-empty subset of on-demand, spot",
        )
        families = r.strs("karpenterInstanceFamilies")
        _check("karpenterInstanceFamilies", bool(families), "needs at least one family")
        for family in families:
            _check(
                "karpenterInstanceFamilies",
                family in NESTED_VIRT_FAMILIES,
                f"{family} has no EC2 nested virtualization; use {', '.join(NESTED_VIRT_FAMILIES)}",
            )
        after = r.str("karpenterConsolidateAfter")
        _check(
            "karpenterConsolidateAfter",
            after == "Never" or bool(re.match(r"^([0-9]+(s|m|h))+$", after)),
            f"{after!r} is not a duration like 30s, 5m, 1h30m or Never (Karpenter takes no d/w/y units)",
        )
        ami_alias = r.str("karpenterAmiAlias")
        _check(
            "karpenterAmiAlias",
            bool(re.match(r"^al2023@(latest|v[0-9]{8})$", ami_alias)),
            f"{ami_alias!r} is not an AL2023 alias like al2023@latest or al2023@v20251001",
        )
        budget = r.str("karpenterDisruptionBudget")
        _check(
            "karpenterDisruptionBudget",
            bool(re.match(r"^((100|[0-9]{1,2})%|[0-9]+)$", budget)),
            f"{budget!r} is not a node count or percentage",
        )
        return cls(
            version=version.lstrip("v"),
            capacity_types=capacity,
            instance_families=families,
            cpu_limit=r.int("karpenterCpuLimit", lo=1),
            memory_limit_gib=r.int("karpenterMemoryLimitGiB", lo=1),
            consolidation_policy=r.choice("karpenterConsolidationPolicy", ("WhenEmpty", "WhenEmptyOrUnderutilized")),
            consolidate_after=after,
            disruption_budget=budget,
            ami_alias=ami_alias,
        )  # fmt: skip


@dataclass(frozen=True)
class KataConfig:
    version: str
    firecracker: bool
    gvisor: bool
    default_runtime_class: str
    kubectl_image: str

    @property
    def shims(self) -> tuple[str, ...]:
        return ("clh", "qemu", "fc") if self.firecracker else ("clh", "qemu")

    @property
    def runtime_classes(self) -> tuple[str, ...]:
        return tuple(f"kata-{shim}" for shim in self.shims) + (("gvisor",) if self.gvisor else ())

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    def pod_overhead(self, runtime_class: str) -> dict[str, str] | None:
        """RuntimeClass ``overhead.podFixed`` of a ``kata-<shim>`` class, as kata-deploy's chart sizes it
        (templates/runtimeclasses.yaml): QEMU needs 160Mi in Kata 3.x and 320Mi from 4.x. None for gvisor."""
        if not runtime_class.startswith("kata-"):
            return None
        shim = runtime_class.removeprefix("kata-")
        memory = {"clh": "130Mi", "fc": "130Mi", "qemu": "320Mi" if self.major >= 4 else "160Mi"}[shim]
        return {"cpu": "250m", "memory": memory}

    @classmethod
    def from_reader(cls, r: Reader) -> KataConfig:
        version = r.str("kataDeployVersion")
        _semver("kataDeployVersion", version)
        kata = cls(
            version.lstrip("v"),
            r.bool("kataFirecracker"),
            r.bool("gvisor"),
            r.str("defaultRuntimeClass"),
            r.image("kataKubectlImage"),
        )
        _check(
            "defaultRuntimeClass",
            kata.default_runtime_class in kata.runtime_classes,
            f"{kata.default_runtime_class!r} is not one of the enabled runtime classes {', '.join(kata.runtime_classes)}",
        )
        return kata


@dataclass(frozen=True)
class ModelConfig:
    name: str
    model_id: str
    context_window: int | None = None  # tokens, input + output (what the agents budget their history with)
    max_output_tokens: int | None = None

    @classmethod
    def from_reader(cls, r: Reader) -> ModelConfig:
        r.reject_unknown(("name", "modelId", "contextWindow", "maxOutputTokens"))
        context = r.int("contextWindow", lo=1024, hi=10_000_000) if "contextWindow" in r.values else None
        output = r.int("maxOutputTokens", lo=1, hi=10_000_000) if "maxOutputTokens" in r.values else None
        model = cls(r.str("name"), r.str("modelId"), context, output)
        _check(
            r.key("modelId"),
            bool(re.match(r"^[a-z0-9.:-]+$", model.model_id)),
            f"{model.model_id!r} is not a Bedrock model id",
        )
        _check(
            r.key("maxOutputTokens"),
            output is None or context is None or output < context,
            f"{output} must be below contextWindow ({context}): the output shares the window with the input",
        )
        return model


LITELLM_DATABASES = ("in-cluster", "rds")
LITELLM_CACHES = ("in-cluster", "elasticache")


@dataclass(frozen=True)
class RdsConfig:
    """Amazon RDS for PostgreSQL behind LiteLLM (litellmDatabase: rds)."""

    engine_version: str
    instance_class: str
    storage_gib: int
    multi_az: bool
    backup_retention_days: int


@dataclass(frozen=True)
class GatewayConfig:
    chart_version: str
    replicas: int
    bedrock_region: str
    models: tuple[ModelConfig, ...]
    database: str  # LITELLM_DATABASES
    lb_controller_version: str
    curl_image: str
    image: str
    postgres_image: str
    cache: str = "in-cluster"  # LITELLM_CACHES
    cache_image: str = ""  # the in-cluster Valkey
    cache_engine_version: str = "8"  # ElastiCache Serverless Valkey major version
    rds: RdsConfig | None = None

    @property
    def rds_database(self) -> bool:
        return self.database == "rds"

    @property
    def elasticache(self) -> bool:
        return self.cache == "elasticache"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @classmethod
    def from_reader(cls, r: Reader) -> GatewayConfig:
        region = r.str("bedrockRegion")
        _check(
            "bedrockRegion",
            region in BEDROCK_REGIONS,
            f"{region!r} is not a region where Amazon Bedrock is available",
        )
        models = r.objects("bedrockModels", ModelConfig.from_reader, default=[])
        _check(
            "bedrockModels",
            len(models) > 0,
            "needs at least one model ({name, modelId}) for LiteLLM to serve",
        )
        _unique("bedrockModels", [m.name for m in models], "model name")
        _check(
            "litellmDatabaseUrl",
            "litellmDatabaseUrl" not in r.values,
            "is no longer read: the program provisions LiteLLM's database (litellmDatabase: in-cluster or rds); "
            "remove it with `pulumi config rm agent-platform:litellmDatabaseUrl`",
        )
        database = r.str("litellmDatabase")
        _check(
            "litellmDatabase",
            database not in ("standalone", "external"),
            f"{database!r} was replaced: use 'in-cluster' (was standalone) or 'rds' (an Amazon RDS instance the "
            "program creates, instead of external + litellmDatabaseUrl)",
        )
        database = r.choice("litellmDatabase", LITELLM_DATABASES)
        cache = r.choice("litellmCache", LITELLM_CACHES)
        cache_version = r.str("litellmCacheEngineVersion")
        _check(
            "litellmCacheEngineVersion", bool(re.match(r"^[0-9]+$", cache_version)), "must be a major version, e.g. 8"
        )
        rds_version = r.str("litellmRdsEngineVersion")
        _check("litellmRdsEngineVersion", bool(re.match(r"^[0-9]+(\.[0-9]+)?$", rds_version)), "must look like 17.6")
        rds_class = r.str("litellmRdsInstanceClass")
        _check("litellmRdsInstanceClass", rds_class.startswith("db."), f"{rds_class!r} is not an RDS instance class")
        rds = RdsConfig(
            engine_version=rds_version,
            instance_class=rds_class,
            storage_gib=r.int("litellmRdsStorageGiB", lo=20, hi=65536),
            multi_az=r.bool("litellmRdsMultiAz"),
            backup_retention_days=r.int("litellmRdsBackupRetentionDays", lo=1, hi=35),
        )
        for key in ("litellmChartVersion", "awsLoadBalancerControllerVersion"):
            _semver(key, r.str(key))
        master_key = r.values.get("litellmMasterKey")
        _check(
            "litellmMasterKey",
            master_key in (None, "") or (isinstance(master_key, str) and master_key.startswith("sk-")),
            "must start with sk- (LiteLLM rejects other master keys)",
        )
        curl_image = r.image("curlImage")
        return cls(
            chart_version=r.str("litellmChartVersion").lstrip("v"),
            replicas=r.int("litellmReplicas", lo=2, hi=20),
            bedrock_region=region,
            models=models,
            database=database,
            lb_controller_version=r.str("awsLoadBalancerControllerVersion").lstrip("v"),
            curl_image=curl_image,
            image=r.image("litellmImage"),
            postgres_image=r.image("postgresImage"),
            cache=cache,
            cache_image=r.image("valkeyImage"),
            cache_engine_version=cache_version,
            rds=rds,
        )  # fmt: skip


@dataclass(frozen=True)
class ObservabilityConfig:
    chart_version: str
    retention: str
    storage_gib: int

    @classmethod
    def from_reader(cls, r: Reader) -> ObservabilityConfig:
        retention = r.str("prometheusRetention")
        _check(
            "prometheusRetention",
            bool(_DURATION.match(retention)),
            f"{retention!r} is not a duration like 15d",
        )
        _semver("kubePrometheusStackVersion", r.str("kubePrometheusStackVersion"))
        return cls(
            r.str("kubePrometheusStackVersion").lstrip("v"),
            retention,
            r.int("prometheusStorageGiB", lo=1),
        )


@dataclass(frozen=True)
class ImagesConfig:
    hermes: str
    openclaw: str
    agent_sandbox_version: str

    @classmethod
    def from_reader(cls, r: Reader) -> ImagesConfig:
        return cls(r.image("hermesImage"), r.image("openclawImage"), r.str("agentSandboxVersion"))


def egress_domain(key: str, value: str) -> str:
    """A lower-cased exact host name or a leading wildcard (``*.example.com``); never a bare ``*`` or an IP."""
    domain = value.strip().lower().rstrip(".")
    _check(
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
    _check(key, not domain.startswith("*.") or "." in name, f"{value!r} is a wildcard over a whole top-level domain")  # fmt: skip
    _check(
        key,
        bool(_HOSTNAME.match(name)) and len(name) <= 253,
        f"{value!r} is not a host name or a leading wildcard like *.example.com",
    )
    return domain


def egress_cidr(key: str, value: str) -> str:
    net = _cidr(key, value)
    _check(key, net.prefixlen >= 8, f"{net} is too wide for an allowlist (at most /8)")
    for forbidden in EGRESS_FORBIDDEN_RANGES:
        _check(key, not net.overlaps(forbidden), f"{net} overlaps {forbidden} (loopback, link-local/metadata or reserved)")  # fmt: skip
    return str(net)


@dataclass(frozen=True)
class EgressRules:
    """``egress: {domains, cidrs, typeDefaults}`` of a tenant or an agent."""

    domains: tuple[str, ...] = ()
    cidrs: tuple[str, ...] = ()
    type_defaults: bool | None = None  # None: inherit (agent from tenant, tenant: true)

    @classmethod
    def from_reader(cls, r: Reader) -> EgressRules:
        r.reject_unknown(("domains", "cidrs", "typeDefaults"))
        domains = tuple(
            egress_domain(f"{r.key('domains')}[{i}]", d) for i, d in enumerate(r.strs("domains", default=[]))
        )
        cidrs = tuple(egress_cidr(f"{r.key('cidrs')}[{i}]", c) for i, c in enumerate(r.strs("cidrs", default=[])))
        _unique(r.key("domains"), domains, "domain")
        _unique(r.key("cidrs"), cidrs, "CIDR")
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
        _check(
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
CLOUDWATCH_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip


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
    egress: EgressRules = EgressRules()

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
        _check(
            r.key("name"),
            bool(_DNS_LABEL.match(name)) and len(name) <= 30,
            f"{name!r} must be a DNS label of at most 30 characters",
        )
        secret_env = r.strs("secretEnv", default=[])
        for env in secret_env:
            _check(
                r.key("secretEnv"),
                bool(_ENV_NAME.match(env)),
                f"{env!r} is not an environment variable name",
            )
            _check(
                r.key("secretEnv"),
                env not in RESERVED_AGENT_ENV,
                f"{env} is set by the platform and cannot come from tenantSecrets",
            )
        vm_cpus = r.values.get("vmCpus")
        vm_memory = r.values.get("vmMemoryMiB")
        agent_type = r.str("type")
        _check(
            r.key("type"),
            agent_type in AGENT_TYPES,
            f"unknown agent type {agent_type!r}: not one of {', '.join(AGENT_TYPES)}",
        )
        return cls(
            name=name,
            type=agent_type,
            runtime_class=r.str("runtimeClass", default=default_runtime_class),
            warm_pool=r.int("warmPool", default=0, lo=0, hi=100),
            cpu=_quantity(r.key("cpu"), r.values.get("cpu", "1")),
            memory=_quantity(r.key("memory"), r.values.get("memory", "2Gi")),
            storage_gib=r.int("storageGiB", default=0, lo=0, hi=1024),
            vm_cpus=None if vm_cpus is None else r.int("vmCpus", lo=1, hi=64),
            vm_memory_mib=None if vm_memory is None else r.int("vmMemoryMiB", lo=256, hi=262144),
            secret_env=secret_env,
            egress=r.object("egress", EgressRules.from_reader),
        )  # fmt: skip


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
            cpu=_quantity(r.key("cpu"), r.values.get("cpu", "16")),
            memory=_quantity(r.key("memory"), r.values.get("memory", "64Gi")),
            pods=r.int("pods", default=20, lo=1, hi=1000),
            storage=_quantity(r.key("storage"), r.values.get("storage", "200Gi")),
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
        duration = r.str("budgetDuration", default="30d")
        _check(
            r.key("budgetDuration"),
            bool(_DURATION.match(duration)),
            f"{duration!r} is not a duration like 30d",
        )
        return cls(
            max_budget=r.number("maxBudget", default=100),
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
    egress: EgressRules = EgressRules()

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
        r.reject_unknown(("name", "namespace", "agents", "quota", "litellm", "egress"))
        name = r.str("name")
        _check(
            r.key("name"),
            bool(_DNS_LABEL.match(name)) and len(name) <= 40,
            f"{name!r} must be a DNS label of at most 40 characters",
        )
        namespace = r.str("namespace", default=f"tenant-{name}")
        _check(
            r.key("namespace"),
            bool(_DNS_LABEL.match(namespace)) and len(namespace) <= 63,
            f"{namespace!r} is not a valid namespace name",
        )
        _check(
            r.key("namespace"),
            not namespace.startswith("kube-") and namespace not in RESERVED_NAMESPACES,
            f"{namespace!r} is reserved for the platform",
        )
        agents = r.objects("agents", lambda a: AgentConfig.from_reader(a, default_runtime_class))
        _check(r.key("agents"), len(agents) > 0, "needs at least one agent")
        _unique(r.key("agents"), [a.name for a in agents], "agent name")
        return cls(name, namespace, agents, r.object("quota", TenantQuota.from_reader), r.object("litellm", TenantLitellmConfig.from_reader), r.object("egress", EgressRules.from_reader))  # fmt: skip


# Namespaces the platform itself uses; tenants may not take them.
RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "karpenter", "kata-system", "litellm", "monitoring", "agent-sandbox-system"})  # fmt: skip


def _unique(key: str, names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        _check(key, name not in seen, f"duplicate {what} {name!r}")
        seen.add(name)


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
    tenants: tuple[TenantConfig, ...] = field(default_factory=tuple)
    admission_mode: str = "Deny"  # ValidatingAdmissionPolicyBinding actions: Deny, or Audit (+ Warn) during rollout
    secret_keys_present: frozenset[str] = frozenset()
    tenant_secret_paths: frozenset[str] = frozenset()  # "tenant.agent.ENV" present in tenantSecrets (no values)

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
            _check(
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
                _check(f"{key}[{k}]", not ipaddress.IPv4Network(cidr).overlaps(vpc), f"{cidr} overlaps vpcCidr {vpc}")

    def __post_init__(self) -> None:
        vpc, services = (
            self.network.network,
            ipaddress.IPv4Network(self.cluster.service_cidr),
        )
        _check(
            "serviceCidr",
            not vpc.overlaps(services),
            f"{services} overlaps vpcCidr {vpc}; Kubernetes services need their own range",
        )
        _unique("tenants", [t.name for t in self.tenants], "tenant name")
        _unique("tenants", [t.namespace for t in self.tenants], "tenant namespace")
        models = set(self.gateway.model_names)
        for i, tenant in enumerate(self.tenants):
            for model in tenant.litellm.models:
                _check(
                    f"tenants[{i}].litellm.models",
                    model in models,
                    f"{model!r} is not in bedrockModels ({', '.join(sorted(models))})",
                )
            for j, agent in enumerate(tenant.agents):
                _check(
                    f"tenants[{i}].agents[{j}].runtimeClass",
                    agent.runtime_class in self.kata.runtime_classes,
                    f"unknown runtime class {agent.runtime_class!r}; enabled: {', '.join(self.kata.runtime_classes)}",
                )
                _check(
                    f"tenants[{i}].agents[{j}].vmCpus",
                    agent.vm_cpus is None and agent.vm_memory_mib is None or agent.runtime_class.startswith("kata-"),
                    "VM sizing only applies to kata runtime classes",
                )
                for env in agent.secret_env:
                    _check(
                        f"tenantSecrets.{tenant.name}.{agent.name}.{env}",
                        f"{tenant.name}.{agent.name}.{env}" in self.tenant_secret_paths,
                        f"is required by tenants[{i}].agents[{j}].secretEnv: set it with "
                        f"`pulumi config set --secret --path 'tenantSecrets.{tenant.name}.{agent.name}.{env}' <value>`",
                    )
            self._check_quota(i, tenant)
            self._check_egress_cidrs(i, tenant)
        for key in ("litellmMasterKey", "grafanaAdminPassword"):
            _check(key, key in self.secret_keys_present, "is required: set it with `pulumi config set --secret`")  # fmt: skip

    @classmethod
    def from_dict(cls, stack: str, region: str, values: Mapping[str, Any]) -> PlatformConfig:
        """Parse namespace-less keys (``vpcCidr``...) with typed values; Pulumi.yaml supplies defaults."""
        schema = project_schema()
        merged = {key: decl["default"] for key, decl in schema.items() if "default" in decl}
        merged.update(values)
        r = Reader(merged)
        r.reject_unknown(list(schema) + list(UNDECLARED_KEYS))
        for key, decl in schema.items():
            if key in values:
                _check_declared_type(key, decl, values[key])
        region_ok = bool(re.match(r"^[a-z]{2}(-gov)?-[a-z]+-\d$", region))
        if not region_ok:
            raise ConfigError("aws:region", f"{region!r} is not an AWS region") from None
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
            secret_keys_present=frozenset(k for k in SECRET_KEYS if values.get(k) not in (None, "")),
            tenant_secret_paths=_secret_paths(values.get("tenantSecrets")),
        )


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "array": list,
}


def _check_declared_type(key: str, decl: Mapping[str, Any], value: Any) -> None:
    kind = decl.get("type", "string")
    ok = isinstance(value, _TYPES[kind]) and not (kind == "integer" and isinstance(value, bool))
    _check(key, ok, f"expected {kind} (as declared in Pulumi.yaml), got {value!r}")


@cache
def project_schema() -> dict[str, dict[str, Any]]:
    """The ``agent-platform:`` keys declared in Pulumi.yaml, without namespace."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    prefix = f"{NAMESPACE}:"
    return {key[len(prefix) :]: decl for key, decl in (project.get("config") or {}).items() if key.startswith(prefix)}


def decode_raw(key: str, raw: Any) -> Any:
    """Turn a config value as the engine passes it (always a string) into its typed value."""
    if not isinstance(raw, str):
        return raw
    kind = project_schema().get(key, {}).get("type")
    if key in UNDECLARED_KEYS and UNDECLARED_KEYS[key] is not str:
        kind = "object"
    try:
        if kind == "integer":
            return int(raw)
        if kind == "boolean":
            _check(key, raw in ("true", "false"), f"expected true or false, got {raw!r}")
            return raw == "true"
        if kind in ("array", "object"):
            return json.loads(raw)
    except ValueError:
        raise ConfigError(key, f"expected {kind}, got {raw!r}") from None
    return raw


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
