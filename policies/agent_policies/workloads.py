"""Find the pod spec of every kind of Kubernetes workload the engine may send."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .common import SANDBOX_LABEL, dig, get, is_true, items, mapping, string


@dataclass(frozen=True, slots=True)
class WorkloadShape:
    kind: str
    spec_path: tuple[str, ...]  # where the pod spec lives
    labels_path: tuple[str, ...]  # where the pod template labels live
    patch: bool = False  # a server-side-apply patch (``DeploymentPatch``...): omitted fields are left as they are


_SPEC_TEMPLATE = WorkloadShape("", ("spec", "template", "spec"), ("spec", "template", "metadata", "labels"))
_SHAPES: dict[tuple[str, str], WorkloadShape] = {
    ("core", "Pod"): WorkloadShape("Pod", ("spec",), ("metadata", "labels")),
    ("core", "PodTemplate"): WorkloadShape("PodTemplate", ("template", "spec"), ("template", "metadata", "labels")),
    ("batch", "CronJob"): WorkloadShape(
        "CronJob",
        ("spec", "jobTemplate", "spec", "template", "spec"),
        ("spec", "jobTemplate", "spec", "template", "metadata", "labels"),
    ),
    ("agents.x-k8s.io", "Sandbox"): WorkloadShape(
        "Sandbox", ("spec", "podTemplate", "spec"), ("spec", "podTemplate", "metadata", "labels")
    ),
    ("extensions.agents.x-k8s.io", "SandboxTemplate"): WorkloadShape(
        "SandboxTemplate",
        ("spec", "podTemplate", "spec"),
        ("spec", "podTemplate", "metadata", "labels"),
    ),
}
for _group, _kinds in (
    ("core", ("ReplicationController",)),
    ("apps", ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")),
    ("extensions", ("Deployment", "DaemonSet", "ReplicaSet")),
    ("batch", ("Job",)),
):
    for _kind in _kinds:
        _SHAPES[(_group, _kind)] = WorkloadShape(_kind, _SPEC_TEMPLATE.spec_path, _SPEC_TEMPLATE.labels_path)


@functools.lru_cache(maxsize=512)
def k8s_group_kind(resource_type: str) -> tuple[str, str] | None:
    """``kubernetes:apps/v1:Deployment`` -> ``("apps", "Deployment")``; None if not Kubernetes."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    group = parts[1].rsplit("/", 1)[0] if "/" in parts[1] else parts[1]
    return group, parts[2]


@functools.lru_cache(maxsize=512)
def workload_shape(resource_type: str) -> WorkloadShape | None:
    """The shape of a workload type, ``*Patch`` kinds (server-side apply) included."""
    group_kind = k8s_group_kind(resource_type)
    if group_kind is None:
        return None
    group, kind = group_kind
    shape = _SHAPES.get(group_kind)
    if shape is None and kind.endswith("Patch"):
        base = _SHAPES.get((group, kind[: -len("Patch")]))
        if base is not None:
            shape = WorkloadShape(kind, base.spec_path, base.labels_path, patch=True)
    return shape


def is_workload(resource_type: str) -> bool:
    return workload_shape(resource_type) is not None


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str
    namespace: str | None  # None when unset (provider default namespace)
    namespace_unknown: bool
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


def identity(kind: str, props: Any, resource_name: str) -> Identity:
    """Kind, namespace and name for messages; never raises on unknowns or garbage."""
    namespace: str | None = None
    namespace_unknown = False
    name = resource_name
    try:
        metadata = mapping(get(props, "metadata"))
    except UnknownValueError:
        return Identity(kind, None, True, resource_name)
    if metadata is not None:
        try:
            namespace = string(get(metadata, "namespace")) or None  # "" is unset: the provider default
        except UnknownValueError:
            namespace_unknown = True
        try:
            name = string(get(metadata, "name")) or resource_name
        except UnknownValueError:
            name = resource_name
    return Identity(kind, namespace, namespace_unknown, name)


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """The pod spec of a workload, plus what messages and sandbox detection need."""

    who: Identity
    spec: Mapping[str, Any]
    spec_path: str
    labels: Mapping[str, Any] | None
    labels_path: str
    labels_unknown: UnknownValueError | None = None
    patch: bool = False  # a ``*Patch`` kind: a field it omits is not set by it

    def field(self, *names: str) -> str:
        return ".".join((self.spec_path, *names))

    def runtime_class(self) -> str | None:
        """runtimeClassName; raises UnknownValueError when unknown."""
        return string(get(self.spec, "runtimeClassName"))

    def has_sandbox_label(self) -> bool:
        """Raises UnknownValueError when the labels or the label value are unknown."""
        if self.labels_unknown is not None:
            raise self.labels_unknown
        return is_true(get(self.labels, SANDBOX_LABEL))


def pod_template(resource_type: str, props: Any, resource_name: str) -> PodTemplate | None:
    """The pod template of a workload resource; None for anything else.

    Raises UnknownValueError when the pod spec itself is unknown during preview.
    """
    shape = workload_shape(resource_type)
    return None if shape is None else _pod_template(shape, props, resource_name)


def workload_template(args: ResourceValidationArgs) -> PodTemplate | None:
    """The pod template of the resource under validation; None, without reading a property, for other types."""
    if not is_workload(args.resource_type):
        return None
    return pod_template(args.resource_type, args.props, args.name)


def _pod_template(shape: WorkloadShape, props: Any, resource_name: str) -> PodTemplate | None:
    if not isinstance(props, Mapping):
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
    return PodTemplate(
        who=identity(shape.kind, props, resource_name),
        spec=spec,
        spec_path=".".join(shape.spec_path),
        labels=labels,
        labels_path=".".join(shape.labels_path),
        labels_unknown=labels_unknown,
        patch=shape.patch,
    )


def is_sandbox(
    template: PodTemplate,
    sandbox_namespaces: Sequence[str],
    sandbox_kinds: Sequence[str] = (),
    provider: Any = None,
) -> bool:
    """Resource-level sandbox detection: label, configured namespace, or configured kind.

    A workload without ``metadata.namespace`` is in its provider's default namespace
    (:func:`provider_namespace`). Raises UnknownValueError only when the answer depends on
    an unknown value.
    """
    kind = template.who.kind
    if kind in sandbox_kinds or (template.patch and kind[: -len("Patch")] in sandbox_kinds):
        return True
    label_unknown: UnknownValueError | None = None
    try:
        if template.has_sandbox_label():
            return True
    except UnknownValueError as error:
        label_unknown = error
    if sandbox_namespaces:
        if template.who.namespace_unknown:
            raise label_unknown or UnknownValueError(UNKNOWN_NAMESPACE, ["metadata", "namespace"])
        namespace = template.who.namespace
        if namespace is None:
            try:
                namespace = provider_namespace(provider_props(provider))
            except UnknownValueError as error:
                raise label_unknown or error from None
        if namespace in sandbox_namespaces:
            return True
    if label_unknown is not None:
        raise label_unknown
    return False


# --- the namespace of a workload without metadata.namespace -----------------------------------

UNKNOWN_NAMESPACE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def provider_props(provider: Any) -> Any:
    """The properties (inputs) of a provider resource (PolicyProviderResource or PolicyResource), or None."""
    return None if provider is None else getattr(provider, "props", None)


def provider_namespace(props: Any) -> str:
    """The namespace a Kubernetes provider puts namespaced objects without ``metadata.namespace`` in.

    pulumi-kubernetes' precedence (provider ``namespace`` input docs): the provider's
    ``namespace`` input, then the namespace of the kubeconfig's active context (the
    ``context`` input, else ``current-context``), then ``default``. Raises
    UnknownValueError when the answer depends on a value unknown during preview.
    """
    namespace = string(get(props, "namespace"))
    if namespace:
        return namespace
    kubeconfig = get(props, "kubeconfig")
    if kubeconfig is None:
        return "default"
    context = string(get(props, "context"))
    if isinstance(kubeconfig, Mapping):
        return _kubeconfig_namespace_of(kubeconfig, context)
    return _kubeconfig_namespace(kubeconfig, context) if isinstance(kubeconfig, str) else "default"


@functools.lru_cache(maxsize=64)
def _kubeconfig_namespace(kubeconfig: str, context: str | None) -> str:
    """The active context's namespace of a kubeconfig given as JSON or YAML text (or a path to one)."""
    text = kubeconfig
    if "\n" not in text and not text.lstrip().startswith("{") and os.path.isfile(os.path.expanduser(text)):
        try:
            with open(os.path.expanduser(text), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            return "default"
    try:
        document = json.loads(text)
    except ValueError:
        try:
            import yaml  # PyYAML, a dependency of the pulumi SDK

            document = yaml.safe_load(text)
        except Exception:  # noqa: BLE001 (unparseable kubeconfig: the provider would fail, not deploy)
            return "default"
    return _kubeconfig_namespace_of(document, context) if isinstance(document, Mapping) else "default"


def _kubeconfig_namespace_of(document: Mapping[str, Any], context: str | None) -> str:
    name = context or string(get(document, "current-context"))
    for entry in items(get(document, "contexts")):
        if name is not None and get(entry, "name") == name:
            return string(dig(entry, "context", "namespace")) or "default"
    return "default"
