"""kata-node-capacity (stack): every source of Kata nodes uses nested-virtualization instance families.

EKS managed node groups are judged by the launch template they use (found by dependency or by name,
as it may be unknown during preview); Karpenter NodePools for Kata are checked in node_pools.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, get, human_list, items, mapping, schema, string, string_list_property
from .node_pools import NODE_POOL, check_node_pool
from .nodes import FAMILIES_PROPERTY, LAUNCH_TEMPLATE, bad_instance_types, families, nested_virtualization_enabled
from .placement import Resolved
from .stack import Stack

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_DEFAULT_INSTANCE_TYPE = "t3.medium"


def _launch_template(group: Resolved, stack: Stack) -> Resolved | None:
    """The launch template the group uses: by name in the group's region and account, else by dependency.

    ``launchTemplate`` may be wholly unknown during preview (an output of the template): its property dependencies
    still name the template. Raises UnknownValueError only when nothing settles which template it is.
    """
    unknown: UnknownValueError | None = None
    try:
        reference = mapping(get(group.props, "launchTemplate"))
    except UnknownValueError as error:
        reference, unknown = None, error
    if reference is None and unknown is None:
        return None
    name = None
    if reference is not None:
        try:
            name = string(get(reference, "name"))
            if name is None:
                get(reference, "id")  # raises when the id is unknown: which template it is cannot be told
        except UnknownValueError as error:
            unknown = error
    return stack.reference(group, "launchTemplate", LAUNCH_TEMPLATE, name, unknown)


def _check_node_group(
    group: Resolved, stack: Stack, allowed: Sequence[str], report_violation: ReportViolation, unknowns: Unknowns
) -> None:
    template = _launch_template(group, stack)
    if template is None or not nested_virtualization_enabled(template.props):
        return
    instance_types = list(items(get(group.props, "instanceTypes"), unknowns))
    bad = bad_instance_types(instance_types, allowed)
    if bad:
        report_violation(
            f"{group.who}: use only {human_list(allowed)} instance types in "
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
                f"{group.who}: set instanceTypes to {human_list(allowed)} types; "
                f"neither it nor launch template {template.name} sets one, so EKS would use "
                f"{EKS_DEFAULT_INSTANCE_TYPE}, which has no nested virtualization.",
                group.urn,
            )


def _has_nested_templates(stack: Stack, unknowns: Unknowns) -> bool:
    found = False
    for template in stack.of_type(LAUNCH_TEMPLATE):
        try:
            found = found or nested_virtualization_enabled(template.props)
        except UnknownValueError as error:
            unknowns.record(error)
    return found


def check_kata_node_capacity(
    stack: Stack, config: Mapping[str, Any], report_violation: ReportViolation, unknowns: Unknowns
) -> None:
    allowed = families(config)
    groups = stack.of_type(NODE_GROUP)
    if groups and _has_nested_templates(stack, unknowns):
        for group in groups:
            group_unknowns = Unknowns()
            group_unknowns.run(_check_node_group, group, stack, allowed, report_violation, group_unknowns)
            if group_unknowns.first is not None:
                unknowns.record(group_unknowns.first)
    if stack.has_kind(NODE_POOL):
        for pool in stack.objects(NODE_POOL):
            unknowns.run(check_node_pool, pool, stack, config, report_violation, unknowns)


def kata_node_capacity_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = Unknowns()
    check_kata_node_capacity(Stack(args.resources), args.get_config(), report_violation, unknowns)
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
