"""Kata nodes need nested virtualization: 8th-generation Intel instances (c8i, m8i, r8i).

This module holds nested-virtualization-nodes (the launch template itself) and the facts that
kata-node-capacity (node_capacity.py) shares with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

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
    mapping,
    schema,
    string_list_property,
)
from .placement import Resolved, resolve

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

FAMILIES_PROPERTY = string_list_property(
    "Instance families that support nested virtualization.",
    DEFAULT_NESTED_VIRT_FAMILIES,
    minItems=1,
)


def families(config: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        f.lower() for f in config_strings(config, "nestedVirtualizationFamilies", DEFAULT_NESTED_VIRT_FAMILIES)
    )


def bad_instance_types(values: Iterable[Any], allowed: Sequence[str]) -> list[str]:
    return [str(v) for v in values if not isinstance(v, str) or instance_family(v) not in allowed]


def nested_virtualization_enabled(props: Any) -> bool:
    return get(mapping(get(props, "cpuOptions")), "nestedVirtualization") == "enabled"


def is_launch_template(resource_type: str) -> bool:
    return resource_type == LAUNCH_TEMPLATE


# --- nested-virtualization-nodes ----------------------------------------------------------------


def _check_launch_template_type(template: Resolved, allowed: Sequence[str], report_violation: ReportViolation) -> None:
    instance_type = get(template.props, "instanceType")
    if instance_type is None or not bad_instance_types([instance_type], allowed):
        return
    report_violation(
        f"{template.who}: set instanceType to a {human_list(allowed)} type instead "
        f'of "{instance_type}"; only 8th-generation Intel instances support nested '
        "virtualization."
    )


def _check_imdsv2(template: Resolved, report_violation: ReportViolation) -> None:
    if dig(template.props, "metadataOptions", "httpTokens") == "required":
        return
    report_violation(
        f'{template.who}: set metadataOptions.httpTokens to "required" (IMDSv2) '
        "on this nested-virtualization launch template."
    )


def nested_virtualization_nodes_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_launch_template(args.resource_type) or not nested_virtualization_enabled(args.props):
        return
    config = args.get_config()
    template = resolve(args)
    unknowns = Unknowns()
    unknowns.run(_check_launch_template_type, template, families(config), report_violation)
    if config_bool(config, "requireImdsv2", True):
        unknowns.run(_check_imdsv2, template, report_violation)
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
