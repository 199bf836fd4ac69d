"""Kata pods reach LiteLLM through an internal NLB, which needs cross-zone load balancing."""

from __future__ import annotations

from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .common import applies_to, config_strings, dig, get, is_true, mapping, schema, string, string_list_property
from .workloads import identity, k8s_group_kind

TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
ATTRIBUTES_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-attributes"
CROSS_ZONE_ATTRIBUTE = "load_balancing.cross_zone.enabled"
DEFAULT_NLB_TYPES = ("external", "nlb", "nlb-ip")
DEFAULT_NLB_CLASSES = ("service.k8s.aws/nlb",)
AWS_LB_TYPES = frozenset({"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"})


def parse_attributes(value: Any) -> dict[str, str]:
    """``"a=b, c = d"`` -> ``{"a": "b", "c": "d"}`` (whitespace tolerant, last one wins)."""
    result: dict[str, str] = {}
    if not isinstance(value, str):
        return result
    for pair in value.split(","):
        key, sep, val = pair.partition("=")
        if sep:
            result[key.strip()] = val.strip()
    return result


def _check_service(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    spec = mapping(get(props, "spec"))
    if get(spec, "type") != "LoadBalancer":
        return
    config = args.get_config()
    annotations = mapping(dig(props, "metadata", "annotations"))
    lb_type = string(get(annotations, TYPE_ANNOTATION))
    lb_class = string(get(spec, "loadBalancerClass"))
    is_nlb = (
        lb_type is not None and lb_type.strip().lower() in config_strings(config, "nlbTypes", DEFAULT_NLB_TYPES)
    ) or (lb_class is not None and lb_class in config_strings(config, "nlbLoadBalancerClasses", DEFAULT_NLB_CLASSES))
    if not is_nlb:
        return
    current = parse_attributes(get(annotations, ATTRIBUTES_ANNOTATION)).get(CROSS_ZONE_ATTRIBUTE)
    if current is not None and current.lower() == "true":
        return
    who = identity("Service", props, args.name)
    found = f' (it is "{current}")' if current is not None else ""
    report_violation(
        f"{who}: add {CROSS_ZONE_ATTRIBUTE}=true to the {ATTRIBUTES_ANNOTATION} "
        f"annotation{found}; without cross-zone load balancing, clients in one availability "
        "zone silently fail to reach targets in another."
    )


def _check_aws_load_balancer(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    if get(props, "loadBalancerType") != "network":
        return
    if is_true(get(props, "enableCrossZoneLoadBalancing")):
        return
    report_violation(
        f"LoadBalancer {args.name}: set enableCrossZoneLoadBalancing to true on this network "
        "load balancer; without it, clients in one availability zone silently fail to reach "
        "targets in another."
    )


def is_load_balancer(resource_type: str) -> bool:
    """An aws:lb/aws:alb LoadBalancer or a Kubernetes Service."""
    return resource_type in AWS_LB_TYPES or k8s_group_kind(resource_type) == ("core", "Service")


def nlb_cross_zone_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    resource_type = args.resource_type
    if not is_load_balancer(resource_type):
        return
    if resource_type in AWS_LB_TYPES:
        _check_aws_load_balancer(args, report_violation)
    else:
        _check_service(args, report_violation)


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
        }
    ),
)
applies_to(nlb_cross_zone, is_load_balancer)
