"""The pod spec of every kind of Kubernetes workload, and what makes a workload a sandbox (one decision).

Works on resolved resources (placement.py): a ``*Patch`` is the kind it patches, judged on the fields it sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .common import SANDBOX_LABEL, Unknowns, config_strings, dig, get, is_true, items, mapping, string
from .placement import NAMESPACE, KindKey, Resolved, kind_of, of_kinds, resolve
from .stack import KubeObject, Stack


@dataclass(frozen=True, slots=True)
class WorkloadShape:
    spec_path: tuple[str, ...]  # where the pod spec lives
    labels_path: tuple[str, ...]  # where the pod template labels live


_TEMPLATE = WorkloadShape(("spec", "template", "spec"), ("spec", "template", "metadata", "labels"))
_POD_TEMPLATE = WorkloadShape(("spec", "podTemplate", "spec"), ("spec", "podTemplate", "metadata", "labels"))
SHAPES: dict[KindKey, WorkloadShape] = {
    ("core", "Pod"): WorkloadShape(("spec",), ("metadata", "labels")),
    ("core", "PodTemplate"): WorkloadShape(("template", "spec"), ("template", "metadata", "labels")),
    ("core", "ReplicationController"): _TEMPLATE,
    ("batch", "Job"): _TEMPLATE,
    ("batch", "CronJob"): WorkloadShape(
        ("spec", "jobTemplate", "spec", "template", "spec"),
        ("spec", "jobTemplate", "spec", "template", "metadata", "labels"),
    ),
    ("agents.x-k8s.io", "Sandbox"): _POD_TEMPLATE,
    ("extensions.agents.x-k8s.io", "SandboxTemplate"): _POD_TEMPLATE,
    **{("apps", kind): _TEMPLATE for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")},
    **{("extensions", kind): _TEMPLATE for kind in ("Deployment", "DaemonSet", "ReplicaSet")},
}
WORKLOAD_KINDS: frozenset[KindKey] = frozenset(SHAPES)
is_workload = of_kinds(WORKLOAD_KINDS)


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """The pod spec of a workload, plus what messages and sandbox detection need."""

    resource: Resolved
    spec: Mapping[str, Any]
    spec_path: str
    labels: Mapping[str, Any] | None  # the pod template's labels
    labels_unknown: UnknownValueError | None = None

    @property
    def who(self) -> str:
        return self.resource.who

    @property
    def patch(self) -> bool:
        """A ``*Patch``: a field it omits is not set by it (and so not a violation)."""
        return self.resource.partial

    def field(self, *names: str) -> str:
        return ".".join((self.spec_path, *names))

    def runtime_class(self) -> str | None:
        """runtimeClassName; raises UnknownValueError when unknown."""
        return string(get(self.spec, "runtimeClassName"))

    def has_sandbox_label(self, obj: Any = None) -> bool:
        """The sandbox label on the object itself or on its pod template (either makes it a sandbox, at both
        gates). ``obj`` is the object to read the object's labels from (the merged object of a patch and its
        target); raises UnknownValueError when the answer depends on an unknown label."""
        return sandbox_labelled(self.resource.props if obj is None else obj, self.labels, self.labels_unknown)


def sandbox_labelled(obj: Any, pod_labels: Any, pod_labels_unknown: UnknownValueError | None = None) -> bool:
    """Whether ``agent-platform.io/sandbox`` is true (any case, or a boolean) on the object or its pod template."""
    unknown = pod_labels_unknown
    try:
        if is_true(get(pod_labels, SANDBOX_LABEL)):
            return True
    except UnknownValueError as error:
        unknown = unknown or error
    try:
        if is_true(get(dig(obj, "metadata", "labels"), SANDBOX_LABEL)):
            return True
    except UnknownValueError as error:
        unknown = unknown or error
    if unknown is not None:
        raise unknown
    return False


def pod_template(resource: Resolved) -> PodTemplate | None:
    """The pod template of a workload (what the resource itself declares); None for anything else.

    Raises UnknownValueError when the pod spec itself is unknown during preview. Built once per resource.
    """
    return resource.memo("pod_template", lambda: _pod_template(resource))


def known_pod_template(resource: Resolved) -> PodTemplate | None:
    """``pod_template``, or None also when the pod spec is unknown (the resource policies note that already)."""
    try:
        return pod_template(resource)
    except UnknownValueError:
        return None


def _pod_template(resource: Resolved) -> PodTemplate | None:
    shape = SHAPES.get(resource.kind_key)  # type: ignore[arg-type]
    props = resource.props
    if shape is None or not isinstance(props, Mapping):
        return None
    spec = mapping(dig(props, *shape.spec_path))
    if spec is None:
        return None
    labels: Mapping[str, Any] | None = None
    labels_unknown: UnknownValueError | None = None
    try:
        labels = mapping(dig(props, *shape.labels_path))
    except UnknownValueError as error:
        labels_unknown = error  # the namespace may still decide; see is_sandbox
    return PodTemplate(resource, spec, ".".join(shape.spec_path), labels, labels_unknown)


def workload_template(args: ResourceValidationArgs) -> PodTemplate | None:
    """The pod template of the resource under validation; None, without reading a property, for other types."""
    if not is_workload(args.resource_type):
        return None
    return pod_template(resolve(args))


def is_sandbox(template: PodTemplate, sandbox_namespaces: Sequence[str], sandbox_kinds: Sequence[str] = ()) -> bool:
    """Resource-level sandbox detection: a configured kind, the sandbox label (object or pod template), or a
    configured namespace (where the resource lands: metadata, else its provider's default).

    Raises UnknownValueError only when the answer depends on an unknown value.
    """
    resource = template.resource
    if resource.kind in sandbox_kinds:
        return True
    label_unknown: UnknownValueError | None = None
    try:
        if template.has_sandbox_label():
            return True
    except UnknownValueError as error:
        label_unknown = error
    if sandbox_namespaces:
        if resource.namespace_unknown is not None:
            raise label_unknown or resource.namespace_unknown
        if resource.namespace in sandbox_namespaces:
            return True
    if label_unknown is not None:
        raise label_unknown
    return False


def sandbox_template(args: ResourceValidationArgs) -> PodTemplate | None:
    """The pod template when the resource is a sandbox workload (resource-level detection)."""
    template = workload_template(args)
    if template is None:
        return None
    config = args.get_config()
    namespaces = config_strings(config, "sandboxNamespaces", ())
    kinds = config_strings(config, "sandboxKinds", ())
    return template if is_sandbox(template, namespaces, kinds) else None


def sandbox_namespaces(stack: Stack, unknowns: Unknowns) -> list[KubeObject]:
    """The Namespaces of the stack labelled as sandbox namespaces (declared, or labelled by a patch)."""
    found: list[KubeObject] = []
    if not stack.has_kind(NAMESPACE):
        return found
    for namespace in stack.objects(NAMESPACE):
        try:
            if is_true(get(dig(namespace.obj, "metadata", "labels"), SANDBOX_LABEL)):
                found.append(namespace)
        except UnknownValueError as error:
            unknowns.record(error)
    return found


def owned_by_daemon_set(obj: Any) -> bool:
    """A Pod whose controller is a DaemonSet (``metadata.ownerReferences``), as the DaemonSet controller makes them."""
    for reference in items(dig(obj, "metadata", "ownerReferences")):
        if get(reference, "kind") == "DaemonSet" and is_true(get(reference, "controller")):
            api_version = string(get(reference, "apiVersion")) or ""
            if api_version.startswith("apps/"):
                return True
    return False


__all__ = [
    "SHAPES",
    "WORKLOAD_KINDS",
    "PodTemplate",
    "is_sandbox",
    "is_workload",
    "kind_of",
    "owned_by_daemon_set",
    "pod_template",
    "sandbox_labelled",
    "sandbox_namespaces",
    "sandbox_template",
    "workload_template",
]
