"""Sandbox workloads: Kata runtime class and no host access."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .common import (
    DEFAULT_RUNTIME_CLASSES,
    SANDBOX_KINDS_PROPERTY,
    SANDBOX_LABEL,
    SANDBOX_NAMESPACES_PROPERTY,
    Unknowns,
    applies_to,
    config_strings,
    dig,
    get,
    is_true,
    item_label,
    items,
    mapping,
    schema,
    string,
    string_list_property,
)
from .workloads import (
    PodTemplate,
    identity,
    is_sandbox,
    is_workload,
    k8s_group_kind,
    pod_template,
    provider_namespace,
    provider_props,
)

ALLOWED_RUNTIME_CLASSES_PROPERTY = string_list_property(
    "RuntimeClass names a sandbox pod may use.", DEFAULT_RUNTIME_CLASSES, minItems=1
)


def _sandbox_template(args: ResourceValidationArgs) -> PodTemplate | None:
    """The pod template when the resource is a sandbox workload (resource-level detection)."""
    if not is_workload(args.resource_type):
        return None
    template = pod_template(args.resource_type, args.props, args.name)
    if template is None:
        return None
    config = args.get_config()
    namespaces = config_strings(config, "sandboxNamespaces", ())
    kinds = config_strings(config, "sandboxKinds", ())
    return template if is_sandbox(template, namespaces, kinds, args.provider) else None


def check_runtime_class(
    template: PodTemplate,
    allowed: Sequence[str],
    report_violation: ReportViolation,
    urn: str | None = None,
    reason: str = "",
) -> None:
    runtime_class = template.runtime_class()
    if runtime_class is not None and runtime_class in allowed:
        return
    if runtime_class is None and template.patch:
        return  # a server-side-apply patch that leaves runtimeClassName as it is
    field = template.field("runtimeClassName")
    found = f' instead of "{runtime_class}"' if runtime_class is not None else ""
    report_violation(f"{template.who}: set {field} to one of {', '.join(allowed)}{found}.{reason}", urn)


# --- sandbox-runtime-class --------------------------------------------------------------------


def sandbox_runtime_class_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = _sandbox_template(args)
    if template is None:
        return
    allowed = config_strings(args.get_config(), "allowedRuntimeClasses", DEFAULT_RUNTIME_CLASSES)
    check_runtime_class(template, allowed, report_violation)


sandbox_runtime_class = ResourceValidationPolicy(
    name="sandbox-runtime-class",
    description=(
        "Sandbox workloads (pod template label agent-platform.io/sandbox=true, or a configured "
        "sandbox namespace) must run in a Kata Containers micro-VM runtime class."
    ),
    validate=sandbox_runtime_class_validator,
    config_schema=schema(
        {
            "allowedRuntimeClasses": ALLOWED_RUNTIME_CLASSES_PROPERTY,
            "sandboxNamespaces": SANDBOX_NAMESPACES_PROPERTY,
            "sandboxKinds": SANDBOX_KINDS_PROPERTY,
        }
    ),
)
applies_to(sandbox_runtime_class, is_workload)


# --- sandbox-namespace-runtime-class (stack) --------------------------------------------------

K8S_PROVIDER_PREFIX = "pulumi:providers:kubernetes"


class Clusters:
    """Which cluster (Kubernetes provider) a stack resource goes to, and that provider's default namespace.

    Two providers with the same known kubeconfig (and context), or whose kubeconfig comes from
    the same resources, talk to the same cluster; otherwise each provider is its own cluster.
    """

    __slots__ = ("_keys", "_providers")

    def __init__(self, resources: Iterable[PolicyResource]) -> None:
        self._providers = {r.urn: r for r in resources if r.resource_type.startswith(K8S_PROVIDER_PREFIX)}
        self._keys: dict[str, Hashable] = {}

    def provider(self, resource: PolicyResource) -> Any:
        """The provider resource in the stack (its inputs), else the one the engine attached."""
        ref = resource.provider
        return None if ref is None else self._providers.get(ref.urn, ref)

    def key(self, resource: PolicyResource) -> Hashable:
        ref = resource.provider
        if ref is None:
            return ""
        key = self._keys.get(ref.urn)
        if key is None:
            key = self._keys[ref.urn] = self._cluster_key(self._providers.get(ref.urn, ref))
        return key

    @staticmethod
    def _cluster_key(provider: Any) -> Hashable:
        props = provider_props(provider)
        try:
            context = string(get(props, "context"))
            kubeconfig = get(props, "kubeconfig")
            if isinstance(kubeconfig, str):
                return ("kubeconfig", kubeconfig, context)
            if isinstance(kubeconfig, Mapping):
                return ("kubeconfig", json.dumps(kubeconfig, sort_keys=True, default=str), context)
        except UnknownValueError:
            deps = getattr(provider, "property_dependencies", None) or {}
            sources = frozenset(dep.urn for dep in deps.get("kubeconfig", ()))
            if sources:
                return ("sources", sources)
        return ("provider", provider.urn)

    def namespace(self, resource: PolicyResource, template: PodTemplate) -> str | None:
        """The namespace the workload lands in; None when it is computed. Raises on an unknown provider default."""
        if template.who.namespace is not None:
            return template.who.namespace
        if template.who.namespace_unknown:
            return None
        return provider_namespace(provider_props(self.provider(resource)))


def _sandbox_namespaces(
    resources: Iterable[PolicyResource], clusters: Clusters, unknowns: Unknowns
) -> tuple[set[tuple[Hashable, str]], dict[str, str | None]]:
    """The Namespaces in the stack that carry the sandbox label: (cluster, name) pairs, and name by URN."""
    names: set[tuple[Hashable, str]] = set()
    urns: dict[str, str | None] = {}
    for resource in resources:
        if k8s_group_kind(resource.resource_type) != ("core", "Namespace"):
            continue
        try:
            if not is_true(get(dig(resource.props, "metadata", "labels"), SANDBOX_LABEL)):
                continue
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        try:
            name = string(dig(resource.props, "metadata", "name"))
        except UnknownValueError:
            name = None  # computed name: workloads are matched through their dependencies
        urns[resource.urn] = name
        if name:
            names.add((clusters.key(resource), name))
    return names, urns


def _in_sandbox_namespace(
    resource: PolicyResource,
    template: PodTemplate,
    clusters: Clusters,
    names: set[tuple[Hashable, str]],
    urns: dict[str, str | None],
) -> str | None:
    """The sandbox namespace (of the workload's own cluster) the workload lives in, if any."""
    cluster = clusters.key(resource)
    namespace = clusters.namespace(resource, template)
    if namespace is not None:
        return namespace if (cluster, namespace) in names else None
    # The namespace is computed (an output of a Namespace in this stack): follow the
    # dependencies of the metadata property.
    deps = resource.property_dependencies.get("metadata")
    if deps is None and not resource.property_dependencies:
        deps = resource.dependencies
    for dep in deps or ():
        if dep.urn not in urns:
            continue
        name = urns[dep.urn]
        if clusters.key(dep) == cluster or (name is not None and (cluster, name) in names):
            return name or identity("Namespace", dep.props, dep.name).name
    return None


def _workloads(resources: Iterable[PolicyResource], unknowns: Unknowns) -> list[tuple[PolicyResource, PodTemplate]]:
    """Every workload of the stack with its pod template, built once for the whole validation."""
    found = []
    for resource in resources:
        if not is_workload(resource.resource_type):
            continue
        try:
            template = pod_template(resource.resource_type, resource.props, resource.name)
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        if template is not None:
            found.append((resource, template))
    return found


def _sandbox_targets(
    workloads: list[tuple[PolicyResource, PodTemplate]], clusters: Clusters, unknowns: Unknowns
) -> dict[tuple[Hashable, str, str, str, str], str]:
    """Workloads of the stack with the sandbox label, by (cluster, group, kind, namespace, name): what patches hit."""
    targets: dict[tuple[Hashable, str, str, str, str], str] = {}
    if not any(template.patch for _, template in workloads):
        return targets
    for resource, template in workloads:
        if template.patch:
            continue
        try:
            if not template.has_sandbox_label():
                continue
            namespace = clusters.namespace(resource, template)
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        if namespace is not None:
            group = k8s_group_kind(resource.resource_type)[0]  # type: ignore[index]
            targets[(clusters.key(resource), group, template.who.kind, namespace, template.who.name)] = str(
                template.who
            )
    return targets


def _patched_sandbox(
    resource: PolicyResource,
    template: PodTemplate,
    clusters: Clusters,
    targets: dict[tuple[Hashable, str, str, str, str], str],
) -> str | None:
    """For a ``*Patch`` of a sandbox workload declared in this stack: that workload."""
    if not template.patch or not targets:
        return None
    namespace = clusters.namespace(resource, template)
    if namespace is None:
        return None
    group = k8s_group_kind(resource.resource_type)[0]  # type: ignore[index]
    return targets.get(
        (clusters.key(resource), group, template.who.kind[: -len("Patch")], namespace, template.who.name)
    )


def _check_namespace_workload(
    resource: PolicyResource,
    template: PodTemplate,
    clusters: Clusters,
    names: set[tuple[Hashable, str]],
    urns: dict[str, str | None],
    targets: dict[tuple[Hashable, str, str, str, str], str],
    allowed: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    try:
        if template.has_sandbox_label():
            return  # already checked by sandbox-runtime-class and sandbox-no-host-access
    except UnknownValueError:
        pass  # cannot tell from the label; the namespace decides
    target = _patched_sandbox(resource, template, clusters, targets)
    if target is not None:
        reason = f" It patches {target}, a sandbox ({SANDBOX_LABEL}=true)."
        check_runtime_class(template, allowed, report_violation, resource.urn, reason)
        check_host_access(template, lambda message: report_violation(message + reason, resource.urn), unknowns)
        return
    if not urns:
        return
    namespace = _in_sandbox_namespace(resource, template, clusters, names, urns)
    if namespace is None:
        return
    reason = f" Namespace {namespace} is a sandbox namespace ({SANDBOX_LABEL}=true)."
    check_runtime_class(template, allowed, report_violation, resource.urn, reason)
    check_host_access(template, lambda message: report_violation(message + reason, resource.urn), unknowns)


def sandbox_namespace_runtime_class_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = Unknowns()
    resources = args.resources
    clusters = Clusters(resources)
    names, urns = _sandbox_namespaces(resources, clusters, unknowns)
    unknown_specs = Unknowns()  # only matter when some workload may be a sandbox
    workloads = _workloads(resources, unknown_specs)
    targets = _sandbox_targets(workloads, clusters, unknowns)
    if urns or targets:
        if unknown_specs.first is not None:
            unknowns.record(unknown_specs.first)
        allowed = config_strings(args.get_config(), "allowedRuntimeClasses", DEFAULT_RUNTIME_CLASSES)
        for resource, template in workloads:
            unknowns.run(
                _check_namespace_workload,
                resource,
                template,
                clusters,
                names,
                urns,
                targets,
                allowed,
                report_violation,
                unknowns,
            )
    unknowns.finish()


sandbox_namespace_runtime_class = StackValidationPolicy(
    name="sandbox-namespace-runtime-class",
    description=(
        "Workloads in a Namespace declared in this stack (on the same cluster) with the label "
        "agent-platform.io/sandbox=true, and server-side-apply patches of a sandbox workload declared "
        "in this stack, must run in a Kata Containers runtime class without host access."
    ),
    validate=sandbox_namespace_runtime_class_validator,
    config_schema=schema({"allowedRuntimeClasses": ALLOWED_RUNTIME_CLASSES_PROPERTY}),
)


# --- sandbox-no-host-access -------------------------------------------------------------------

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def _check_host_namespace(template: PodTemplate, flag: str, report_violation: Callable[[str], None]) -> None:
    if is_true(get(template.spec, flag)):
        report_violation(
            f"{template.who}: remove {template.field(flag)} (set it to false); "
            "sandbox pods must not share the node's namespaces."
        )


def _check_privileged(
    template: PodTemplate, list_name: str, report_violation: Callable[[str], None], unknowns: Unknowns
) -> None:
    for index, container in enumerate(items(get(template.spec, list_name), unknowns)):
        if mapping(container) is None:
            continue
        try:
            privileged = is_true(dig(container, "securityContext", "privileged"))
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        if privileged:
            report_violation(
                f"{template.who}: set {template.field(list_name)}[{item_label(container, index)}]"
                ".securityContext.privileged to false; sandbox containers must not be privileged."
            )


def _check_host_path(template: PodTemplate, report_violation: Callable[[str], None], unknowns: Unknowns) -> None:
    for index, volume in enumerate(items(get(template.spec, "volumes"), unknowns)):
        if mapping(volume) is None:
            continue
        try:
            host_path = get(volume, "hostPath")
        except UnknownValueError:
            host_path = True  # present, contents unknown: still a hostPath volume
        if host_path is None:
            continue
        report_violation(
            f'{template.who}: remove the hostPath volume "{item_label(volume, index)}" from '
            f"{template.field('volumes')}; sandbox pods must not mount node paths "
            "(use emptyDir or a PersistentVolumeClaim)."
        )


def check_host_access(template: PodTemplate, report: Callable[[str], None], unknowns: Unknowns) -> None:
    """Host namespaces, privileged containers and hostPath volumes; a patch is judged on the fields it sets."""
    for flag in _HOST_NAMESPACES:
        unknowns.run(_check_host_namespace, template, flag, report)
    for list_name in _CONTAINER_LISTS:
        unknowns.run(_check_privileged, template, list_name, report, unknowns)
    unknowns.run(_check_host_path, template, report, unknowns)


def sandbox_no_host_access_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = _sandbox_template(args)
    if template is None:
        return
    unknowns = Unknowns()
    check_host_access(template, report_violation, unknowns)
    unknowns.finish()


sandbox_no_host_access = ResourceValidationPolicy(
    name="sandbox-no-host-access",
    description=("Sandbox pods must not be privileged or use hostNetwork, hostPID, hostIPC or hostPath volumes."),
    validate=sandbox_no_host_access_validator,
    config_schema=schema(
        {
            "sandboxNamespaces": SANDBOX_NAMESPACES_PROPERTY,
            "sandboxKinds": SANDBOX_KINDS_PROPERTY,
        }
    ),
)
applies_to(sandbox_no_host_access, is_workload)
