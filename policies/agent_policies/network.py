"""Kata pods reach LiteLLM through an internal NLB, which needs cross-zone load balancing.

A Service's NLB settings are decided exactly as the pinned AWS Load Balancer Controller version decides them
(config ``awsLoadBalancerControllerVersion``). The controller source this follows, with files and lines:
policies/README.md#nlb-cross-zone-the-controllers-source.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .common import (
    applies_to,
    config_bool,
    config_str,
    config_strings,
    dig,
    get,
    is_true,
    items,
    mapping,
    schema,
    string,
    string_list_property,
)
from .placement import Resolved, kind_of, resolve

TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
ATTRIBUTES_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-attributes"
LEGACY_CROSS_ZONE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled"
TARGET_GROUP_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
CROSS_ZONE_ATTRIBUTE = "load_balancing.cross_zone.enabled"
TARGET_GROUP_DEFAULT = "use_load_balancer_configuration"
DEFAULT_NLB_TYPES = ("external", "nlb", "nlb-ip")
DEFAULT_NLB_CLASSES = ("service.k8s.aws/nlb",)
DEFAULT_CONTROLLER_VERSION = "v3.5.0"  # Pulumi.yaml agent-platform:awsLoadBalancerControllerVersion
TRIMMING_PARSER_SINCE = (2, 14, 1)  # splitKeyValuePairs and trimmed keys/values
AWS_LB_TYPES = frozenset({"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"})
SERVICE = ("core", "Service")
CROSS_ZONE_ANNOTATIONS = (ATTRIBUTES_ANNOTATION, LEGACY_CROSS_ZONE_ANNOTATION, TARGET_GROUP_ANNOTATION)
VERSION_PATTERN = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$"
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class AnnotationError(ValueError):
    """The controller rejects the annotation: it fails to reconcile the Service."""


@functools.lru_cache(maxsize=32)
def controller_version(version: str) -> tuple[int, int, int]:
    match = re.match(r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)", version.strip())
    if match is None:
        raise ValueError(f"awsLoadBalancerControllerVersion {version!r} is not a version like v3.5.0")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _split_key_value_pairs(raw: str) -> list[str]:
    """Port of ``splitKeyValuePairs`` (v2.14.1 and later)."""
    result: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            current.append(raw[index + 1])  # an escaped character is kept literally
            index += 2
            continue
        if char == ",":
            remaining = raw[index + 1 :].strip()
            if "=" in remaining:
                result.append("".join(current).strip())
                current = []
            elif remaining:
                result.append("".join(current).strip())
                result.append(remaining)  # malformed: the caller rejects it
                return result
            else:
                current.append(char)  # a trailing comma stays in the value
        else:
            current.append(char)
        index += 1
    if current:
        result.append("".join(current).strip())
    return result


@functools.lru_cache(maxsize=1024)
def parse_string_map(raw: str, version: tuple[int, int, int] = (3, 5, 0)) -> dict[str, str]:
    """``ParseStringMapAnnotation`` of the given controller version; AnnotationError when it fails."""
    trimming = version >= TRIMMING_PARSER_SINCE
    pairs = _split_key_value_pairs(raw) if trimming else [part.strip() for part in raw.split(",") if part.strip()]
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise AnnotationError(f"entry {pair!r} is not key=value")
        if trimming:
            key, value = key.strip(), value.strip()
        if not key:
            raise AnnotationError(f"entry {pair!r} has an empty key")
        result[key] = value
    return result


def parse_attributes(value: Any, version: tuple[int, int, int] = (3, 5, 0)) -> dict[str, str]:
    """A ``key=value`` list annotation as the controller reads it; {} for a non-string."""
    return parse_string_map(value, version) if isinstance(value, str) else {}


def _go_bool(raw: str) -> bool:
    if raw in _GO_TRUE:
        return True
    if raw in _GO_FALSE:
        return False
    raise AnnotationError(f"{raw!r} is not a boolean")


def _port_numbers(spec: Mapping[str, Any] | None) -> list[int]:
    ports = []
    for entry in items(get(spec, "ports")):
        number = get(entry, "port")
        if isinstance(number, (int, float)) and not isinstance(number, bool) and float(number).is_integer():
            ports.append(int(number))
    return ports


def _is_controller_nlb(props: Any, spec: Mapping[str, Any] | None, config: Mapping[str, Any]) -> bool:
    annotations = mapping(dig(props, "metadata", "annotations"))
    lb_class = string(get(spec, "loadBalancerClass"))
    if lb_class:
        return lb_class in config_strings(config, "nlbLoadBalancerClasses", DEFAULT_NLB_CLASSES)
    lb_type = string(get(annotations, TYPE_ANNOTATION))
    if lb_type is not None and lb_type.strip().lower() in config_strings(config, "nlbTypes", DEFAULT_NLB_TYPES):
        return True
    # The controller's mutating webhook gives every new LoadBalancer Service without a class its class.
    return config_bool(config, "serviceMutatorWebhook", True)


def _sets_cross_zone(annotations: Mapping[str, Any]) -> bool:
    """Whether the annotations name any cross-zone setting (a patch that sets none leaves them as they are)."""
    return any(isinstance(key, str) and key.startswith(CROSS_ZONE_ANNOTATIONS) for key in annotations)


def _check_service(service: Resolved, config: Mapping[str, Any], report_violation: ReportViolation) -> None:  # noqa: C901 - the controller's merge order, step by step
    props = service.props
    spec = mapping(get(props, "spec"))
    if get(spec, "type") != "LoadBalancer":
        return  # a patch that leaves the type alone is judged where the type is set
    if not _is_controller_nlb(props, spec, config):
        return
    if service.partial and not _sets_cross_zone(mapping(dig(props, "metadata", "annotations")) or {}):
        return  # a patch that leaves every cross-zone annotation as it is
    who = service.who
    version_text = config_str(config, "awsLoadBalancerControllerVersion", DEFAULT_CONTROLLER_VERSION)
    version = controller_version(version_text)
    controller = f"AWS Load Balancer Controller {version_text}"
    annotations = mapping(dig(props, "metadata", "annotations")) or {}
    consequence = (
        "without cross-zone load balancing, clients in one availability zone silently fail to reach targets in another."
    )

    def parsed(annotation: str) -> dict[str, str] | None:
        raw = get(annotations, annotation)
        if raw is None:
            return {}
        try:
            return parse_attributes(raw, version)
        except AnnotationError as error:
            report_violation(
                f"{who}: fix the {annotation} annotation: {controller} rejects it ({error}) and does not "
                f"reconcile this load balancer; write it as key=value pairs separated by commas."
            )
            return None

    # The load balancer: the legacy annotation wins over the attributes annotation.
    legacy_raw = get(annotations, LEGACY_CROSS_ZONE_ANNOTATION)
    attributes = parsed(ATTRIBUTES_ANNOTATION)
    if attributes is None:
        return
    attribute = attributes.get(CROSS_ZONE_ATTRIBUTE)
    found = f' (it is "{attribute}")' if attribute is not None else ""
    report = f"{who}: add {CROSS_ZONE_ATTRIBUTE}=true to the {ATTRIBUTES_ANNOTATION} annotation{found}; {consequence}"
    lb_enabled = attribute is not None and attribute.lower() == "true"
    if legacy_raw is not None:
        try:
            legacy = _go_bool(legacy_raw) if isinstance(legacy_raw, str) else None
        except AnnotationError:
            legacy = None
        if legacy is None:
            report_violation(
                f'{who}: set the {LEGACY_CROSS_ZONE_ANNOTATION} annotation to "true" or remove it: {controller} '
                f"rejects {legacy_raw!r} (not a boolean) and does not reconcile this load balancer."
            )
            return
        if not legacy and lb_enabled:
            report = (
                f'{who}: remove the {LEGACY_CROSS_ZONE_ANNOTATION} annotation (it is "{legacy_raw}"): {controller} '
                f"lets it take precedence over {CROSS_ZONE_ATTRIBUTE}={attribute} in the {ATTRIBUTES_ANNOTATION} "
                f"annotation; {consequence}"
            )
        elif not legacy:
            report = (
                f'{who}: remove the {LEGACY_CROSS_ZONE_ANNOTATION} annotation (it is "{legacy_raw}") and add '
                f"{CROSS_ZONE_ATTRIBUTE}=true to the {ATTRIBUTES_ANNOTATION} annotation{found}; {consequence}"
            )
        lb_enabled = legacy
    # The target groups: each port's target group attribute wins over the load balancer's setting.
    base = parsed(TARGET_GROUP_ANNOTATION)
    if base is None:
        return
    per_port = [key for key in annotations if isinstance(key, str) and key.startswith(TARGET_GROUP_ANNOTATION + ".")]
    ports = _port_numbers(spec) if per_port else []
    groups: list[tuple[str, str | None, str]] = []  # (target group, its value, the annotation that set it)
    for port in ports or [None]:
        value, source = base.get(CROSS_ZONE_ATTRIBUTE), TARGET_GROUP_ANNOTATION
        if port is not None:
            specific = parsed(f"{TARGET_GROUP_ANNOTATION}.{port}")
            if specific is None:
                return
            if specific.get(CROSS_ZONE_ATTRIBUTE):
                value, source = specific[CROSS_ZONE_ATTRIBUTE], f"{TARGET_GROUP_ANNOTATION}.{port}"
        groups.append((f"port {port}" if port is not None else "every port", value, source))
    lb_reported = False
    for group, value, source in groups:
        if value is None or value == TARGET_GROUP_DEFAULT:
            if not lb_enabled and not lb_reported:
                report_violation(report)
                lb_reported = True
        elif value.lower() == "false":
            report_violation(
                f"{who}: remove {CROSS_ZONE_ATTRIBUTE}=false from the {source} annotation (or set it to true): "
                f"the target group attribute wins over the load balancer's cross-zone setting for the target group "
                f"of {group}; {consequence}"
            )
        elif value.lower() != "true":
            report_violation(
                f'{who}: set {CROSS_ZONE_ATTRIBUTE} in the {source} annotation to true (it is "{value}"); '
                f"ELBv2 accepts only true, false or {TARGET_GROUP_DEFAULT}, so the target group of {group} "
                "is not created."
            )


def _check_aws_load_balancer(balancer: Resolved, report_violation: ReportViolation) -> None:
    props = balancer.props
    if get(props, "loadBalancerType") != "network":
        return
    if is_true(get(props, "enableCrossZoneLoadBalancing")):
        return
    report_violation(
        f"{balancer.who}: set enableCrossZoneLoadBalancing to true on this network "
        "load balancer; without it, clients in one availability zone silently fail to reach "
        "targets in another."
    )


def is_load_balancer(resource_type: str) -> bool:
    """An aws:lb/aws:alb LoadBalancer or a Kubernetes Service (its patches included)."""
    return resource_type in AWS_LB_TYPES or kind_of(resource_type) == SERVICE


def nlb_cross_zone_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_load_balancer(args.resource_type):
        return
    balancer = resolve(args)
    if balancer.kind_key == SERVICE:
        _check_service(balancer, args.get_config(), report_violation)
    else:
        _check_aws_load_balancer(balancer, report_violation)


nlb_cross_zone = ResourceValidationPolicy(
    name="nlb-cross-zone",
    description=(
        "Network load balancers (Services handled as an NLB by the AWS Load Balancer "
        "Controller, aws:lb LoadBalancers of type network) must enable cross-zone load "
        "balancing."
    ),
    validate=nlb_cross_zone_validator,
    config_schema=schema(
        {
            "nlbTypes": string_list_property(
                f"Values of the {TYPE_ANNOTATION} annotation that make a Service an NLB.",
                DEFAULT_NLB_TYPES,
            ),
            "nlbLoadBalancerClasses": string_list_property(
                "spec.loadBalancerClass values that make a Service an NLB.", DEFAULT_NLB_CLASSES
            ),
            "awsLoadBalancerControllerVersion": {
                "type": "string",
                "pattern": VERSION_PATTERN,
                "description": (
                    "The AWS Load Balancer Controller version the cluster runs: annotations are parsed as it "
                    "parses them (v2.14.0 and older split key=value lists without trimming inside a pair)."
                ),
                "default": DEFAULT_CONTROLLER_VERSION,
            },
            "serviceMutatorWebhook": {
                "type": "boolean",
                "description": (
                    "The controller's service mutator webhook is on (chart default): a LoadBalancer Service "
                    "without loadBalancerClass becomes a controller NLB."
                ),
                "default": True,
            },
        }
    ),
)
applies_to(nlb_cross_zone, is_load_balancer)
