"""The AWS footprint: VPC, EKS cluster and node groups, Karpenter and the Kata/gVisor runtimes.

These sections decide where sandboxes can run at all (nested virtualization, runtime classes), so they are
checked together before any tenant is read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from components.config.aws_facts import check_instance_family, check_instance_type, check_service_cidr
from components.config.reader import (
    Reader,
    check,
    check_match,
    parse_cidr,
    parse_semver,
    project_schema,
    unique,
)

# 8th-gen Intel families with EC2 nested virtualization (KVM inside the instance).
NESTED_VIRT_FAMILIES = ("c8i", "c8i-flex", "m8i", "m8i-flex", "r8i", "r8i-flex")

# endpointPublicAccessCidrs entries may not be wider than this prefix (0.0.0.0/0 is refused).
MIN_ENDPOINT_PREFIX = 8


def _instance_family(instance_type: str) -> str:
    """``m8i-flex.2xlarge`` -> ``m8i-flex``."""
    return instance_type.split(".", 1)[0]


def _check_nested_virt_types(key: str, instance_types: Sequence[str]) -> None:
    check(key, len(instance_types) > 0, "needs at least one instance type")
    for i, instance_type in enumerate(instance_types):
        check(
            f"{key}[{i}]",
            "." in instance_type and _instance_family(instance_type) in NESTED_VIRT_FAMILIES,
            f"{instance_type} has no EC2 nested virtualization, which Kata needs; "
            f"use an 8th-gen Intel family: {', '.join(NESTED_VIRT_FAMILIES)}",
        )


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
        net = parse_cidr("vpcCidr", r.str("vpcCidr"))
        check(
            "vpcCidr",
            16 <= net.prefixlen <= 20,
            f"prefix must be between /16 and /20, got /{net.prefixlen}",
        )
        check("vpcCidr", net.is_private, f"{net} is not a private (RFC 1918) range")
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
        check(
            f"{prefix}InstanceTypes",
            len(group.instance_types) > 0,
            "needs at least one instance type",
        )
        for i, instance_type in enumerate(group.instance_types):
            check_instance_type(f"{prefix}InstanceTypes[{i}]", instance_type)
        check(
            f"{prefix}MinSize",
            group.min_size <= group.max_size,
            f"min size {group.min_size} is greater than max size {group.max_size}",
        )
        check(
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
    kata_managed_node_group: bool
    node_ssm_access: bool  # AmazonSSMManagedInstanceCore on node roles (Session Manager), opt-in
    cloudwatch_observability: bool = False  # the EKS add-on amazon-cloudwatch-observability, opt-in

    @classmethod
    def from_reader(cls, r: Reader, stack: str) -> ClusterConfig:
        name = r.str("clusterName") or f"agents-{stack}"
        check_match("clusterName", name, r"^[a-zA-Z][a-zA-Z0-9-]{0,99}$", "a valid EKS name")
        # The range EKS offers and Karpenter supports is checked with karpenterVersion (components/config/versions).
        version = r.matching("kubernetesVersion", r"^1\.[0-9]{1,2}$", "a Kubernetes minor version like 1.36")
        admins = r.strs("adminRoleArns")
        for i, arn in enumerate(admins):
            check_match(f"adminRoleArns[{i}]", arn, r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", "an IAM role ARN")
        unique("adminRoleArns", [arn.rsplit("/", 1)[-1] for arn in admins], "role name")
        public = r.strs("endpointPublicAccessCidrs")
        for i, cidr in enumerate(public):
            net = parse_cidr(f"endpointPublicAccessCidrs[{i}]", cidr)
            # The API endpoint is the cluster's front door: never the whole internet (0.0.0.0/0, or halves of it).
            check(
                f"endpointPublicAccessCidrs[{i}]",
                net.prefixlen >= MIN_ENDPOINT_PREFIX,
                f"{cidr} opens the Kubernetes API endpoint to the internet; list your operators' or CI's CIDRs "
                f"(at most /{MIN_ENDPOINT_PREFIX} wide), or none to keep the endpoint private",
            )
        _check_nested_virt_types("kataInstanceTypes", r.strs("kataInstanceTypes"))
        kata = NodeGroupConfig.from_reader(r, "kata")
        service_cidr = parse_cidr("serviceCidr", r.str("serviceCidr"))
        check_service_cidr("serviceCidr", service_cidr)
        return cls(
            name=name,
            kubernetes_version=version,
            service_cidr=str(service_cidr),
            admin_role_arns=admins,
            public_access_cidrs=public,
            core=NodeGroupConfig.from_reader(r, "core"),
            kata=kata,
            kata_managed_node_group=r.bool("kataManagedNodeGroup"),
            node_ssm_access=r.bool("nodeSsmAccess"),
            cloudwatch_observability=r.bool("cloudWatchObservability"),
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
    warm_nodes: int
    pause_image: str
    gvisor_release: str
    gvisor_families: tuple[str, ...]
    gvisor_sha512: tuple[tuple[str, str], ...] = ()  # (amd64|arm64, the release tarball's SHA-512)

    @classmethod
    def from_reader(cls, r: Reader) -> KarpenterConfig:
        version = r.str("karpenterVersion")
        check(
            "karpenterVersion",
            parse_semver("karpenterVersion", version) >= (1, 13, 0),
            f"{version} is below 1.13.0, the first release with EC2NodeClass cpuOptions.nestedVirtualization",
        )
        capacity = r.strs("karpenterCapacityTypes")
        check(
            "karpenterCapacityTypes",
            bool(capacity) and set(capacity) <= {"on-demand", "spot"},
            f"{list(capacity)} must be a non-empty subset of on-demand, spot",
        )
        families = r.strs("karpenterInstanceFamilies")
        check("karpenterInstanceFamilies", bool(families), "needs at least one family")
        for i, family in enumerate(families):
            check(
                f"karpenterInstanceFamilies[{i}]",
                family in NESTED_VIRT_FAMILIES,
                f"{family} has no EC2 nested virtualization; use {', '.join(NESTED_VIRT_FAMILIES)}",
            )
        after = r.str("karpenterConsolidateAfter")
        if after != "Never":
            check_match(
                "karpenterConsolidateAfter",
                after,
                r"^([0-9]+(s|m|h))+$",
                "a duration like 30s, 5m, 1h30m or Never (Karpenter takes no d/w/y units)",
            )
        ami_alias = r.matching(
            "karpenterAmiAlias",
            r"^al2023@(latest|v[0-9]{8})$",
            "an AL2023 alias like al2023@latest or al2023@v20251001",
        )
        gvisor_release = r.matching("gvisorRelease", r"^[0-9]{8}\.[0-9]+$", "a gVisor release like 20260928.0")
        check(
            "gvisorRelease",
            gvisor_release > "20260817.0",
            f"{gvisor_release} publishes loose binaries; the install takes the tarball of releases after 20260817.0",
        )
        gvisor_sha512 = tuple(
            (arch, r.matching(f"gvisorSha512{arch.title()}", r"^[0-9a-f]{128}$", "a SHA-512 (128 hex digits)"))
            for arch in ("amd64", "arm64")
        )
        defaults = project_schema()
        for arch, digest in gvisor_sha512:
            key = f"gvisorSha512{arch.title()}"
            check(
                key,
                gvisor_release == defaults["gvisorRelease"]["default"] or digest != defaults[key]["default"],
                f"is the SHA-512 of {defaults['gvisorRelease']['default']}'s tarball; set the one published for "
                f"{gvisor_release} ({arch} gvisor.tar.zstd)",
            )
        gvisor_families = r.strs("gvisorInstanceFamilies")
        check("gvisorInstanceFamilies", bool(gvisor_families), "needs at least one family")
        for i, family in enumerate(gvisor_families):  # the pattern admits no ".": a family, never an instance type
            check_match(f"gvisorInstanceFamilies[{i}]", family, r"^[a-z][a-z0-9-]*$", "an instance family like m7g")
            check_instance_family(f"gvisorInstanceFamilies[{i}]", family)
        budget = r.matching("karpenterDisruptionBudget", r"^((100|[0-9]{1,2})%|[0-9]+)$", "a node count or percentage")
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
            warm_nodes=r.int("kataWarmNodes", lo=0, hi=100),
            pause_image=r.image("pauseImage"),
            gvisor_release=gvisor_release,
            gvisor_families=gvisor_families,
            gvisor_sha512=gvisor_sha512,
        )


@dataclass(frozen=True)
class KataConfig:
    version: str
    firecracker: bool
    gvisor: bool
    default_runtime_class: str
    kubectl_image: str

    @property
    def classes(self) -> dict[str, str]:
        """Platform RuntimeClass name -> kata-deploy shim. The names stay stable for tenants across Kata
        releases; from 4.x they map to the Rust runtime (runtime-rs, the 4.x default) where a runtime-rs shim
        exists. Firecracker exists only in the Go runtime (deprecated in 4.x, still shipped)."""
        rust = self.major >= 4
        classes = {"kata-clh": "clh-runtime-rs" if rust else "clh", "kata-qemu": "qemu-runtime-rs" if rust else "qemu"}
        if self.firecracker:
            classes["kata-fc"] = "fc"
        return classes

    @property
    def shims(self) -> tuple[str, ...]:
        return tuple(self.classes.values())

    @property
    def go_runtime_shims(self) -> tuple[str, ...]:
        """The enabled shims of the Go runtime: the only sandboxes kata-monitor sees (it reads /run/vc/sbs;
        runtime-rs keeps its shim sockets under /run/kata, which kata-deploy 4.1's kata-monitor does not mount)."""
        return tuple(shim for shim in self.shims if not shim.endswith("-runtime-rs"))

    @property
    def monitor(self) -> bool:
        """kata-monitor runs (kata-deploy 4.x) only where it can see sandboxes: with a Go-runtime shim."""
        return self.major >= 4 and bool(self.go_runtime_shims)

    @property
    def runtime_classes(self) -> tuple[str, ...]:
        return (*self.classes, *(("gvisor",) if self.gvisor else ()))

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    def pod_overhead(self, runtime_class: str) -> dict[str, str] | None:
        """RuntimeClass ``overhead.podFixed`` of a Kata class, as kata-deploy's chart sizes its shim
        (templates/runtimeclasses.yaml): QEMU needs 160Mi in Kata 3.x and 320Mi from 4.x. None for gvisor."""
        shim = self.classes.get(runtime_class)
        if shim is None:
            return None
        memory = "130Mi" if shim.startswith(("clh", "fc")) else ("320Mi" if self.major >= 4 else "160Mi")
        return {"cpu": "250m", "memory": memory}

    @classmethod
    def from_reader(cls, r: Reader) -> KataConfig:
        version = r.str("kataDeployVersion")
        parse_semver("kataDeployVersion", version)
        kata = cls(
            version.lstrip("v"),
            r.bool("kataFirecracker"),
            r.bool("gvisor"),
            r.str("defaultRuntimeClass"),
            r.image("kataKubectlImage"),
        )
        check(
            "defaultRuntimeClass",
            kata.default_runtime_class in kata.runtime_classes,
            f"{kata.default_runtime_class!r} is not one of the enabled runtime classes {', '.join(kata.runtime_classes)}",
        )
        return kata
