"""kata-node-capacity (stack): every source of Kata nodes uses nested-virtualization instance families.

EKS managed node groups are judged by the launch template they use (found by dependency or by name,
as it may be unknown during preview); Karpenter NodePools for Kata are checked in node_pools.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, dependencies_of, get, human_list, items, mapping, schema, string, string_list_property
from .node_pools import NODE_POOL, check_node_pool, node_classes
from .nodes import FAMILIES_PROPERTY, LAUNCH_TEMPLATE, bad_instance_types, families, nested_virtualization_enabled
from .workloads import k8s_group_kind

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_DEFAULT_INSTANCE_TYPE = "t3.medium"


def _nested_launch_templates(
    resources: Iterable[PolicyResource], unknowns: Unknowns
) -> tuple[dict[str, PolicyResource], dict[str, PolicyResource]]:
    """Nested-virtualization launch templates by URN and by name."""
    by_urn: dict[str, PolicyResource] = {}
    by_name: dict[str, PolicyResource] = {}
    for resource in resources:
        if resource.resource_type != LAUNCH_TEMPLATE:
            continue
        try:
            if not nested_virtualization_enabled(resource.props):
                continue
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        by_urn[resource.urn] = resource
        try:
            name = string(get(resource.props, "name"))
        except UnknownValueError:
            name = None
        if name:
            by_name[name] = resource
    return by_urn, by_name


def _referenced_launch_template(
    group: PolicyResource,
    by_urn: dict[str, PolicyResource],
    by_name: dict[str, PolicyResource],
) -> PolicyResource | None:
    """The nested-virtualization launch template the group uses, found by dependency or by name.

    ``launchTemplate`` may be wholly unknown during preview (an output of the template): its
    property dependencies still name the template. Raises UnknownValueError only when no
    dependency settles it and the reference is unknown.
    """
    unknown: UnknownValueError | None = None
    try:
        reference = mapping(get(group.props, "launchTemplate"))
    except UnknownValueError as error:
        reference, unknown = None, error
    if reference is None and unknown is None:
        return None
    other_template = False
    for dep in dependencies_of(group, "launchTemplate"):
        if dep.urn in by_urn:
            return by_urn[dep.urn]
        other_template = other_template or dep.resource_type == LAUNCH_TEMPLATE
    if unknown is not None:
        if other_template:
            return None  # it uses a launch template without nested virtualization
        raise unknown
    try:
        name = string(get(reference, "name"))
        if name is None:
            get(reference, "id")  # raises when the id is unknown: which template it is cannot be told
    except UnknownValueError as error:
        if other_template:
            return None
        raise error from None  # neither a dependency nor the name says which template it is
    return by_name.get(name) if name else None


def _check_node_group(
    group: PolicyResource,
    by_urn: dict[str, PolicyResource],
    by_name: dict[str, PolicyResource],
    allowed: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    template = _referenced_launch_template(group, by_urn, by_name)
    if template is None:
        return
    instance_types = list(items(get(group.props, "instanceTypes"), unknowns))
    bad = bad_instance_types(instance_types, allowed)
    if bad:
        report_violation(
            f"NodeGroup {group.name}: use only {human_list(allowed)} instance types in "
            f"instanceTypes (remove {', '.join(bad)}); its launch template {template.name} "
            "enables nested virtualization for Kata.",
            group.urn,
        )
    elif not instance_types and unknowns.first is None:
        try:
            template_type = get(template.props, "instanceType")
        except UnknownValueError:
            return
        if template_type is None:
            report_violation(
                f"NodeGroup {group.name}: set instanceTypes to {human_list(allowed)} types; "
                f"neither it nor launch template {template.name} sets one, so EKS would use "
                f"{EKS_DEFAULT_INSTANCE_TYPE}, which has no nested virtualization.",
                group.urn,
            )


def kata_node_capacity_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = args.get_config()
    allowed = families(config)
    unknowns = Unknowns()
    templates_by_urn, templates_by_name = _nested_launch_templates(args.resources, unknowns)
    classes_by_name, classes_by_urn = node_classes(args.resources)
    for resource in args.resources:
        resource_type = resource.resource_type
        if resource_type == NODE_GROUP:
            if templates_by_urn:
                group_unknowns = Unknowns()
                group_unknowns.run(
                    _check_node_group,
                    resource,
                    templates_by_urn,
                    templates_by_name,
                    allowed,
                    report_violation,
                    group_unknowns,
                )
                if group_unknowns.first is not None:
                    unknowns.record(group_unknowns.first)
        elif k8s_group_kind(resource_type) == NODE_POOL:
            unknowns.run(
                check_node_pool,
                resource,
                classes_by_name,
                classes_by_urn,
                config,
                report_violation,
                unknowns,
            )
    unknowns.finish()


kata_node_capacity = StackValidationPolicy(
    name="kata-node-capacity",
    description=(
        "Capacity for Kata nodes (EKS node groups on a nested-virtualization launch template, "
        "Karpenter NodePools for Kata) must use nested-virtualization instance families."
    ),
    validate=kata_node_capacity_validator,
    config_schema=schema(
        {
            "nestedVirtualizationFamilies": FAMILIES_PROPERTY,
            "kataTaintKeys": string_list_property(
                "A NodePool whose spec.template.spec.taints has one of these keys is for Kata.",
                ("kata",),
            ),
            "kataNodeLabels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": (
                    "A NodePool whose spec.template.metadata.labels has one of these key/value pairs is for Kata."
                ),
                "default": {"workload-type": "kata"},
            },
        }
    ),
)
