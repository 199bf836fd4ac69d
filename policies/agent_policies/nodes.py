"""Kata nodes need nested virtualization: 8th-generation Intel instances (c8i, m8i, r8i)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    DEFAULT_NESTED_VIRT_FAMILIES,
    Unknowns,
    applies_to,
    config_bool,
    config_strings,
    dig,
    get,
    human_list,
    instance_family,
    items,
    mapping,
    schema,
    string,
    string_list_property,
)
from .workloads import identity, k8s_group_kind

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = ("karpenter.sh", "NodePool")
EC2_NODE_CLASS = ("karpenter.k8s.aws", "EC2NodeClass")
INSTANCE_FAMILY_LABEL = "karpenter.k8s.aws/instance-family"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Karpenter normalizes the deprecated beta label to the GA one (karpenter.sh/v1 NormalizedLabels).
INSTANCE_KEYS = frozenset({INSTANCE_FAMILY_LABEL, INSTANCE_TYPE_LABEL, "beta.kubernetes.io/instance-type"})
EKS_DEFAULT_INSTANCE_TYPE = "t3.medium"

FAMILIES_PROPERTY = string_list_property(
    "Instance families that support nested virtualization.",
    DEFAULT_NESTED_VIRT_FAMILIES,
    minItems=1,
)


def _families(config: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        f.lower() for f in config_strings(config, "nestedVirtualizationFamilies", DEFAULT_NESTED_VIRT_FAMILIES)
    )


def _bad_instance_types(values: Iterable[Any], families: Sequence[str]) -> list[str]:
    return [str(v) for v in values if not isinstance(v, str) or instance_family(v) not in families]


def _nested_virtualization_enabled(props: Any) -> bool:
    return get(mapping(get(props, "cpuOptions")), "nestedVirtualization") == "enabled"


# --- nested-virtualization-nodes ----------------------------------------------------------------


def _check_launch_template_type(
    args: ResourceValidationArgs, families: Sequence[str], report_violation: ReportViolation
) -> None:
    instance_type = get(args.props, "instanceType")
    if instance_type is None or not _bad_instance_types([instance_type], families):
        return
    report_violation(
        f"LaunchTemplate {args.name}: set instanceType to a {human_list(families)} type instead "
        f'of "{instance_type}"; only 8th-generation Intel instances support nested '
        "virtualization."
    )


def _check_imdsv2(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if dig(args.props, "metadataOptions", "httpTokens") == "required":
        return
    report_violation(
        f'LaunchTemplate {args.name}: set metadataOptions.httpTokens to "required" (IMDSv2) '
        "on this nested-virtualization launch template."
    )


def is_launch_template(resource_type: str) -> bool:
    return resource_type == LAUNCH_TEMPLATE


def nested_virtualization_nodes_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_launch_template(args.resource_type) or not _nested_virtualization_enabled(args.props):
        return
    config = args.get_config()
    unknowns = Unknowns()
    unknowns.run(_check_launch_template_type, args, _families(config), report_violation)
    if config_bool(config, "requireImdsv2", True):
        unknowns.run(_check_imdsv2, args, report_violation)
    unknowns.finish()


nested_virtualization_nodes = ResourceValidationPolicy(
    name="nested-virtualization-nodes",
    description=(
        "Launch templates with nested virtualization enabled must use c8i/m8i/r8i (or flex) "
        "instance types and require IMDSv2."
    ),
    validate=nested_virtualization_nodes_validator,
    config_schema=schema(
        {
            "nestedVirtualizationFamilies": FAMILIES_PROPERTY,
            "requireImdsv2": {
                "type": "boolean",
                "description": "Require metadataOptions.httpTokens=required.",
                "default": True,
            },
        }
    ),
)
applies_to(nested_virtualization_nodes, is_launch_template)


# --- kata-node-capacity (stack) ----------------------------------------------------------------


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
            if not _nested_virtualization_enabled(resource.props):
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
    deps = group.property_dependencies.get("launchTemplate")
    if deps is None and not group.property_dependencies:
        deps = group.dependencies
    other_template = False
    for dep in deps or ():
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
    families: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    template = _referenced_launch_template(group, by_urn, by_name)
    if template is None:
        return
    instance_types = list(items(get(group.props, "instanceTypes"), unknowns))
    bad = _bad_instance_types(instance_types, families)
    if bad:
        report_violation(
            f"NodeGroup {group.name}: use only {human_list(families)} instance types in "
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
                f"NodeGroup {group.name}: set instanceTypes to {human_list(families)} types; "
                f"neither it nor launch template {template.name} sets one, so EKS would use "
                f"{EKS_DEFAULT_INSTANCE_TYPE}, which has no nested virtualization.",
                group.urn,
            )


def _is_kata_node_pool(
    template: Mapping[str, Any] | None, taint_keys: Sequence[str], labels: Mapping[str, Any]
) -> bool:
    for taint in items(dig(template, "spec", "taints")):
        if get(mapping(taint), "key") in taint_keys:
            return True
    node_labels = mapping(dig(template, "metadata", "labels"))
    return any(isinstance(value, str) and get(node_labels, key) == value for key, value in labels.items())


def _node_classes(
    resources: Iterable[PolicyResource],
) -> tuple[dict[str, PolicyResource], dict[str, PolicyResource]]:
    by_name: dict[str, PolicyResource] = {}
    by_urn: dict[str, PolicyResource] = {}
    for resource in resources:
        if k8s_group_kind(resource.resource_type) != EC2_NODE_CLASS:
            continue
        by_urn[resource.urn] = resource
        try:
            name = string(dig(resource.props, "metadata", "name"))
        except UnknownValueError:
            name = None
        if name:
            by_name[name] = resource
    return by_name, by_urn


def _referenced_node_class(
    pool: PolicyResource,
    ref_name: str | None,
    by_name: dict[str, PolicyResource],
    by_urn: dict[str, PolicyResource],
) -> PolicyResource | None:
    if ref_name is not None:
        return by_name.get(ref_name)
    deps = pool.property_dependencies.get("spec")
    if deps is None and not pool.property_dependencies:
        deps = pool.dependencies
    candidates = [by_urn[dep.urn] for dep in deps or () if dep.urn in by_urn]
    return candidates[0] if len(candidates) == 1 else None


def _check_node_pool(
    pool: PolicyResource,
    classes_by_name: dict[str, PolicyResource],
    classes_by_urn: dict[str, PolicyResource],
    config: Mapping[str, Any],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    template = mapping(dig(pool.props, "spec", "template"))
    labels = config.get("kataNodeLabels")
    if not isinstance(labels, Mapping):
        labels = {"workload-type": "kata"}
    if not _is_kata_node_pool(template, config_strings(config, "kataTaintKeys", ("kata",)), labels):
        return
    who = identity("NodePool", pool.props, pool.name)
    families = _families(config)
    unknown_ref: UnknownValueError | None = None
    try:
        ref_name = string(dig(template, "spec", "nodeClassRef", "name"))
    except UnknownValueError as error:
        ref_name, unknown_ref = None, error
    node_class = _referenced_node_class(pool, ref_name, classes_by_name, classes_by_urn)
    if node_class is None:
        if unknown_ref is not None:
            unknowns.record(unknown_ref)
        else:
            report_violation(
                f"{who}: reference (spec.template.spec.nodeClassRef.name) an EC2NodeClass "
                f'declared in this stack with spec.cpuOptions.nestedVirtualization "enabled"'
                + (f'; EC2NodeClass "{ref_name}" is not declared here.' if ref_name else "."),
                pool.urn,
            )
    else:
        try:
            enabled = _nested_virtualization_enabled(get(node_class.props, "spec"))
        except UnknownValueError as error:
            unknowns.record(error)
            enabled = True
        if not enabled:
            node_class_who = identity("EC2NodeClass", node_class.props, node_class.name)
            report_violation(
                f'{who}: set spec.cpuOptions.nestedVirtualization to "enabled" on '
                f"{node_class_who}, which this Kata NodePool uses.",
                pool.urn,
            )
    _check_requirements(who, pool, mapping(get(template, "spec")), families, report_violation, unknowns)


def _check_requirements(
    who: Any,
    pool: PolicyResource,
    spec: Mapping[str, Any] | None,
    families: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    """``In`` requirements on the instance family or type allow only nested-virtualization families.

    Any other operator (``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``) on those keys does
    not confine Kata nodes to them: it is reported unless an ``In`` requirement on the family or
    the type does (Karpenter ANDs a NodePool's requirements).
    """
    confined = False
    loose: list[str] = []
    for requirement in items(get(spec, "requirements"), unknowns):
        try:
            key = string(get(requirement, "key"))
            if key not in INSTANCE_KEYS:
                continue
            operator = string(get(requirement, "operator"))
            if operator != "In":
                loose.append(f"{key} {operator}")
                continue
            values = list(items(get(requirement, "values"), unknowns))
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        confined = True
        if key == INSTANCE_FAMILY_LABEL:
            bad = [str(v) for v in values if not isinstance(v, str) or v.strip().lower() not in families]
        else:
            bad = _bad_instance_types(values, families)
        if bad:
            report_violation(
                f"{who}: allow only {human_list(families)} in the {key} requirement "
                f"(remove {', '.join(bad)}); Kata nodes need nested virtualization.",
                pool.urn,
            )
    if loose and not confined and unknowns.first is None:
        report_violation(
            f"{who}: add a requirement {{key: {INSTANCE_FAMILY_LABEL}, operator: In, values: "
            f"[{', '.join(families)}]}}; {', '.join(loose)} does not confine Kata nodes to "
            "nested-virtualization families.",
            pool.urn,
        )


def kata_node_capacity_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = args.get_config()
    families = _families(config)
    unknowns = Unknowns()
    templates_by_urn, templates_by_name = _nested_launch_templates(args.resources, unknowns)
    classes_by_name, classes_by_urn = _node_classes(args.resources)
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
                    families,
                    report_violation,
                    group_unknowns,
                )
                if group_unknowns.first is not None:
                    unknowns.record(group_unknowns.first)
        elif k8s_group_kind(resource_type) == NODE_POOL:
            unknowns.run(
                _check_node_pool,
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
