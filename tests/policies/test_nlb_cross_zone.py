"""nlb-cross-zone: which Services become NLBs, and cross-zone load balancing decided as the pinned AWS
Load Balancer Controller version decides it."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.network import AnnotationError, nlb_cross_zone, parse_attributes, parse_string_map

from tests.policies.builders import AWS_LB, CROSS_ZONE, LB_ATTRIBUTES, LB_TYPE, lb_service, policy_levels
from tests.policy_cases import UNKNOWN, resource, run_resource_policy
from tests.tokens import SERVICE
from tools.analyzer import PolicyPackProcess

# --- which load balancers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "spec", "violations"),
    [
        ({LB_TYPE: "external"}, {}, 1),
        ({LB_TYPE: "nlb"}, {}, 1),
        ({LB_TYPE: "nlb-ip"}, {}, 1),
        ({}, {"loadBalancerClass": "service.k8s.aws/nlb"}, 1),
        ({LB_TYPE: "external", **CROSS_ZONE}, {}, 0),
        ({**CROSS_ZONE}, {"loadBalancerClass": "service.k8s.aws/nlb"}, 0),
        (
            {
                LB_TYPE: "external",
                LB_ATTRIBUTES: "deletion_protection.enabled=true ,  load_balancing.cross_zone.enabled = true ",
            },
            {},
            0,
        ),
        ({LB_TYPE: "external", LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=false"}, {}, 1),
        ({LB_TYPE: "external", LB_ATTRIBUTES: "deletion_protection.enabled=true"}, {}, 1),
        ({}, {}, 1),  # the controller's webhook makes it an NLB (see test_nlb_cross_zone_without_webhook)
    ],
)
def test_nlb_cross_zone_services(annotations: dict[str, str], spec: dict[str, Any], violations: int) -> None:
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, lb_service(annotations, **spec))
    assert outcome.unknown is None
    assert len(outcome) == violations, outcome.messages
    if violations:
        assert outcome.messages[0].startswith(
            "Service litellm/litellm: add load_balancing.cross_zone.enabled=true to the "
            "service.beta.kubernetes.io/aws-load-balancer-attributes annotation"
        )


def test_nlb_cross_zone_quiet_on_other_services() -> None:
    for spec_type in ("ClusterIP", "NodePort"):
        props = lb_service({LB_TYPE: "external"}, spec_type=spec_type)
        assert len(run_resource_policy(nlb_cross_zone, SERVICE, props)) == 0


def test_nlb_cross_zone_explicit_false_is_named() -> None:
    annotations = {LB_TYPE: "external", LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=false"}
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, lb_service(annotations))
    assert '(it is "false")' in outcome.messages[0]


@pytest.mark.parametrize(
    ("props", "violations"),
    [
        ({"loadBalancerType": "network", "internal": True}, 1),
        ({"loadBalancerType": "network", "enableCrossZoneLoadBalancing": False}, 1),
        ({"loadBalancerType": "network", "enableCrossZoneLoadBalancing": True}, 0),
        ({"loadBalancerType": "application"}, 0),
        ({"internal": True}, 0),  # defaults to application
        ({"loadBalancerType": "gateway"}, 0),
    ],
)
def test_nlb_cross_zone_aws_load_balancers(props: dict[str, Any], violations: int) -> None:
    for resource_type in (AWS_LB, "aws:alb/loadBalancer:LoadBalancer"):
        outcome = run_resource_policy(nlb_cross_zone, resource_type, props, name="litellm-nlb")
        assert len(outcome) == violations
        if violations:
            assert outcome.messages[0].startswith("LoadBalancer litellm-nlb: set enableCrossZoneLoadBalancing to true")


def test_nlb_cross_zone_without_webhook() -> None:
    config = {"serviceMutatorWebhook": False}
    assert len(run_resource_policy(nlb_cross_zone, SERVICE, lb_service({}), config)) == 0  # in-tree classic ELB
    props = lb_service({}, loadBalancerClass="example.com/other")
    assert len(run_resource_policy(nlb_cross_zone, SERVICE, props)) == 0  # another controller's class


# --- as the AWS Load Balancer Controller decides ----------------------------------------------

LEGACY_CROSS_ZONE = "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled"
TG_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
V3, V2 = (3, 5, 0), (2, 14, 0)


@pytest.mark.parametrize(
    ("raw", "v3", "v2"),
    [
        ("a=1,b=2", {"a": "1", "b": "2"}, {"a": "1", "b": "2"}),
        (" a = 1 , b = 2 ", {"a": "1", "b": "2"}, {"a ": " 1", "b ": " 2"}),  # v2.14.0 trims entries only
        ("a=1,,b=2", None, {"a": "1", "b": "2"}),  # empty entry: rejected since v2.14.1, skipped before
        ("a=1, ,b=2", None, {"a": "1", "b": "2"}),
        ("a=1,", {"a": "1,"}, {"a": "1"}),  # a trailing comma stays in the value since v2.14.1
        ("a=1,b", None, None),
        ("a=x\\,y,b=2", {"a": "x,y", "b": "2"}, None),  # escaped comma since v2.14.1
        ("a=tr\\ue", {"a": "true"}, {"a": "tr\\ue"}),
        ("a=1,a=2", {"a": "2"}, {"a": "2"}),  # the last duplicate wins
        ("a=b=c", {"a": "b=c"}, {"a": "b=c"}),
        ("=1", None, None),
        (" =1", None, None),
        ("", {}, {}),
        ("   ", None, {}),
    ],
)
def test_parse_string_map_per_controller_version(raw: str, v3: Any, v2: Any) -> None:
    for version, expected in ((V3, v3), (V2, v2)):
        if expected is None:
            with pytest.raises(AnnotationError):
                parse_string_map(raw, version)
        else:
            assert parse_string_map(raw, version) == expected, version
    assert parse_attributes(None) == {}
    assert parse_attributes(["a=b"]) == {}


def _nlb(annotations: dict[str, str], version: str = "v3.5.0", ports: list[int] | None = None) -> list[str]:
    props = lb_service({LB_TYPE: "external", **annotations})
    if ports is not None:
        props["spec"]["ports"] = [{"port": p} for p in ports]
    outcome = run_resource_policy(
        nlb_cross_zone, SERVICE, props, {"awsLoadBalancerControllerVersion": version}, name="litellm"
    )
    assert outcome.unknown is None
    return outcome.messages


ON = "load_balancing.cross_zone.enabled=true"
OFF = "load_balancing.cross_zone.enabled=false"


@pytest.mark.parametrize(
    ("annotations", "fragments"),
    [
        # The legacy annotation wins over the attributes annotation (MergeStringMap keeps the first map).
        (
            {LEGACY_CROSS_ZONE: "false", LB_ATTRIBUTES: ON},
            ["take precedence over load_balancing.cross_zone.enabled=true"],
        ),
        ({LEGACY_CROSS_ZONE: "0"}, [f"remove the {LEGACY_CROSS_ZONE} annotation"]),
        ({LEGACY_CROSS_ZONE: "true", LB_ATTRIBUTES: OFF}, []),
        ({LEGACY_CROSS_ZONE: "True"}, []),
        ({LEGACY_CROSS_ZONE: "1"}, []),
        ({LEGACY_CROSS_ZONE: "t"}, []),
        ({LEGACY_CROSS_ZONE: "yes", LB_ATTRIBUTES: ON}, ["rejects 'yes' (not a boolean)"]),
        ({LEGACY_CROSS_ZONE: " true"}, ["not a boolean"]),
        # The target group attribute wins for its target group.
        (
            {LB_ATTRIBUTES: ON, TG_ATTRIBUTES: OFF},
            [f"remove load_balancing.cross_zone.enabled=false from the {TG_ATTRIBUTES}"],
        ),  # noqa: E501
        (
            {LEGACY_CROSS_ZONE: "true", TG_ATTRIBUTES: "preserve_client_ip.enabled=true, " + OFF},
            ["target group attribute wins"],
        ),  # noqa: E501
        ({TG_ATTRIBUTES: ON}, []),
        ({LB_ATTRIBUTES: ON, TG_ATTRIBUTES: "load_balancing.cross_zone.enabled=use_load_balancer_configuration"}, []),
        ({TG_ATTRIBUTES: "load_balancing.cross_zone.enabled=use_load_balancer_configuration"}, ["add load_balancing"]),
        ({LB_ATTRIBUTES: ON, TG_ATTRIBUTES: "load_balancing.cross_zone.enabled=maybe"}, ['(it is "maybe")']),
        ({LB_ATTRIBUTES: ON, f"{TG_ATTRIBUTES}.4000": OFF}, [f"{TG_ATTRIBUTES}.4000 annotation", "port 4000"]),
        ({LB_ATTRIBUTES: ON, f"{TG_ATTRIBUTES}.5000": OFF}, []),  # not a port of this Service
        ({LB_ATTRIBUTES: ON, TG_ATTRIBUTES: OFF, f"{TG_ATTRIBUTES}.4000": ON}, []),  # the port's value wins
        (
            {LB_ATTRIBUTES: ON, TG_ATTRIBUTES: OFF, f"{TG_ATTRIBUTES}.4000": "load_balancing.cross_zone.enabled="},
            ["target group attribute wins"],
        ),  # noqa: E501
        # Parsing (v3.5.0): empty entries are rejected, a trailing comma stays in the value, last duplicate wins.
        ({LB_ATTRIBUTES: "deletion_protection.enabled=true,," + ON}, ["rejects it (entry '' is not key=value)"]),
        ({LB_ATTRIBUTES: ON + ","}, ['(it is "true,")']),
        ({LB_ATTRIBUTES: f"{ON},{OFF}"}, ['(it is "false")']),
        ({LB_ATTRIBUTES: f"{OFF},{ON}"}, []),
        ({LB_ATTRIBUTES: " load_balancing.cross_zone.enabled = true "}, []),
        ({LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=tr\\ue"}, []),
        (
            {LB_ATTRIBUTES: "load_balancing.cross_zone.enabled"},
            ["fix the service.beta.kubernetes.io/aws-load-balancer-attributes annotation"],
        ),  # noqa: E501
    ],
)
def test_nlb_cross_zone_controller_semantics(annotations: dict[str, str], fragments: list[str]) -> None:
    messages = _nlb(annotations)
    assert len(messages) == (1 if fragments else 0), messages
    for fragment in fragments:
        assert fragment in messages[0], messages[0]
    if messages:
        assert messages[0].startswith("Service litellm/litellm: ")


@pytest.mark.parametrize(
    ("annotations", "v3_ok", "v2_ok"),
    [
        ({LB_ATTRIBUTES: "deletion_protection.enabled=true,," + ON}, False, True),
        ({LB_ATTRIBUTES: ON + ","}, False, True),
        ({LB_ATTRIBUTES: "load_balancing.cross_zone.enabled = true"}, True, False),
        ({LB_ATTRIBUTES: "a=1 , load_balancing.cross_zone.enabled= true"}, True, False),
        ({LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=tr\\ue"}, True, False),
        ({LB_ATTRIBUTES: ON, TG_ATTRIBUTES: "load_balancing.cross_zone.enabled = false"}, False, True),
    ],
)
def test_nlb_cross_zone_depends_on_the_controller_version(
    annotations: dict[str, str], v3_ok: bool, v2_ok: bool
) -> None:
    assert (_nlb(annotations, "v3.5.0") == []) is v3_ok
    assert (_nlb(annotations, "v2.14.1") == []) is v3_ok
    assert (_nlb(annotations, "v2.14.0") == []) is v2_ok
    assert (_nlb(annotations, "2.13.4") == []) is v2_ok


def test_nlb_cross_zone_unknown_ports_and_annotations() -> None:
    props = lb_service({LB_TYPE: "external", LB_ATTRIBUTES: ON, f"{TG_ATTRIBUTES}.4000": OFF})
    props["spec"]["ports"] = UNKNOWN
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, props)
    assert outcome.messages == []
    assert outcome.unknown is not None
    props = lb_service({LB_TYPE: "external", LB_ATTRIBUTES: ON, LEGACY_CROSS_ZONE: UNKNOWN})
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, props)
    assert outcome.messages == []
    assert outcome.unknown is not None


def test_nlb_cross_zone_per_port_target_groups() -> None:
    two_ports = [4000, 4001]
    off_on_4001 = {LB_ATTRIBUTES: ON, f"{TG_ATTRIBUTES}.4001": "load_balancing.cross_zone.enabled=False"}
    (message,) = _nlb(off_on_4001, ports=two_ports)
    assert "target group of port 4001" in message
    assert f"{TG_ATTRIBUTES}.4001 annotation" in message
    # Target groups turned on one by one make up for a load balancer without cross-zone.
    each_on = {f"{TG_ATTRIBUTES}.4000": ON, f"{TG_ATTRIBUTES}.4001": ON}
    assert _nlb(each_on, ports=two_ports) == []
    (message,) = _nlb({f"{TG_ATTRIBUTES}.4000": ON}, ports=two_ports)
    assert message.startswith(
        f"Service litellm/litellm: add load_balancing.cross_zone.enabled=true to the {LB_ATTRIBUTES}"
    )


def test_nlb_cross_zone_legacy_off_but_every_target_group_on() -> None:
    # Exact semantics: the target groups' own attribute wins over the load balancer's (legacy) setting.
    assert _nlb({LEGACY_CROSS_ZONE: "false", TG_ATTRIBUTES: ON}) == []
    (message,) = _nlb({LEGACY_CROSS_ZONE: "false", LB_ATTRIBUTES: OFF})
    assert message.startswith(f"Service litellm/litellm: remove the {LEGACY_CROSS_ZONE} annotation")
    assert f'to the {LB_ATTRIBUTES} annotation (it is "false")' in message


def test_grpc_nlb_cross_zone(pack: PolicyPackProcess, reconfigure: Any) -> None:
    legacy_off = resource(
        SERVICE, "legacy", lb_service({LB_TYPE: "external", LEGACY_CROSS_ZONE: "false", **CROSS_ZONE})
    )
    (violation,) = pack.analyze(legacy_off)
    assert "take precedence" in violation.message
    spaced = resource(
        SERVICE, "spaced", lb_service({LB_TYPE: "external", LB_ATTRIBUTES: "load_balancing.cross_zone.enabled = true"})
    )  # noqa: E501
    assert pack.analyze(spaced) == []
    reconfigure({"nlb-cross-zone": {"awsLoadBalancerControllerVersion": "v2.14.0"}})
    assert policy_levels(pack.analyze(spaced)) == {"nlb-cross-zone": "mandatory"}
    pack.config = {"nlb-cross-zone": {"awsLoadBalancerControllerVersion": "latest"}}
    with pytest.raises(ValueError, match="policy 'nlb-cross-zone'"):
        pack.configure()
