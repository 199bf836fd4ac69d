"""Sandbox workloads: Kata runtime class and no host access."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
from .workloads import PodTemplate, identity, is_sandbox, is_workload, k8s_group_kind, pod_template

ALLOWED_RUNTIME_CLASSES_PROPERTY = string_list_property(
    "RuntimeClass names a sandbox pod may use.", DEFAULT_RUNTIME_CLASSES, minItems=1
)


def _sandbox_template(args: ResourceValidationArgs) -> PodTemplate | None:
    """The pod template when the resource is a sandbox workload (resource-level detection)."""
    template = pod_template(args.resource_type, args.props, args.name)
    if template is None:
        return None
    config = args.get_config()
    namespaces = config_strings(config, "sandboxNamespaces", ())
    kinds = config_strings(config, "sandboxKinds", ())
    return template if is_sandbox(template, namespaces, kinds) else None


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


def _sandbox_namespaces(resources: Iterable[PolicyResource], unknowns: Unknowns) -> tuple[set[str], set[str]]:
    """Names and URNs of the Namespace resources in the stack that carry the sandbox label."""
    names: set[str] = set()
    urns: set[str] = set()
    for resource in resources:
        if k8s_group_kind(resource.resource_type) != ("core", "Namespace"):
            continue
        try:
            if not is_true(get(dig(resource.props, "metadata", "labels"), SANDBOX_LABEL)):
                continue
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        urns.add(resource.urn)
        try:
            name = string(dig(resource.props, "metadata", "name"))
        except UnknownValueError:
            name = None  # computed name: workloads are matched through their dependencies
        if name:
            names.add(name)
    return names, urns


def _in_sandbox_namespace(
    resource: PolicyResource, template: PodTemplate, names: set[str], urns: set[str]
) -> str | None:
    """The sandbox namespace the workload lives in, if any."""
    namespace = template.who.namespace
    if namespace is not None:
        return namespace if namespace in names else None
    if not template.who.namespace_unknown:
        return None  # unset: the provider's default namespace, not one declared here
    # The namespace is computed (an output of a Namespace in this stack): follow the
    # dependencies of the metadata property.
    deps = resource.property_dependencies.get("metadata")
    if deps is None and not resource.property_dependencies:
        deps = resource.dependencies
    for dep in deps or ():
        if dep.urn in urns:
            return identity("Namespace", dep.props, dep.name).name
    return None


def _check_namespace_workload(
    resource: PolicyResource,
    names: set[str],
    urns: set[str],
    allowed: Sequence[str],
    report_violation: ReportViolation,
) -> None:
    template = pod_template(resource.resource_type, resource.props, resource.name)
    if template is None:
        return
    try:
        if template.has_sandbox_label():
            return  # already checked by sandbox-runtime-class
    except UnknownValueError:
        pass  # cannot tell from the label; the namespace decides
    namespace = _in_sandbox_namespace(resource, template, names, urns)
    if namespace is None:
        return
    check_runtime_class(
        template,
        allowed,
        report_violation,
        resource.urn,
        f" Namespace {namespace} is a sandbox namespace ({SANDBOX_LABEL}=true).",
    )


def sandbox_namespace_runtime_class_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = Unknowns()
    names, urns = _sandbox_namespaces(args.resources, unknowns)
    if urns:
        allowed = config_strings(args.get_config(), "allowedRuntimeClasses", DEFAULT_RUNTIME_CLASSES)
        for resource in args.resources:
            if is_workload(resource.resource_type):
                unknowns.run(_check_namespace_workload, resource, names, urns, allowed, report_violation)
    unknowns.finish()


sandbox_namespace_runtime_class = StackValidationPolicy(
    name="sandbox-namespace-runtime-class",
    description=(
        "Workloads in a Namespace declared in this stack with the label "
        "agent-platform.io/sandbox=true must run in a Kata Containers runtime class."
    ),
    validate=sandbox_namespace_runtime_class_validator,
    config_schema=schema({"allowedRuntimeClasses": ALLOWED_RUNTIME_CLASSES_PROPERTY}),
)


# --- sandbox-no-host-access -------------------------------------------------------------------

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def _check_host_namespace(template: PodTemplate, flag: str, report_violation: ReportViolation) -> None:
    if is_true(get(template.spec, flag)):
        report_violation(
            f"{template.who}: remove {template.field(flag)} (set it to false); "
            "sandbox pods must not share the node's namespaces."
        )


def _check_privileged(
    template: PodTemplate, list_name: str, report_violation: ReportViolation, unknowns: Unknowns
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


def _check_host_path(template: PodTemplate, report_violation: ReportViolation, unknowns: Unknowns) -> None:
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


def sandbox_no_host_access_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = _sandbox_template(args)
    if template is None:
        return
    unknowns = Unknowns()
    for flag in _HOST_NAMESPACES:
        unknowns.run(_check_host_namespace, template, flag, report_violation)
    for list_name in _CONTAINER_LISTS:
        unknowns.run(_check_privileged, template, list_name, report_violation, unknowns)
    unknowns.run(_check_host_path, template, report_violation, unknowns)
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
