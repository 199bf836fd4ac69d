"""Karpenter NodePools for Kata (kata-node-capacity): nested virtualization on the node class, nowhere else.

A NodePool is for Kata by its taint keys or node labels (configurable); its EC2NodeClass must enable
nested virtualization, and its instance requirements must keep it on nested-virtualization families.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation
from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, config_strings, dig, get, human_list, items, mapping, string
from .nodes import bad_instance_types, families, nested_virtualization_enabled
from .stack import KubeObject, Stack

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


def check_node_pool(
    pool: KubeObject,
    stack: Stack,
    config: Mapping[str, Any],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    """A Kata NodePool (declared, patched, or both: the merged object) and the EC2NodeClass it references."""
    template = mapping(dig(pool.obj, "spec", "template"))
    labels = config.get("kataNodeLabels")
    if not isinstance(labels, Mapping):
        labels = {"workload-type": "kata"}
    if not _is_kata_node_pool(template, config_strings(config, "kataTaintKeys", ("kata",)), labels):
        return
    reporter = pool.last
    who = reporter.who
    allowed = families(config)
    unknown_ref: UnknownValueError | None = None
    try:
        reference = mapping(dig(template, "spec", "nodeClassRef"))
        ref_name = string(get(reference, "name"))
    except UnknownValueError as error:
        reference, ref_name, unknown_ref = {}, None, error
    if reference is None and pool.partial:
        node_class = None  # a patch that leaves the node class as it is
    else:
        try:
            found = stack.reference(reporter, "spec", EC2_NODE_CLASS, ref_name, unknown_ref)
        except UnknownValueError as error:
            unknowns.record(error)
            found = None
        else:
            if found is None:
                report_violation(
                    f"{who}: reference (spec.template.spec.nodeClassRef.name) an EC2NodeClass "
                    f'declared in this stack with spec.cpuOptions.nestedVirtualization "enabled"'
                    + (f'; EC2NodeClass "{ref_name}" is not declared here.' if ref_name else "."),
                    reporter.urn,
                )
        node_class = None if found is None else stack.object(found)
    if node_class is not None:
        try:
            enabled = nested_virtualization_enabled(get(node_class.obj, "spec"))
            if not enabled and node_class.partial and dig(node_class.obj, "spec", "cpuOptions") is None:
                enabled = True  # patches that leave the CPU options as they are
        except UnknownValueError as error:
            unknowns.record(error)
            enabled = True
        if not enabled:
            report_violation(
                f'{who}: set spec.cpuOptions.nestedVirtualization to "enabled" on '
                f"{node_class.last.who}, which this Kata NodePool uses.",
                reporter.urn,
            )
    _check_requirements(who, reporter.urn, mapping(get(template, "spec")), allowed, report_violation, unknowns)


def _check_requirements(
    who: str,
    urn: str,
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
                urn,
            )
    if loose and not confined and unknowns.first is None:
        report_violation(
            f"{who}: add a requirement {{key: {INSTANCE_FAMILY_LABEL}, operator: In, values: "
            f"[{', '.join(allowed)}]}}; {', '.join(loose)} does not confine Kata nodes to "
            "nested-virtualization families.",
            urn,
        )
