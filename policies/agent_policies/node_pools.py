"""Karpenter NodePools for Kata (kata-node-capacity): nested virtualization on the node class, nowhere else.

A NodePool is for Kata by its taint keys or node labels (configurable); its EC2NodeClass must enable
nested virtualization, and its instance requirements must keep it on nested-virtualization families.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation
from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, config_strings, dependencies_of, dig, get, human_list, items, mapping, string
from .nodes import bad_instance_types, families, nested_virtualization_enabled
from .workloads import Identity, identity, k8s_group_kind

NODE_POOL = ("karpenter.sh", "NodePool")
EC2_NODE_CLASS = ("karpenter.k8s.aws", "EC2NodeClass")
INSTANCE_FAMILY_LABEL = "karpenter.k8s.aws/instance-family"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Karpenter normalizes the deprecated beta label to the GA one (karpenter.sh/v1 NormalizedLabels).
INSTANCE_KEYS = frozenset({INSTANCE_FAMILY_LABEL, INSTANCE_TYPE_LABEL, "beta.kubernetes.io/instance-type"})


def _is_kata_node_pool(
    template: Mapping[str, Any] | None, taint_keys: Sequence[str], labels: Mapping[str, Any]
) -> bool:
    for taint in items(dig(template, "spec", "taints")):
        if get(mapping(taint), "key") in taint_keys:
            return True
    node_labels = mapping(dig(template, "metadata", "labels"))
    return any(isinstance(value, str) and get(node_labels, key) == value for key, value in labels.items())


def node_classes(
    resources: Iterable[PolicyResource],
) -> tuple[dict[str, PolicyResource], dict[str, PolicyResource]]:
    """The EC2NodeClasses of the stack by name and by URN."""
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
    candidates = [by_urn[dep.urn] for dep in dependencies_of(pool, "spec") if dep.urn in by_urn]
    return candidates[0] if len(candidates) == 1 else None


def check_node_pool(
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
    allowed = families(config)
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
            enabled = nested_virtualization_enabled(get(node_class.props, "spec"))
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
    _check_requirements(who, pool, mapping(get(template, "spec")), allowed, report_violation, unknowns)


def _check_requirements(
    who: Identity,
    pool: PolicyResource,
    spec: Mapping[str, Any] | None,
    allowed: Sequence[str],
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
            bad = [str(v) for v in values if not isinstance(v, str) or v.strip().lower() not in allowed]
        else:
            bad = bad_instance_types(values, allowed)
        if bad:
            report_violation(
                f"{who}: allow only {human_list(allowed)} in the {key} requirement "
                f"(remove {', '.join(bad)}); Kata nodes need nested virtualization.",
                pool.urn,
            )
    if loose and not confined and unknowns.first is None:
        report_violation(
            f"{who}: add a requirement {{key: {INSTANCE_FAMILY_LABEL}, operator: In, values: "
            f"[{', '.join(allowed)}]}}; {', '.join(loose)} does not confine Kata nodes to "
            "nested-virtualization families.",
            pool.urn,
        )
