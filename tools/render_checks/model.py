"""The stack the render checks look at: every object the program registers or an install renders, with its namespace,
and the pods those objects create (plus the ones EKS runs itself). The checks in the sibling modules only read it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from components.contracts.namespaces import ADDON_NAMESPACES
from tools.program import ProgramResult, manifest_name
from tools.render import SHARED, Rendered, parse_objects

PROGRAM = "program"
EKS_ADDON = "aws:eks/addon:Addon"
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "RuntimeClass",
        "PriorityClass",
        "IngressClass",
        "CSIDriver",
        "VolumeAttachment",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
# Pods that EKS runs itself (managed add-ons): selectors may target them.
PLATFORM_PODS: tuple[tuple[str, dict[str, str], tuple[int, ...], bool], ...] = (
    ("kube-system", {"k8s-app": "kube-dns"}, (53, 9153), False),  # coredns add-on
    ("kube-system", {"k8s-app": "kube-proxy"}, (10249, 10256), True),  # kube-proxy add-on (hostNetwork)
    ("kube-system", {"k8s-app": "aws-node"}, (61678,), True),  # vpc-cni add-on
    ("kube-system", {"app": "ebs-csi-controller"}, (9808,), False),  # aws-ebs-csi-driver add-on
)
# CRDs every EKS cluster has without an install (controllers EKS runs in its control plane): the VPC resource
# controller's SecurityGroupPolicy (security groups for pods; Fargate tenants, docs/fargate.md). Vendored from
# aws/amazon-vpc-resource-controller-k8s at this tag (../shared/schemas/crds/README.md).
EKS_CRD_SETS = ("vpc-resource-controller-v1.7.19",)
# Where each workload kind keeps its pod template.
_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"), ("spec", "template")),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "SandboxTemplate": ("spec", "podTemplate"),
    "Pod": (),
}
# Pods the Prometheus operator creates from its custom resources: kind -> (name label, container ports).
OPERATOR_PODS = {
    "Prometheus": ("prometheus", (9090, "web", 8080, "reloader-web")),
    "Alertmanager": ("alertmanager", (9093, "web", 8080, "reloader-web", 9094, "mesh-tcp", "mesh-udp")),
}


@dataclass(frozen=True)
class Finding:
    origin: str  # "helm <release>", "manifest <asset>" or "program"
    key: str  # the values key or the object
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.key}: {self.message}"


@dataclass(frozen=True)
class Obj:
    origin: str
    body: Mapping[str, Any]
    namespace: str  # "" when cluster-scoped

    @property
    def kind(self) -> str:
        return self.body.get("kind", "")

    @property
    def name(self) -> str:
        return (self.body.get("metadata") or {}).get("name", "")

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Pod:
    owner: Obj
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    job: bool = False
    daemon: bool = False
    ports: tuple[int | str, ...] = ()  # container ports: numbers and names
    host_network: bool = False

    @property
    def namespace(self) -> str:
        return self.owner.namespace


@dataclass
class Stack:
    objects: list[Obj]
    pods: list[Pod] = field(default_factory=list)
    crds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (apiVersion, kind) -> CRD

    def __post_init__(self) -> None:
        for obj in self.objects:
            if obj.kind == "CustomResourceDefinition":
                spec = obj.body.get("spec") or {}
                for version in spec.get("versions") or []:
                    self.crds[(f"{spec.get('group')}/{version.get('name')}", (spec.get("names") or {}).get("kind"))] = {
                        "scope": spec.get("scope"),
                        "validator": jsonschema.Draft7Validator(
                            (version.get("schema") or {}).get("openAPIV3Schema") or {}
                        ),
                    }
        self.pods = [pod for obj in self.objects for pod in pods_of(obj)]
        for namespace, labels, ports, host in PLATFORM_PODS:
            owner = Obj("EKS", {"kind": "Pod", "metadata": {"name": "/".join(labels.values())}}, namespace)
            self.pods.append(Pod(owner, labels, {}, ports=ports, host_network=host))

    def namespaced(self, kind: str, api_version: str) -> bool:
        crd = self.crds.get((api_version, kind))
        return crd["scope"] == "Namespaced" if crd else kind not in CLUSTER_SCOPED


def dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def pods_of(obj: Obj) -> Iterator[Pod]:
    if obj.kind in OPERATOR_PODS and obj.body.get("apiVersion", "").startswith("monitoring.coreos.com/"):
        app, ports = OPERATOR_PODS[obj.kind]
        spec = obj.body.get("spec") or {}
        labels = {
            **(dig(spec, "podMetadata", "labels") or {}),
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": obj.name,
            "app.kubernetes.io/managed-by": "prometheus-operator",
            "operator.prometheus.io/name": obj.name,
            app: obj.name,
        }
        yield Pod(obj, labels, spec, ports=ports)
        return
    path = _POD_TEMPLATE_PATHS.get(obj.kind)
    if path is None:
        return
    template = dig(obj.body, *path) if path else obj.body
    spec = dig(template, "spec") or {}
    ports: list[int | str] = []
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for port in container.get("ports") or []:
            ports += [port.get("containerPort"), port.get("name"), port.get("hostPort")]
    yield Pod(
        obj,
        dig(template, "metadata", "labels") or {},
        spec,
        job=obj.kind in ("Job", "CronJob"),
        daemon=obj.kind == "DaemonSet",
        ports=tuple(p for p in ports if p is not None),
        host_network=bool(spec.get("hostNetwork")),
    )


def build_stack(result: ProgramResult, rendered: Sequence[Rendered]) -> Stack:
    crd_scopes: dict[str, str] = {}
    raw: list[tuple[str, Mapping[str, Any], str]] = []
    for r in result.registrations:
        if manifest_name(r):
            raw.append((PROGRAM, {k: v for k, v in r.inputs.items() if not k.startswith("__")}, ""))
        elif r.type == EKS_ADDON and (namespace := ADDON_NAMESPACES.get(r.inputs.get("addonName", ""))):
            raw.append(("EKS", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, ""))
    for item in rendered:
        for body in item.objects:
            raw.append((f"{item.install.kind} {item.install.name}", body, item.install.namespace))
    for path in sorted(p for folder in EKS_CRD_SETS for p in (SHARED / "schemas" / "crds" / folder).glob("*.yaml")):
        raw.extend(("EKS", body, "") for body in parse_objects(path.read_text()) if body)
    for _, body, _ in raw:
        if body.get("kind") == "CustomResourceDefinition":
            crd_scopes[dig(body, "spec", "names", "kind") or ""] = dig(body, "spec", "scope") or ""
    objects = []
    for origin, body, default_ns in raw:
        kind = body.get("kind", "")
        scoped = crd_scopes.get(kind) == "Cluster" or (kind not in crd_scopes and kind in CLUSTER_SCOPED)
        namespace = "" if scoped else (dig(body, "metadata", "namespace") or default_ns or "default")
        objects.append(Obj(origin, body, namespace))
    return Stack(objects)


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) or a plain map (Service selector)."""
    if not selector:
        return True
    if "matchLabels" in selector or "matchExpressions" in selector:
        if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
            return False
        for expression in selector.get("matchExpressions") or []:
            key, op, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
            present = key in labels
            if (
                (op == "In" and labels.get(key) not in values)
                or (op == "NotIn" and present and labels.get(key) in values)
                or (op == "Exists" and not present)
                or (op == "DoesNotExist" and present)
            ):
                return False
        return True
    return all(labels.get(k) == v for k, v in selector.items())


def describe(selector: Mapping[str, Any] | None) -> str:
    return json.dumps(selector, sort_keys=True)
