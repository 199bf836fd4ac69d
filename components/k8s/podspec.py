"""The single builder of sandbox pod templates, and the pod-level helpers platform pods share (plain data, no Pulumi).

Every agent Deployment and SandboxTemplate takes its pod template from :func:`sandbox_pod_template`, so the isolation
rules cannot drift between agent types or the two ways a sandbox starts. Details: docs/cluster.md#sandbox-pods.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.config import NetworkConfig
from components.contracts.labels import (
    CORE_NODE_SELECTOR,
    DEDICATED_TENANT_KEY,
    FARGATE_POD_LABELS,
    SANDBOX_LABEL,
    dedicated_toleration,
    selector_labels,
)

# Runtime classes that cannot start initContainers (Cloud Hypervisor).
NO_INIT_CONTAINERS = frozenset({"kata-clh"})
# Per-pod VM sizing (kata-containers docs/how-to/how-to-set-sandbox-config-kata.md). The shims must allow
# them (kata-deploy ``shims.<shim>.allowedHypervisorAnnotations``), see components/runtime/kata_deploy.py.
KATA_VCPUS_ANNOTATION = "io.katacontainers.config.hypervisor.default_vcpus"
KATA_MEMORY_ANNOTATION = "io.katacontainers.config.hypervisor.default_memory"
DNS_NDOTS = "2"  # public names like api.slack.com are tried as absolute names first
_HOST_FIELDS = ("hostNetwork", "hostPID", "hostIPC")


@dataclass(frozen=True)
class Container:
    """The agent container; the builder adds the security context and resources."""

    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: tuple[Mapping[str, Any], ...] = ()
    ports: tuple[tuple[str, int], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    liveness_probe: Mapping[str, Any] | None = None
    readiness_probe: Mapping[str, Any] | None = None
    startup_probe: Mapping[str, Any] | None = None
    working_dir: str | None = None
    # Whether the image runs with a read-only root filesystem. Callers that turn it off must say why.
    read_only_root: bool = True


@dataclass(frozen=True)
class SandboxPod:
    tenant: str
    namespace: str
    app: str  # agent type: app.kubernetes.io/name
    agent: str  # agent name
    workload: str  # "deployment" or "warm-pool"
    runtime_class: str  # "" on Fargate (its own micro-VM per pod, no runtime class)
    uid: int  # the image's user; also its group
    cpu: str
    memory: str
    service_account: str
    container: Container
    volumes: tuple[Mapping[str, Any], ...] = ()
    init_containers: tuple[Container, ...] = ()
    vm_cpus: int | None = None
    vm_memory_mib: int | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    dedicated_nodes: bool = False  # only on the tenant's own Kata nodes (tenant dedicatedNodes)

    @property
    def fargate(self) -> bool:
        return not self.runtime_class


def pod_labels(pod: SandboxPod) -> dict[str, str]:
    return {
        **pod.extra_labels,
        "app.kubernetes.io/name": pod.app,
        "app.kubernetes.io/instance": f"{pod.tenant}-{pod.agent}",
        "app.kubernetes.io/part-of": "agent-platform",
        **selector_labels(pod.tenant, pod.agent, pod.workload),
        **(FARGATE_POD_LABELS if pod.fargate else {}),  # the tenant's Fargate profile selects it (docs/fargate.md)
        SANDBOX_LABEL: "true",
    }


def dns_config(namespace: str, network: NetworkConfig) -> dict[str, Any]:
    """The VPC resolver plus the usual cluster search domains (tools expect them; they resolve nothing here)."""
    return {
        "nameservers": [network.resolver_ip],
        "searches": [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": [{"name": "ndots", "value": DNS_NDOTS}],
    }


def pod_security_context(
    uid: int, gid: int | None = None, *, fs_group: int | None = None, fs_group_change_policy: str | None = None
) -> dict[str, Any]:
    """Pod-level context every platform and sandbox pod shares: non-root as ``uid`` (group ``gid``, default
    ``uid``), seccomp RuntimeDefault; ``fs_group`` owns the mounted volumes of pods that write to them."""
    context: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid if gid is None else gid}
    if fs_group is not None:
        context["fsGroup"] = fs_group
    if fs_group_change_policy is not None:
        context["fsGroupChangePolicy"] = fs_group_change_policy
    return {**context, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context(uid: int, read_only_root: bool, gid: int | None = None) -> dict[str, Any]:
    """Restricted-profile container security context: non-root, no escalation, no capabilities."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid if gid is None else gid,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(c: Container, pod: SandboxPod) -> dict[str, Any]:
    resources = {"cpu": pod.cpu, "memory": pod.memory}
    body: dict[str, Any] = {
        "name": c.name,
        "image": c.image,
        # checkov CKV_K8S_15 wants Always: tags are pinned (config refuses :latest), and pulling multi-GB
        # agent images on every start would defeat warm pools.
        "imagePullPolicy": "IfNotPresent",
        **({"command": list(c.command)} if c.command else {}),  # none: the image's entrypoint
        "securityContext": container_security_context(pod.uid, c.read_only_root),
        "resources": {"requests": dict(resources), "limits": dict(resources)},
    }
    if c.args:
        body["args"] = list(c.args)
    if c.working_dir:
        body["workingDir"] = c.working_dir
    if c.env:
        body["env"] = [dict(e) for e in c.env]
    if c.ports:
        body["ports"] = [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in c.ports]
    if c.volume_mounts:
        body["volumeMounts"] = [dict(m) for m in c.volume_mounts]
    for key, probe in (
        ("livenessProbe", c.liveness_probe),
        ("readinessProbe", c.readiness_probe),
        ("startupProbe", c.startup_probe),
    ):
        if probe:
            body[key] = dict(probe)
    return body


def _check(pod: SandboxPod) -> None:
    if pod.init_containers and pod.runtime_class in NO_INIT_CONTAINERS:
        raise ValueError(
            f"{pod.tenant}/{pod.agent}: {pod.runtime_class} (Cloud Hypervisor) cannot start initContainers "
            '("File exists (os error 17)"); do that work in the entrypoint or use kata-qemu'
        )
    if pod.uid <= 0:
        raise ValueError(f"{pod.tenant}/{pod.agent}: sandbox containers run as a non-root UID, got {pod.uid}")
    if pod.fargate and (pod.dedicated_nodes or any("persistentVolumeClaim" in v for v in pod.volumes)):
        raise ValueError(f"{pod.tenant}/{pod.agent}: Fargate pods get no dedicated nodes and no EBS volume claims")
    for volume in pod.volumes:
        if "hostPath" in volume:
            raise ValueError(f"{pod.tenant}/{pod.agent}: hostPath volume {volume.get('name')!r} is not allowed")


def sandbox_pod_template(pod: SandboxPod, network: NetworkConfig) -> dict[str, Any]:
    """``{"metadata": {...}, "spec": {...}}`` for a Deployment's ``spec.template`` or a SandboxTemplate's
    ``spec.podTemplate``. Raises ValueError when the pod would break an isolation rule."""
    _check(pod)
    spec: dict[str, Any] = {
        # Fargate: none (the profile's match puts the pod in a Firecracker micro-VM; both gates check the label).
        **({"runtimeClassName": pod.runtime_class} if not pod.fargate else {}),
        "serviceAccountName": pod.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        **{name: False for name in _HOST_FIELDS},
        "dnsPolicy": "None",
        "dnsConfig": dns_config(pod.namespace, network),
        "securityContext": pod_security_context(pod.uid, fs_group=pod.uid, fs_group_change_policy="OnRootMismatch"),
        "containers": [_container(pod.container, pod)],
    }
    if pod.dedicated_nodes:
        # Added to the RuntimeClass' own scheduling (the Kata node label and taint) at admission.
        spec["nodeSelector"] = {DEDICATED_TENANT_KEY: pod.tenant}
        spec["tolerations"] = [dedicated_toleration(pod.tenant)]
    if pod.init_containers:
        spec["initContainers"] = [_container(c, pod) for c in pod.init_containers]
    if pod.volumes:
        spec["volumes"] = [dict(v) for v in pod.volumes]
    metadata: dict[str, Any] = {"labels": pod_labels(pod)}
    annotations = kata_annotations(pod)
    if annotations:
        metadata["annotations"] = annotations
    return copy.deepcopy({"metadata": metadata, "spec": spec})  # callers may edit it; nothing is shared


def kata_annotations(pod: SandboxPod) -> dict[str, str]:
    """VM sizing annotations, only when the tenant asked for them (Kata sizes the VM from the limits
    otherwise: default_vcpus/default_memory from the shim config plus the container limits)."""
    if not pod.runtime_class.startswith("kata-"):
        return {}
    annotations = {}
    if pod.vm_cpus is not None:
        annotations[KATA_VCPUS_ANNOTATION] = str(pod.vm_cpus)
    if pod.vm_memory_mib is not None:
        annotations[KATA_MEMORY_ANNOTATION] = str(pod.vm_memory_mib)
    return annotations


def volume_mount(name: str, path: str, read_only: bool = False, sub_path: str | None = None) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    if sub_path:
        mount["subPath"] = sub_path
    return mount


def selecting(labels: Mapping[str, str], pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A workload's ``selector`` and pod ``template`` from one set of labels, so that the two cannot drift."""
    return {
        "selector": {"matchLabels": dict(labels)},
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }


def plain_env(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Environment variables with literal values, in the mapping's order."""
    return [{"name": name, "value": value} for name, value in values.items()]


def secret_env(names: Sequence[str], secret: str) -> list[dict[str, Any]]:
    """Environment variables read from keys of the same name in ``secret``."""
    return [{"name": n, "valueFrom": {"secretKeyRef": {"name": secret, "key": n}}} for n in names]


def topology_spread(
    selector: Mapping[str, str], zone: str = "DoNotSchedule", hosts: bool = True
) -> list[dict[str, Any]]:
    """Spread the pods ``selector`` picks over zones (``zone``: how strictly) and, best effort, over hosts."""
    constraints = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": zone,
            "labelSelector": {"matchLabels": dict(selector)},
        }
    ]
    if hosts:
        constraints.append(
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)},
            }
        )
    return constraints


def core_pod_template(
    selector: Mapping[str, str],
    config_hash: str,
    *,
    uid: int,
    grace_seconds: int,
    spread: list[dict[str, Any]],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    """A platform proxy pod on core nodes (egress Squid, tenant nginx): rolled when its config changes (hash
    annotation), non-root as ``uid`` (also its group and fsGroup), seccomp RuntimeDefault, no service account
    token, no service links."""
    return {
        "metadata": {"labels": dict(selector), "annotations": {"agent-platform.io/config-hash": config_hash}},
        "spec": {
            "nodeSelector": dict(CORE_NODE_SELECTOR),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": grace_seconds,
            "securityContext": pod_security_context(uid, fs_group=uid),
            "topologySpreadConstraints": spread,
            "containers": containers,
            "volumes": volumes,
        },
    }
