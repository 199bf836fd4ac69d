"""Checks on what the stack really installs: the program's own objects plus every rendered third-party install.

Each finding names the install (``helm monitoring``, ``program``) and the values key or object, and says what
breaks in a real deploy. The checks: the pinned version is published; every values key is known to the chart
and changes the output; every object is schema-valid (built-in kinds for the cluster's Kubernetes version,
custom resources against the CRDs this stack installs) and lives in a namespace the stack creates; Service,
PDB, ServiceMonitor, PodMonitor and NetworkPolicy selectors match pods (and never Job pods, for endpoints and
disruption budgets); every scrape target has a listener; every system pod lands on core nodes; every image is
pinned, from a registry that still serves it, and set explicitly where the vendored chart is approximate.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from components.labels import CAPACITY_PLACEHOLDER_LABEL, CORE_NODE_SELECTOR, GVISOR_TAINT, KATA_TAINT, SANDBOX_LABEL
from tools.program import ProgramResult, manifest_name
from tools.render import CACHE_DIR, Rendered, catalog, ineffective_values

PROGRAM = "program"
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
# Pods and Services that EKS runs itself (managed add-ons, the API server): selectors may target them.
PLATFORM_PODS: tuple[tuple[str, dict[str, str], tuple[int, ...], bool], ...] = (
    ("kube-system", {"k8s-app": "kube-dns"}, (53, 9153), False),  # coredns add-on
    ("kube-system", {"k8s-app": "kube-proxy"}, (10249, 10256), True),  # kube-proxy add-on (hostNetwork)
    ("kube-system", {"k8s-app": "aws-node"}, (61678,), True),  # vpc-cni add-on
    ("kube-system", {"app": "ebs-csi-controller"}, (9808,), False),  # aws-ebs-csi-driver add-on
)
PLATFORM_SERVICES: tuple[tuple[str, dict[str, str]], ...] = (
    ("default", {"component": "apiserver", "provider": "kubernetes"}),  # the `kubernetes` Service
    ("kube-system", {"app.kubernetes.io/name": "kubelet", "k8s-app": "kubelet"}),  # managed by the operator
)
# Registries or repositories whose images are gone or frozen.
WITHDRAWN_IMAGES = {
    "docker.io/bitnami/": "Bitnami withdrew its versioned images from docker.io/bitnami in 2025",
    "k8s.gcr.io/": "k8s.gcr.io is frozen; images moved to registry.k8s.io",
    "gcr.io/google_containers/": "gcr.io/google_containers is frozen; images moved to registry.k8s.io",
}
CORE_NODE_LABELS = {**CORE_NODE_SELECTOR, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
_POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
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


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def pods_of(obj: Obj) -> Iterator[Pod]:
    if obj.kind in OPERATOR_PODS and obj.body.get("apiVersion", "").startswith("monitoring.coreos.com/"):
        app, ports = OPERATOR_PODS[obj.kind]
        spec = obj.body.get("spec") or {}
        labels = {
            **(_dig(spec, "podMetadata", "labels") or {}),
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
    template = _dig(obj.body, *path) if path else obj.body
    spec = _dig(template, "spec") or {}
    ports: list[int | str] = []
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for port in container.get("ports") or []:
            ports += [port.get("containerPort"), port.get("name"), port.get("hostPort")]
    yield Pod(
        obj,
        _dig(template, "metadata", "labels") or {},
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
    for item in rendered:
        for body in item.objects:
            raw.append((f"{item.install.kind} {item.install.name}", body, item.install.namespace))
    for _, body, _ in raw:
        if body.get("kind") == "CustomResourceDefinition":
            crd_scopes[_dig(body, "spec", "names", "kind") or ""] = _dig(body, "spec", "scope") or ""
    objects = []
    for origin, body, default_ns in raw:
        kind = body.get("kind", "")
        scoped = crd_scopes.get(kind) == "Cluster" or (kind not in crd_scopes and kind in CLUSTER_SCOPED)
        namespace = "" if scoped else (_dig(body, "metadata", "namespace") or default_ns or "default")
        objects.append(Obj(origin, body, namespace))
    return Stack(objects)


# --- selectors ------------------------------------------------------------------------------------


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


def _selected_pods(stack: Stack, namespace: str, selector: Mapping[str, Any] | None) -> list[Pod]:
    return [p for p in stack.pods if p.namespace == namespace and matches(selector, p.labels)]


def _describe(selector: Mapping[str, Any] | None) -> str:
    return json.dumps(selector, sort_keys=True)


def _monitor_namespaces(obj: Obj, stack: Stack) -> set[str]:
    ns_selector = _dig(obj.body, "spec", "namespaceSelector") or {}
    if ns_selector.get("any"):
        return {o.namespace for o in stack.objects} | BUILTIN_NAMESPACES
    return set(ns_selector.get("matchNames") or [obj.namespace])


def _services(
    stack: Stack, namespaces: set[str], selector: Mapping[str, Any] | None
) -> list[tuple[Obj | None, str, Mapping[str, Any]]]:
    found: list[tuple[Obj | None, str, Mapping[str, Any]]] = [
        (o, o.namespace, o.body)
        for o in stack.objects
        if o.kind == "Service"
        and o.namespace in namespaces
        and matches(selector, _dig(o.body, "metadata", "labels") or {})
    ]
    for namespace, labels in PLATFORM_SERVICES:
        if namespace in namespaces and matches(selector, labels):
            found.append((None, namespace, {}))
    return found


def check_selectors(stack: Stack) -> Iterator[Finding]:
    """Selectors that match no pod, and endpoint/disruption selectors that also match Job pods."""
    for obj in stack.objects:
        spec = obj.body.get("spec") or {}
        if obj.kind == "Service" and spec.get("selector"):
            selector, endpoints = spec["selector"], True
        elif obj.kind == "PodDisruptionBudget":
            selector, endpoints = spec.get("selector"), True
        elif obj.kind == "NetworkPolicy" and (spec.get("podSelector") or {}):
            selector, endpoints = spec["podSelector"], False
        elif obj.kind == "PodMonitor":
            namespaces = _monitor_namespaces(obj, stack)
            if not any(p.namespace in namespaces and matches(spec.get("selector"), p.labels) for p in stack.pods):
                yield Finding(obj.origin, str(obj), f"selector {_describe(spec.get('selector'))} matches no pod")
            continue
        else:
            continue
        pods = _selected_pods(stack, obj.namespace, selector)
        if not pods:
            yield Finding(
                obj.origin, str(obj), f"selector {_describe(selector)} matches no pod in namespace {obj.namespace}"
            )
        elif endpoints and (jobs := sorted({str(p.owner) for p in pods if p.job})):
            yield Finding(
                obj.origin,
                str(obj),
                f"selector {_describe(selector)} also matches the pods of {', '.join(jobs)}: they would become "
                "endpoints (or count in the disruption budget); select on a label only the serving pods carry",
            )


# --- scrape targets --------------------------------------------------------------------------------


def _service_pods(stack: Stack, namespace: str, service: Mapping[str, Any]) -> list[Pod]:
    selector = _dig(service, "spec", "selector")
    return _selected_pods(stack, namespace, selector) if selector else []


def check_scrape_targets(stack: Stack, rendered: Sequence[Rendered]) -> Iterator[Finding]:
    for obj in stack.objects:
        spec = obj.body.get("spec") or {}
        if obj.kind == "ServiceMonitor":
            services = _services(stack, _monitor_namespaces(obj, stack), spec.get("selector"))
            if not services:
                yield Finding(obj.origin, str(obj), f"selector {_describe(spec.get('selector'))} matches no Service")
                continue
            for endpoint in spec.get("endpoints") or []:
                yield from _check_service_endpoint(stack, obj, services, endpoint)
        elif obj.kind == "PodMonitor":
            namespaces = _monitor_namespaces(obj, stack)
            pods = [p for p in stack.pods if p.namespace in namespaces and matches(spec.get("selector"), p.labels)]
            for endpoint in spec.get("podMetricsEndpoints") or []:
                port = endpoint.get("port") or endpoint.get("portNumber")
                if pods and not any(port in p.ports for p in pods):
                    yield Finding(obj.origin, str(obj), f"no selected pod exposes port {port!r}: nothing listens there")
    for item in rendered:
        for job in _scrape_configs(item.install.values):
            yield from _check_scrape_job(stack, item, job)


def _check_service_endpoint(
    stack: Stack, monitor: Obj, services: list[tuple[Obj | None, str, Mapping[str, Any]]], endpoint: Mapping[str, Any]
) -> Iterator[Finding]:
    wanted = endpoint.get("port") or endpoint.get("targetPort")
    for owner, namespace, service in services:
        if owner is None:
            continue  # endpoints managed outside the stack (API server, kubelet)
        ports = _dig(service, "spec", "ports") or []
        port = next((p for p in ports if wanted in (p.get("name"), p.get("port"), p.get("targetPort"))), None)
        if port is None:
            yield Finding(monitor.origin, str(monitor), f"{owner} has no port {wanted!r}")
            continue
        target = port.get("targetPort", port.get("port"))
        pods = _service_pods(stack, namespace, service)
        if pods and not any(target in p.ports for p in pods):
            yield Finding(
                monitor.origin,
                str(monitor),
                f"{owner} port {wanted!r} targets {target!r}, which no selected pod exposes: nothing listens there",
            )


def _scrape_configs(values: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(values, Mapping):
        for key, value in values.items():
            if key == "additionalScrapeConfigs" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, Mapping))
            else:
                yield from _scrape_configs(value)


def _check_scrape_job(stack: Stack, item: Rendered, job: Mapping[str, Any]) -> Iterator[Finding]:
    roles = {c.get("role") for c in job.get("kubernetes_sd_configs") or []}
    port = None
    for relabel in job.get("relabel_configs") or []:
        if relabel.get("target_label") == "__address__" and ":" in str(relabel.get("replacement", "")):
            port = int(str(relabel["replacement"]).rsplit(":", 1)[1])
    if port is None:
        return
    if "node" in roles:
        listeners = [p for p in stack.pods if p.daemon and p.host_network and port in p.ports]
        where = "hostNetwork DaemonSet"
    else:
        listeners = [p for p in stack.pods if port in p.ports]
        where = "pod"
    if not listeners:
        yield Finding(
            f"{item.install.kind} {item.install.name}",
            f"additionalScrapeConfigs[{job.get('job_name')}]",
            f"scrapes port {port} ({'/'.join(sorted(r for r in roles if r))} discovery) but no {where} in the stack "
            "listens there: the targets stay down",
        )


# --- placement, images, namespaces, schemas ------------------------------------------------------------


def _tolerates(spec: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    for toleration in spec.get("tolerations") or []:
        key, op = toleration.get("key"), toleration.get("operator", "Equal")
        effect_ok = toleration.get("effect") in (None, "", taint["effect"])
        if effect_ok and (
            (op == "Exists" and key in (None, "", taint["key"]))
            or (key == taint["key"] and toleration.get("value") == taint["value"])
        ):
            return True
    return False


def lands_on_core(spec: Mapping[str, Any]) -> bool:
    """Whether every node the pod may land on is a core node (the only untainted nodes)."""
    selector = spec.get("nodeSelector") or {}
    if any(CORE_NODE_LABELS.get(k) != v for k, v in selector.items()):
        return False
    pinned = all(selector.get(k) == v for k, v in CORE_NODE_SELECTOR.items())
    return pinned or not any(_tolerates(spec, taint) for taint in (KATA_TAINT, GVISOR_TAINT))


def check_placement(stack: Stack) -> Iterator[Finding]:
    for pod in stack.pods:
        if (
            pod.owner.origin == "EKS"
            or pod.daemon
            or "true" in (pod.labels.get(SANDBOX_LABEL), pod.labels.get(CAPACITY_PLACEHOLDER_LABEL))
        ):
            continue  # node agents, sandboxes and Kata capacity placeholders belong on other nodes
        if not lands_on_core(pod.spec):
            yield Finding(
                pod.owner.origin,
                str(pod.owner),
                f"system pod would not land on core nodes (nodeSelector {_describe(pod.spec.get('nodeSelector') or {})}, "
                f"tolerations {_describe(pod.spec.get('tolerations') or [])}); select {_describe(CORE_NODE_SELECTOR)}",
            )


def _images(pod: Pod) -> Iterator[tuple[str, str]]:
    for container in [*(pod.spec.get("containers") or []), *(pod.spec.get("initContainers") or [])]:
        yield container.get("name", "?"), str(container.get("image", ""))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def normalize_image(image: str) -> str:
    """``bitnami/postgresql:16`` -> ``docker.io/bitnami/postgresql:16`` (Docker Hub's implicit registry)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    return image if "." in first or ":" in first or first == "localhost" else f"docker.io/{image}"


def image_problem(image: str) -> str | None:
    full = normalize_image(image)
    for prefix, why in WITHDRAWN_IMAGES.items():
        if full.startswith(prefix):
            return f"image {image} cannot be pulled: {why}"
    if "@sha256:" in full:
        return None
    name = full.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image} pins no tag"
    if name.endswith(":latest"):
        return f"image {image} uses the moving tag latest; pin a release tag or digest"
    return None


def check_images(stack: Stack, rendered: Sequence[Rendered]) -> Iterator[Finding]:
    approximate = {
        f"helm {r.install.name}": set(_strings(r.install.values))
        for r in rendered
        if r.install.kind == "helm"
        and not (catalog()["charts"].get(r.install.chart, {}).get("vendored", {}).get(r.install.version) or {}).get(
            "exact", True
        )
    }
    for pod in stack.pods:
        for container, image in _images(pod):
            problem = image_problem(image)
            if problem:
                yield Finding(pod.owner.origin, f"{pod.owner} container {container}", problem)
            elif pod.owner.origin in approximate:
                values = approximate[pod.owner.origin]
                repository, _, tag = image.rpartition(":")
                if image not in values and not (repository in values and tag in values):
                    yield Finding(
                        pod.owner.origin,
                        f"{pod.owner} container {container}",
                        f"image {image} comes from the defaults of an approximate vendored chart; set it explicitly "
                        "(repository and tag from the platform config)",
                    )


def check_namespaces(stack: Stack) -> Iterator[Finding]:
    created = BUILTIN_NAMESPACES | {o.name for o in stack.objects if o.kind == "Namespace"}
    for obj in stack.objects:
        if obj.namespace and obj.namespace not in created:
            yield Finding(obj.origin, str(obj), f"namespace {obj.namespace} is created by nothing in this stack")


def check_schemas(stack: Stack, kube_version: str) -> Iterator[Finding]:
    """Built-in kinds of the installs against the Kubernetes schemas (kubernetes-validate reloads its schema
    files per call, about 35 ms: objects once found valid are remembered by content hash), custom resources
    against the CRDs the stack installs."""
    known = _valid_objects(kube_version)
    for obj in stack.objects:
        if obj.kind == "CustomResourceDefinition" and obj.origin != PROGRAM:
            continue  # upstream's generated CRDs: large, and validated by their own projects
        api_version = obj.body.get("apiVersion", "")
        group = api_version.split("/")[0] if "/" in api_version else ""
        custom = "." in group and not group.endswith(".k8s.io")
        try:
            if custom:
                crd = stack.crds.get((api_version, obj.kind))
                if crd is None:
                    yield Finding(
                        obj.origin, str(obj), f"no install in this stack provides the CRD of {api_version} {obj.kind}"
                    )
                    continue
                error = jsonschema.exceptions.best_match(crd["validator"].iter_errors(dict(obj.body)))
                if error is not None:
                    raise error
            elif obj.origin != PROGRAM:  # the program's own built-in objects: tests/test_manifests.py, every stack
                digest = hashlib.sha256(json.dumps(obj.body, sort_keys=True, default=str).encode()).hexdigest()
                if digest not in known:
                    kubernetes_validate.validate(dict(obj.body), f"{kube_version}.0", strict=True)
                    known.add(digest)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            where = "/".join(str(p) for p in getattr(error, "absolute_path", []) or getattr(error, "path", []) or [])
            yield Finding(obj.origin, str(obj), f"schema: {where or '(root)'}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            yield Finding(obj.origin, str(obj), f"{api_version} {obj.kind} does not exist in Kubernetes {kube_version}")
    _save_valid_objects(kube_version, known)


def _valid_cache(kube_version: str) -> Path:
    return CACHE_DIR / f"valid-objects-{kube_version}.json"


def _valid_objects(kube_version: str) -> set[str]:
    path = _valid_cache(kube_version)
    return set(json.loads(path.read_text())) if path.is_file() else set()


def _save_valid_objects(kube_version: str, known: set[str]) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = _valid_cache(kube_version).with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(sorted(known)))
    os.replace(partial, _valid_cache(kube_version))


def check_versions(rendered: Sequence[Rendered]) -> Iterator[Finding]:
    charts = catalog()["charts"]
    for item in rendered:
        install = item.install
        origin = f"{install.kind} {install.name}"
        entry = charts.get(install.chart)
        if entry is None:
            yield Finding(
                origin, install.chart, "no entry in ../shared/charts/catalog.json: cannot check what is published"
            )
            continue
        published = entry.get("known_versions") or []
        if install.version not in published:
            yield Finding(
                origin,
                f"version {install.version}",
                f"is not a published version of {install.chart} (newest published: {published[-1] if published else 'none'})",
            )
        elif item.folder is None:
            yield Finding(
                origin,
                f"version {install.version}",
                "is published but not vendored in ../shared: ask for it to be vendored",
            )
        if item.error:
            yield Finding(origin, "helm template", item.error)


def check_values(rendered: Sequence[Rendered], kube_version: str) -> Iterator[Finding]:
    for item in rendered:
        for path, known in ineffective_values(item, kube_version):
            why = "the chart does not know this key" if known is False else "it equals the chart default or is ignored"
            yield Finding(
                f"helm {item.install.name}",
                f"values.{path}",
                f"changes nothing in the rendered output ({why}); remove or fix it",
            )


def run_checks(result: ProgramResult, rendered: Sequence[Rendered], kube_version: str) -> list[Finding]:
    stack = build_stack(result, rendered)
    checks: Iterable[Iterable[Finding]] = (
        check_versions(rendered),
        check_values(rendered, kube_version),
        check_schemas(stack, kube_version),
        check_namespaces(stack),
        check_selectors(stack),
        check_scrape_targets(stack, rendered),
        check_placement(stack),
        check_images(stack, rendered),
    )
    return [finding for check in checks for finding in check]
