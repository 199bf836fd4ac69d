"""sandbox-namespace-runtime-class (stack): what a sandbox Namespace or a patch of a sandbox implies.

A workload without the sandbox label is still a sandbox when it lands in a Namespace of this stack
(on the same cluster) labelled as a sandbox namespace, or when it is a server-side-apply patch of a
sandbox workload declared in this stack; it then gets the checks of the two resource policies.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .clusters import Clusters
from .common import (
    DEFAULT_RUNTIME_CLASSES,
    SANDBOX_LABEL,
    Unknowns,
    config_strings,
    dependencies_of,
    dig,
    schema,
    string,
)
from .host_access import check_host_access
from .runtime_class import ALLOWED_RUNTIME_CLASSES_PROPERTY, check_runtime_class
from .sandbox import sandbox_namespace_resources
from .workloads import PodTemplate, identity, is_workload, k8s_group_kind, pod_template

# A sandbox workload of the stack by (cluster, group, kind, namespace, name): what a patch may hit.
TargetKey = tuple[Hashable, str, str, str, str]


@dataclass(frozen=True, slots=True)
class SandboxStack:
    """What the stack declares about sandboxes, gathered once for the whole validation."""

    clusters: Clusters
    names: set[tuple[Hashable, str]]  # (cluster, name) of the sandbox Namespaces with a known name
    urns: dict[str, str | None]  # sandbox Namespace URN -> name (None when computed)
    targets: dict[TargetKey, str]  # sandbox workloads (for patches) -> how messages name them


def _sandbox_namespaces(
    resources: Iterable[PolicyResource], clusters: Clusters, unknowns: Unknowns
) -> tuple[set[tuple[Hashable, str]], dict[str, str | None]]:
    """The Namespaces in the stack that carry the sandbox label: (cluster, name) pairs, and name by URN."""
    names: set[tuple[Hashable, str]] = set()
    urns: dict[str, str | None] = {}
    for resource in sandbox_namespace_resources(resources, unknowns):
        try:
            name = string(dig(resource.props, "metadata", "name"))
        except UnknownValueError:
            name = None  # computed name: workloads are matched through their dependencies
        urns[resource.urn] = name
        if name:
            names.add((clusters.key(resource), name))
    return names, urns


def _in_sandbox_namespace(resource: PolicyResource, template: PodTemplate, stack: SandboxStack) -> str | None:
    """The sandbox namespace (of the workload's own cluster) the workload lives in, if any."""
    clusters = stack.clusters
    cluster = clusters.key(resource)
    namespace = clusters.namespace(resource, template)
    if namespace is not None:
        return namespace if (cluster, namespace) in stack.names else None
    # The namespace is computed (an output of a Namespace in this stack): follow the
    # dependencies of the metadata property.
    for dep in dependencies_of(resource, "metadata"):
        if dep.urn not in stack.urns:
            continue
        name = stack.urns[dep.urn]
        if clusters.key(dep) == cluster or (name is not None and (cluster, name) in stack.names):
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
) -> dict[TargetKey, str]:
    """Workloads of the stack with the sandbox label, by (cluster, group, kind, namespace, name): what patches hit."""
    targets: dict[TargetKey, str] = {}
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


def _patched_sandbox(resource: PolicyResource, template: PodTemplate, stack: SandboxStack) -> str | None:
    """For a ``*Patch`` of a sandbox workload declared in this stack: that workload."""
    if not template.patch or not stack.targets:
        return None
    namespace = stack.clusters.namespace(resource, template)
    if namespace is None:
        return None
    group = k8s_group_kind(resource.resource_type)[0]  # type: ignore[index]
    return stack.targets.get(
        (stack.clusters.key(resource), group, template.who.kind[: -len("Patch")], namespace, template.who.name)
    )


def _check_namespace_workload(
    resource: PolicyResource,
    template: PodTemplate,
    stack: SandboxStack,
    allowed: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    try:
        if template.has_sandbox_label():
            return  # already checked by sandbox-runtime-class and sandbox-no-host-access
    except UnknownValueError:
        pass  # cannot tell from the label; the namespace decides
    target = _patched_sandbox(resource, template, stack)
    if target is not None:
        reason = f" It patches {target}, a sandbox ({SANDBOX_LABEL}=true)."
        check_runtime_class(template, allowed, report_violation, resource.urn, reason)
        check_host_access(template, lambda message: report_violation(message + reason, resource.urn), unknowns)
        return
    if not stack.urns:
        return
    namespace = _in_sandbox_namespace(resource, template, stack)
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
        stack = SandboxStack(clusters, names, urns, targets)
        for resource, template in workloads:
            unknowns.run(_check_namespace_workload, resource, template, stack, allowed, report_violation, unknowns)
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
