"""Tests for the CrossGuard policy pack in policies/.

Most cases call the validators directly (through the SDK's own decoding, see
tests/policy_cases.py); every rule also has a violating and a compliant case that goes
through the real analyzer gRPC protocol with tools.analyzer.PolicyPackProcess, started
once for the module.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_policies import POLICIES, POLICY_PACK_NAME
from agent_policies.dns import kata_dns
from agent_policies.kata import kata_clh_no_init_containers
from agent_policies.network import nlb_cross_zone, parse_attributes
from agent_policies.nodes import kata_node_capacity, nested_virtualization_nodes
from agent_policies.sandbox import (
    sandbox_namespace_runtime_class,
    sandbox_no_host_access,
    sandbox_runtime_class,
)
from agent_policies.sdk_speedups import struct_to_dict
from google.protobuf import json_format, struct_pb2
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from tests.policy_cases import (
    KINDS,
    PACK_DIR,
    UNKNOWN,
    VPC_DNS,
    Kind,
    k8s,
    kata_spec,
    resource,
    run_resource_policy,
    run_stack_policy,
    secret,
    urn,
    workload,
)
from tools.analyzer import (
    AnalyzerResource,
    PolicyPackError,
    PolicyPackProcess,
    Violation,
    run_pack,
)

KIND_IDS = [k.id for k in KINDS]
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
AWS_LB = "aws:lb/loadBalancer:LoadBalancer"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
LB_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-attributes"


def who(kind: Kind) -> str:
    return f"{kind.kind} tenant-a/hermes"


def check(policy: ResourceValidationPolicy, kind: Kind, spec: Any, **kwargs: Any) -> list[str]:
    config = kwargs.pop("config", None)
    outcome = run_resource_policy(policy, kind.resource_type, workload(kind, spec, **kwargs), config)
    assert outcome.unknown is None, outcome.unknown.message
    return outcome.messages


# --- the pack ------------------------------------------------------------------------------------


def test_pack_lists_every_rule_once() -> None:
    names = [p.name for p in POLICIES]
    assert names == [
        "sandbox-runtime-class",
        "sandbox-namespace-runtime-class",
        "kata-dns",
        "nlb-cross-zone",
        "kata-clh-no-init-containers",
        "sandbox-no-host-access",
        "nested-virtualization-nodes",
        "kata-node-capacity",
        "sandbox-egress-allowlist",  # tests/test_egress.py
    ]
    stack_level = {p.name for p in POLICIES if isinstance(p, StackValidationPolicy)}
    assert stack_level == {"sandbox-namespace-runtime-class", "kata-node-capacity", "sandbox-egress-allowlist"}
    for policy in POLICIES:
        assert policy.config_schema is not None, policy.name
        for key, spec in policy.config_schema.properties.items():
            assert "default" in spec and "description" in spec, (policy.name, key)


def test_main_only_builds_the_pack() -> None:
    source = (PACK_DIR / "__main__.py").read_text()
    assert "PolicyPack(" in source and "def " not in source
    manifest = (PACK_DIR / "PulumiPolicy.yaml").read_text()
    assert "name: python" in manifest and "virtualenv: venv" in manifest
    assert "version: 0.1.0" in manifest


# --- sandbox-runtime-class -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_sandbox_runtime_class_every_kind(kind: Kind) -> None:
    spec = kata_spec()
    del spec["runtimeClassName"]
    assert check(sandbox_runtime_class, kind, spec) == [
        f"{who(kind)}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."
    ]
    assert check(sandbox_runtime_class, kind, kata_spec(runtimeClassName="runc")) == [
        f'{who(kind)}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, kata-fc instead of "runc".'
    ]
    for runtime_class in ("kata-clh", "kata-qemu", "kata-fc"):
        assert check(sandbox_runtime_class, kind, kata_spec(runtimeClassName=runtime_class)) == []
    # Not a sandbox: no label, namespace not configured.
    assert check(sandbox_runtime_class, kind, {"containers": []}, sandbox=False) == []


def test_sandbox_runtime_class_config() -> None:
    deployment = KINDS[1]
    plain = {"containers": [{"name": "x"}]}
    assert check(sandbox_runtime_class, deployment, plain, sandbox=False) == []
    in_namespace = check(
        sandbox_runtime_class,
        deployment,
        plain,
        sandbox=False,
        config={"sandboxNamespaces": ["tenant-a"]},
    )
    assert len(in_namespace) == 1
    # No namespace means the default namespace.
    assert check(
        sandbox_runtime_class,
        deployment,
        plain,
        sandbox=False,
        namespace=None,
        config={"sandboxNamespaces": ["default"]},
    ) == ["Deployment hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."]
    assert (
        check(
            sandbox_runtime_class,
            deployment,
            kata_spec(runtimeClassName="gvisor"),
            config={"allowedRuntimeClasses": ["gvisor"]},
        )
        == []
    )
    sandbox_kind = KINDS[7]
    assert len(check(sandbox_runtime_class, sandbox_kind, plain, sandbox=False)) == 0
    assert (
        len(
            check(
                sandbox_runtime_class,
                sandbox_kind,
                plain,
                sandbox=False,
                config={"sandboxKinds": ["Sandbox"]},
            )
        )
        == 1
    )


def test_sandbox_label_value_forms() -> None:
    deployment = KINDS[1]
    spec = {"containers": []}
    for value, expected in (("true", 1), ("True", 1), (True, 1), ("false", 0), ("yes", 0)):
        messages = check(
            sandbox_runtime_class,
            deployment,
            spec,
            sandbox=False,
            labels={"agent-platform.io/sandbox": value},
        )
        assert len(messages) == expected, value


# --- sandbox-namespace-runtime-class (stack) -------------------------------------------------------


def _namespace(name: str, sandbox: bool) -> AnalyzerResource:
    labels = {"agent-platform.io/sandbox": "true"} if sandbox else {}
    return resource(NAMESPACE, name, k8s("v1", "Namespace", name, labels=labels))


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_sandbox_namespace_runtime_class_every_kind(kind: Kind) -> None:
    bad = resource(kind.resource_type, "bad", workload(kind, {"containers": []}, sandbox=False))
    good = resource(kind.resource_type, "good", workload(kind, kata_spec(), sandbox=False, name="good"))
    elsewhere = resource(
        kind.resource_type,
        "elsewhere",
        workload(kind, {"containers": []}, sandbox=False, namespace="shared", name="elsewhere"),
    )
    labelled = resource(kind.resource_type, "labelled", workload(kind, {}, name="labelled"))
    outcome = run_stack_policy(
        sandbox_namespace_runtime_class,
        [_namespace("tenant-a", True), _namespace("shared", False), bad, good, elsewhere, labelled],
    )
    assert outcome.unknown is None
    assert outcome.urns == [bad.urn]
    assert outcome.messages == [
        f"{who(kind)}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, "
        "kata-fc. Namespace tenant-a is a sandbox namespace (agent-platform.io/sandbox=true)."
    ]


def test_sandbox_namespace_computed_name_follows_dependencies() -> None:
    namespace = resource(
        NAMESPACE, "tenant-b", k8s("v1", "Namespace", UNKNOWN, labels={"agent-platform.io/sandbox": "true"})
    )
    deployment = KINDS[1]
    props = workload(deployment, {"containers": []}, sandbox=False, namespace=UNKNOWN)
    linked = resource(
        deployment.resource_type,
        "linked",
        props,
        property_dependencies={"metadata": [namespace.urn]},
    )
    unlinked = resource(deployment.resource_type, "unlinked", props)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [namespace, linked, unlinked])
    assert outcome.urns == [linked.urn]
    assert "Namespace tenant-b is a sandbox namespace" in outcome.messages[0]


# --- kata-dns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_kata_dns_every_kind(kind: Kind) -> None:
    assert check(kata_dns, kind, kata_spec()) == []
    messages = check(
        kata_dns,
        kind,
        kata_spec(dnsPolicy="ClusterFirst", dnsConfig={"nameservers": ["10.100.0.10"]}),
    )
    assert len(messages) == 2
    assert messages[0].startswith(f'{who(kind)}: set {kind.spec_path}.dnsPolicy to "None" instead of "ClusterFirst"')
    assert messages[1].startswith(
        f"{who(kind)}: replace nameserver 10.100.0.10 in {kind.spec_path}.dnsConfig.nameservers"
    )
    assert "service CIDR 10.100.0.0/16" in messages[1]
    # Not Kata: the rule does not apply.
    assert check(kata_dns, kind, {"containers": []}, sandbox=False) == []
    assert check(kata_dns, kind, kata_spec(runtimeClassName="runc", dnsPolicy="ClusterFirst")) == []


@pytest.mark.parametrize(
    ("dns_policy", "dns_config", "expected"),
    [
        ("None", {"nameservers": ["10.1.0.2", "fd00::2"]}, []),
        ("None", {"nameservers": ["172.20.0.10"]}, ["service CIDR 172.20.0.0/16"]),
        ("None", {"nameservers": ["kube-dns.kube-system"]}, ["must be IP addresses"]),
        ("None", {"nameservers": [53]}, ["must be IP addresses"]),
        ("None", {"nameservers": []}, ["needs at least one nameserver"]),
        ("None", {"searches": ["svc.cluster.local"]}, ["needs at least one nameserver"]),
        ("None", None, ["needs at least one nameserver"]),
        ("None", {"nameservers": "10.1.0.2"}, ["needs at least one nameserver"]),
        (None, {"nameservers": [VPC_DNS]}, ['dnsPolicy to "None" and list']),
        ("Default", {"nameservers": [VPC_DNS]}, ['instead of "Default"']),
    ],
)
def test_kata_dns_cases(dns_policy: Any, dns_config: Any, expected: list[str]) -> None:
    spec = kata_spec(runtimeClassName="kata-clh", dnsPolicy=dns_policy, dnsConfig=dns_config)
    for key in ("dnsPolicy", "dnsConfig"):
        if spec[key] is None:
            del spec[key]
    messages = check(kata_dns, KINDS[1], spec)
    assert len(messages) == len(expected), messages
    for message, fragment in zip(messages, expected, strict=True):
        assert fragment in message


def test_kata_dns_config() -> None:
    deployment = KINDS[1]
    spec = kata_spec(dnsConfig={"nameservers": ["10.1.0.2"]})
    assert len(check(kata_dns, deployment, spec, config={"serviceCidrs": ["10.1.0.0/24"]})) == 1
    runsc = kata_spec(runtimeClassName="vm-clh", dnsPolicy="ClusterFirst")
    assert check(kata_dns, deployment, runsc) == []
    assert len(check(kata_dns, deployment, runsc, config={"kataRuntimePrefix": "vm-"})) == 1


# --- kata-clh-no-init-containers ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_kata_clh_no_init_containers_every_kind(kind: Kind) -> None:
    init = [{"name": "fetch-config", "image": "busybox"}]
    messages = check(kata_clh_no_init_containers, kind, kata_spec(runtimeClassName="kata-clh", initContainers=init))
    assert messages == [
        f"{who(kind)}: remove {kind.spec_path}.initContainers (fetch-config) and move that "
        "work into the entrypoint, or use runtimeClassName kata-qemu; kata-clh (Cloud "
        'Hypervisor) fails to start init containers with "File exists (os error 17)".'
    ]
    assert check(kata_clh_no_init_containers, kind, kata_spec(initContainers=init)) == []
    assert check(kata_clh_no_init_containers, kind, kata_spec(runtimeClassName="kata-clh")) == []
    assert check(kata_clh_no_init_containers, kind, kata_spec(runtimeClassName="kata-clh", initContainers=[])) == []


# --- sandbox-no-host-access -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_sandbox_no_host_access_every_kind(kind: Kind) -> None:
    assert check(sandbox_no_host_access, kind, kata_spec()) == []
    privileged = {"name": "root", "securityContext": {"privileged": True}}
    spec = kata_spec(
        hostNetwork=True,
        hostPID=True,
        hostIPC=True,
        initContainers=[privileged],
        ephemeralContainers=[{"name": "debug", "securityContext": {"privileged": True}}],
        volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
    )
    spec["containers"].append({"name": "sidecar", "securityContext": {"privileged": True}})
    messages = check(sandbox_no_host_access, kind, spec)
    path = kind.spec_path
    expected_fragments = [
        f"remove {path}.hostNetwork",
        f"remove {path}.hostPID",
        f"remove {path}.hostIPC",
        f"set {path}.initContainers[root].securityContext.privileged to false",
        f"set {path}.containers[sidecar].securityContext.privileged to false",
        f"set {path}.ephemeralContainers[debug].securityContext.privileged to false",
        f'remove the hostPath volume "docker" from {path}.volumes',
    ]
    assert len(messages) == len(expected_fragments), messages
    for message, fragment in zip(messages, expected_fragments, strict=True):
        assert message.startswith(f"{who(kind)}: {fragment}")
    # Not a sandbox: host access is another policy's business.
    assert check(sandbox_no_host_access, kind, spec, sandbox=False) == []


def test_sandbox_no_host_access_false_flags() -> None:
    spec = kata_spec(hostNetwork=False, hostPID=False, hostIPC=False)
    assert check(sandbox_no_host_access, KINDS[0], spec) == []


# --- nlb-cross-zone ---------------------------------------------------------------------------------


def _service(annotations: dict[str, str], spec_type: str = "LoadBalancer", **spec: Any) -> dict[str, Any]:
    return k8s(
        "v1",
        "Service",
        "litellm",
        {"type": spec_type, "ports": [{"port": 4000}], **spec},
        namespace="litellm",
        annotations=annotations,
    )


CROSS_ZONE = {LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=true"}


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
        ({}, {}, 0),  # in-tree classic ELB: not an NLB
    ],
)
def test_nlb_cross_zone_services(annotations: dict[str, str], spec: dict[str, Any], violations: int) -> None:
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, _service(annotations, **spec))
    assert outcome.unknown is None
    assert len(outcome) == violations, outcome.messages
    if violations:
        assert outcome.messages[0].startswith(
            "Service litellm/litellm: add load_balancing.cross_zone.enabled=true to the "
            "service.beta.kubernetes.io/aws-load-balancer-attributes annotation"
        )


def test_nlb_cross_zone_quiet_on_other_services() -> None:
    for spec_type in ("ClusterIP", "NodePort"):
        props = _service({LB_TYPE: "external"}, spec_type=spec_type)
        assert len(run_resource_policy(nlb_cross_zone, SERVICE, props)) == 0


def test_nlb_cross_zone_explicit_false_is_named() -> None:
    annotations = {LB_TYPE: "external", LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=false"}
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, _service(annotations))
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


def test_parse_attributes() -> None:
    assert parse_attributes(" a = b ,c=d,, junk ,e=") == {"a": "b", "c": "d", "e": ""}
    assert parse_attributes(None) == {}
    assert parse_attributes(["a=b"]) == {}


# --- nested-virtualization-nodes ---------------------------------------------------------------------


def _launch_template(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "kata-nodes",
        "cpuOptions": {"nestedVirtualization": "enabled"},
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2},
        "instanceType": "m8i.2xlarge",
    }
    base.update(props)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({}, []),
        ({"instanceType": None}, []),
        ({"instanceType": "c8i-flex.large"}, []),
        ({"instanceType": "R8I.xlarge"}, []),
        ({"instanceType": "m7i.large"}, ['instead of "m7i.large"']),
        ({"instanceType": "c8g.large"}, ['instead of "c8g.large"']),
        ({"metadataOptions": {"httpTokens": "optional"}}, ['httpTokens to "required"']),
        ({"metadataOptions": None}, ['httpTokens to "required"']),
        (
            {"instanceType": "t3.medium", "metadataOptions": None},
            ['instead of "t3.medium"', "IMDSv2"],
        ),
        ({"cpuOptions": {"nestedVirtualization": "disabled"}, "instanceType": "t3.medium"}, []),
        ({"cpuOptions": None, "metadataOptions": None}, []),
    ],
)
def test_nested_virtualization_nodes(props: dict[str, Any], expected: list[str]) -> None:
    outcome = run_resource_policy(
        nested_virtualization_nodes, LAUNCH_TEMPLATE, _launch_template(**props), name="kata-nodes"
    )
    assert outcome.unknown is None
    assert len(outcome) == len(expected), outcome.messages
    for message, fragment in zip(outcome.messages, expected, strict=True):
        assert message.startswith("LaunchTemplate kata-nodes: ") and fragment in message


def test_nested_virtualization_nodes_config() -> None:
    props = _launch_template(instanceType="m7i.large", metadataOptions=None)
    config = {"nestedVirtualizationFamilies": ["m7i"], "requireImdsv2": False}
    assert len(run_resource_policy(nested_virtualization_nodes, LAUNCH_TEMPLATE, props, config)) == 0


# --- kata-node-capacity (stack) -------------------------------------------------------------------


def _node_stack(
    instance_types: list[str] | None,
    *,
    link: str = "property",
    template_type: str | None = "m8i.xlarge",
) -> tuple[list[AnalyzerResource], AnalyzerResource]:
    lt = resource(LAUNCH_TEMPLATE, "kata-lt", _launch_template(instanceType=template_type))
    props: dict[str, Any] = {"clusterName": "agents", "launchTemplate": {"id": UNKNOWN, "version": "1"}}
    if instance_types is not None:
        props["instanceTypes"] = instance_types
    deps: dict[str, Any] = {}
    if link == "property":
        deps = {"property_dependencies": {"launchTemplate": [lt.urn]}, "dependencies": [lt.urn]}
    elif link == "dependency":
        deps = {"dependencies": [lt.urn]}
    elif link == "name":
        props["launchTemplate"] = {"name": "kata-nodes", "version": "$Latest"}
    group = resource(NODE_GROUP, "kata-ng", props, **deps)
    other_lt = resource(LAUNCH_TEMPLATE, "core-lt", {"name": "core", "instanceType": "t3.large"})
    core = resource(
        NODE_GROUP,
        "core-ng",
        {"instanceTypes": ["t3.large"], "launchTemplate": {"id": UNKNOWN, "version": "1"}},
        property_dependencies={"launchTemplate": [other_lt.urn]},
    )
    return [lt, group, other_lt, core], group


@pytest.mark.parametrize("link", ["property", "dependency", "name"])
def test_kata_node_capacity_node_groups(link: str) -> None:
    resources, group = _node_stack(["m8i.xlarge", "c7i.xlarge", "t3.medium"], link=link)
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.urns == [group.urn]
    assert outcome.messages[0].startswith(
        "NodeGroup kata-ng: use only c8i, m8i, r8i, c8i-flex, m8i-flex or r8i-flex instance "
        "types in instanceTypes (remove c7i.xlarge, t3.medium)"
    )
    resources, _ = _node_stack(["m8i.xlarge", "c8i-flex.large"], link=link)
    assert len(run_stack_policy(kata_node_capacity, resources)) == 0


def test_kata_node_capacity_node_group_without_instance_types() -> None:
    resources, _ = _node_stack(None)
    assert len(run_stack_policy(kata_node_capacity, resources)) == 0  # the template sets one
    resources, group = _node_stack(None, template_type=None)
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.urns == [group.urn]
    assert "EKS would use t3.medium" in outcome.messages[0]


def _node_pool(
    *,
    node_class: str = "kata",
    families: list[str] | None = None,
    taint: str | None = "kata",
    labels: dict[str, str] | None = None,
    extra_requirements: list[dict[str, Any]] | None = None,
) -> AnalyzerResource:
    requirements = list(extra_requirements or [])
    if families is not None:
        requirements.append({"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": families})
    spec: dict[str, Any] = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
        "requirements": requirements,
    }
    if taint:
        spec["taints"] = [{"key": taint, "effect": "NoSchedule"}]
    template = {"metadata": {"labels": labels or {}}, "spec": spec}
    return resource(NODE_POOL, "kata-pool", k8s("karpenter.sh/v1", "NodePool", "kata", {"template": template}))


def _node_class(name: str = "kata", nested: str | None = "enabled") -> AnalyzerResource:
    spec: dict[str, Any] = {"amiSelectorTerms": [{"alias": "al2023@latest"}], "role": "KarpenterNode"}
    if nested:
        spec["cpuOptions"] = {"nestedVirtualization": nested}
    return resource(NODE_CLASS, f"class-{name}", k8s("karpenter.k8s.aws/v1", "EC2NodeClass", name, spec))


@pytest.mark.parametrize(
    ("pool", "classes", "expected"),
    [
        (_node_pool(families=["c8i", "m8i", "r8i"]), [_node_class()], []),
        (_node_pool(taint=None, labels={"workload-type": "kata"}), [_node_class()], []),
        (_node_pool(), [], ['EC2NodeClass "kata" is not declared here']),
        (_node_pool(), [_node_class(nested="disabled")], ["on EC2NodeClass kata"]),
        (_node_pool(), [_node_class(nested=None)], ['nestedVirtualization to "enabled"']),
        (
            _node_pool(families=["m8i", "m7i", "c6a"]),
            [_node_class()],
            ["karpenter.k8s.aws/instance-family requirement (remove m7i, c6a)"],
        ),
        (
            _node_pool(
                extra_requirements=[
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": ["m8i.large", "m5.large"],
                    },
                    {"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": ["t3"]},
                ]
            ),
            [_node_class()],
            ["node.kubernetes.io/instance-type requirement (remove m5.large)"],
        ),
        # Not for Kata: no taint, no label.
        (_node_pool(taint=None, families=["t3"]), [], []),
        (_node_pool(taint="gpu", labels={"workload-type": "core"}), [], []),
    ],
)
def test_kata_node_capacity_node_pools(
    pool: AnalyzerResource, classes: list[AnalyzerResource], expected: list[str]
) -> None:
    outcome = run_stack_policy(kata_node_capacity, [pool, *classes])
    assert outcome.unknown is None
    assert len(outcome) == len(expected), outcome.messages
    for message, fragment in zip(outcome.messages, expected, strict=True):
        assert message.startswith("NodePool kata: ") and fragment in message
    assert all(u == pool.urn for u in outcome.urns)


def test_kata_node_capacity_computed_node_class_name() -> None:
    node_class = _node_class(name="kata-x1")
    pool = _node_pool(node_class=UNKNOWN)
    pool.property_dependencies = {"spec": [node_class.urn]}
    assert len(run_stack_policy(kata_node_capacity, [pool, node_class])) == 0
    unlinked = _node_pool(node_class=UNKNOWN)
    outcome = run_stack_policy(kata_node_capacity, [unlinked, node_class])
    assert len(outcome) == 0 and outcome.unknown is not None  # advisory, never mandatory


# --- unknowns, secrets, garbage ----------------------------------------------------------------


RESOURCE_POLICIES = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
STACK_POLICIES = [p for p in POLICIES if isinstance(p, StackValidationPolicy)]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_unknown_runtime_class_is_never_a_violation(kind: Kind) -> None:
    spec = kata_spec(runtimeClassName=UNKNOWN, hostNetwork=True)
    for policy in RESOURCE_POLICIES:
        outcome = run_resource_policy(policy, kind.resource_type, workload(kind, spec))
        if policy is sandbox_no_host_access:
            assert len(outcome) == 1  # hostNetwork is known and wrong
        else:
            assert len(outcome) == 0, (policy.name, outcome.messages)


def test_unknowns_keep_checking_the_known_parts() -> None:
    spec = kata_spec(
        runtimeClassName="kata-clh",
        dnsConfig={"nameservers": [UNKNOWN, "10.100.0.10"]},
        containers=[UNKNOWN, {"name": "b", "securityContext": {"privileged": True}}],
    )
    outcome = run_resource_policy(kata_dns, KINDS[1].resource_type, workload(KINDS[1], spec))
    assert len(outcome) == 1 and "10.100.0.10" in outcome.messages[0]
    assert outcome.unknown is not None and "nameservers" in outcome.unknown.message
    outcome = run_resource_policy(sandbox_no_host_access, KINDS[1].resource_type, workload(KINDS[1], spec))
    assert len(outcome) == 1 and "containers[b]" in outcome.messages[0]
    assert outcome.unknown is not None


def test_unknown_sandbox_label_decided_by_namespace() -> None:
    kind = KINDS[1]
    props = workload(kind, {"containers": []}, sandbox=False, labels={"agent-platform.io/sandbox": UNKNOWN})
    outcome = run_resource_policy(sandbox_runtime_class, kind.resource_type, props)
    assert len(outcome) == 0 and outcome.unknown is not None
    outcome = run_resource_policy(sandbox_runtime_class, kind.resource_type, props, {"sandboxNamespaces": ["tenant-a"]})
    assert len(outcome) == 1 and outcome.unknown is None


def test_secrets_are_read_through() -> None:
    kind = KINDS[1]
    spec = kata_spec(
        runtimeClassName=secret("kata-clh"),
        dnsConfig={"nameservers": [secret(VPC_DNS)]},
        hostNetwork=secret(False),
    )
    for policy in RESOURCE_POLICIES:
        assert len(run_resource_policy(policy, kind.resource_type, workload(kind, spec))) == 0
    spec["dnsConfig"] = secret({"nameservers": ["10.100.0.10"]})
    assert len(run_resource_policy(kata_dns, kind.resource_type, workload(kind, spec))) == 1


GARBAGE: list[Any] = [None, "garbage", 42, 1.5, True, [], [1, "x", None], {}, {"x": [None]}, UNKNOWN]


def _garbage_variants(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The properties with each nested value replaced, in turn, by each garbage value."""

    def paths(value: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        yield prefix
        if isinstance(value, dict):
            for key, child in value.items():
                yield from paths(child, (*prefix, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                yield from paths(child, (*prefix, index))

    for path in list(paths(props, ()))[1:]:
        for junk in GARBAGE:
            variant = copy.deepcopy(props)
            target = variant
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = junk
            yield variant


def _garbage_corpus() -> list[tuple[str, dict[str, Any]]]:
    spec = kata_spec(
        runtimeClassName="kata-clh",
        initContainers=[{"name": "i"}],
        hostNetwork=True,
        volumes=[{"name": "h", "hostPath": {"path": "/"}}],
    )
    corpus = [(kind.resource_type, workload(kind, spec)) for kind in (KINDS[0], KINDS[6], KINDS[8])]
    corpus.append((SERVICE, _service({LB_TYPE: "external", **CROSS_ZONE})))
    corpus.append((AWS_LB, {"loadBalancerType": "network", "enableCrossZoneLoadBalancing": True}))
    corpus.append((LAUNCH_TEMPLATE, _launch_template()))
    pool = _node_pool(families=["m8i"])
    corpus.append((NODE_POOL, pool.properties))
    return corpus


def test_garbage_never_raises() -> None:
    for resource_type, props in _garbage_corpus():
        for variant in [props, *_garbage_variants(props)]:
            for policy in RESOURCE_POLICIES:
                run_resource_policy(policy, resource_type, variant)  # must not raise
            stack = [
                resource(resource_type, "r", variant),
                resource(
                    NAMESPACE, "ns", k8s("v1", "Namespace", "tenant-a", labels={"agent-platform.io/sandbox": "true"})
                ),
                resource(NODE_GROUP, "ng", {"instanceTypes": variant.get("instanceType"), "launchTemplate": variant}),
                _node_class(),
            ]
            stack[2].property_dependencies = {"launchTemplate": [stack[0].urn]}
            for policy in STACK_POLICIES:
                run_stack_policy(policy, stack)


@pytest.mark.parametrize("resource_type", ["aws:s3/bucketV2:BucketV2", "kubernetes:core/v1:ConfigMap", NAMESPACE])
def test_quiet_on_unrelated_resources(resource_type: str) -> None:
    props = {"metadata": {"name": "x"}, "spec": {"template": {"spec": {"hostNetwork": True}}}}
    for policy in RESOURCE_POLICIES:
        assert len(run_resource_policy(policy, resource_type, props)) == 0


# --- the SDK speedups -------------------------------------------------------------------------


def test_struct_to_dict_matches_message_to_dict() -> None:
    value = {
        "a": [1, 2.5, "x", None, True, {"b": []}, []],
        "c": {},
        "d": {"e": {"f": False}},
        "g": -0.0,
        "h": 1e300,
    }
    message = struct_pb2.Struct()
    message.update(value)
    assert struct_to_dict(message) == json_format.MessageToDict(message)
    message["bad"] = float("inf")
    with pytest.raises(ValueError):
        struct_to_dict(message)


# --- through the analyzer gRPC protocol -------------------------------------------------------


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, project="agent-platform", stack="test") as process:
        process.configure()
        yield process


@pytest.fixture
def reconfigure(pack: PolicyPackProcess) -> Iterator[Any]:
    """Configure the shared pack with a user config for one test, then restore the defaults."""

    def apply(config: dict[str, Any]) -> None:
        pack.config = config
        pack.configure()

    yield apply
    pack.config = {}
    pack.configure()


def _workload_resource(kind: Kind, spec: Any, name: str = "hermes", **kwargs: Any) -> AnalyzerResource:
    return resource(kind.resource_type, name, workload(kind, spec, name=name, **kwargs))


def _levels(violations: list[Violation]) -> dict[str, str]:
    return {v.policy: v.enforcement_level for v in violations}


def test_grpc_info(pack: PolicyPackProcess) -> None:
    assert pack.info.name == POLICY_PACK_NAME
    assert [p.name for p in pack.info.policies] == [p.name for p in POLICIES]
    assert pack.plugin_version()


BAD_SPEC = kata_spec(
    runtimeClassName=None,
    dnsPolicy="ClusterFirst",
    hostPID=True,
)


def test_grpc_resource_rules_violating_and_compliant(pack: PolicyPackProcess) -> None:
    deployment = KINDS[1]
    spec = {k: v for k, v in BAD_SPEC.items() if v is not None}
    bad = pack.analyze(_workload_resource(deployment, spec))
    assert {(v.policy, v.enforcement_level) for v in bad} == {
        ("sandbox-runtime-class", "mandatory"),
        ("sandbox-no-host-access", "mandatory"),
    }
    assert all(v.urn == urn(deployment.resource_type, "hermes") for v in bad)
    runtime = next(v for v in bad if v.policy == "sandbox-runtime-class")
    assert runtime.message.splitlines()[-1] == (
        "Deployment tenant-a/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."
    )
    assert runtime.message.startswith(sandbox_runtime_class.description)

    clh = kata_spec(
        runtimeClassName="kata-clh",
        dnsPolicy="ClusterFirst",
        initContainers=[{"name": "init"}],
    )
    levels = _levels(pack.analyze(_workload_resource(KINDS[8], clh)))
    assert levels == {"kata-dns": "mandatory", "kata-clh-no-init-containers": "advisory"}

    nlb = resource(SERVICE, "litellm", _service({LB_TYPE: "external"}))
    assert _levels(pack.analyze(nlb)) == {"nlb-cross-zone": "mandatory"}
    lt = resource(LAUNCH_TEMPLATE, "kata-lt", _launch_template(instanceType="m7i.large"))
    assert _levels(pack.analyze(lt)) == {"nested-virtualization-nodes": "mandatory"}

    compliant = [_workload_resource(kind, kata_spec(), name=f"ok-{i}") for i, kind in enumerate(KINDS)] + [
        _workload_resource(KINDS[1], {"containers": [{"name": "web"}]}, sandbox=False, name="web"),
        resource(SERVICE, "ok-nlb", _service({LB_TYPE: "external", **CROSS_ZONE})),
        resource(SERVICE, "ok-cip", _service({}, spec_type="ClusterIP")),
        resource(AWS_LB, "alb", {"loadBalancerType": "application"}),
        resource(LAUNCH_TEMPLATE, "ok-lt", _launch_template()),
    ]
    assert pack.analyze_many(compliant) == []
    assert pack.analyze_stack(compliant) == []


def test_grpc_stack_rules_violating_and_compliant(pack: PolicyPackProcess) -> None:
    deployment = KINDS[1]
    bad_workload = _workload_resource(deployment, {"containers": []}, sandbox=False, name="plain")
    nodes, group = _node_stack(["m8i.large", "m5.large"])
    stack = [_namespace("tenant-a", True), bad_workload, *nodes, _node_pool(), _node_class(nested="disabled")]
    violations = pack.analyze_stack(stack)
    assert sorted((v.policy, v.urn) for v in violations) == sorted(
        [
            ("sandbox-namespace-runtime-class", bad_workload.urn),
            ("sandbox-egress-allowlist", urn(NAMESPACE, "tenant-a")),  # no default-deny egress policy
            ("kata-node-capacity", group.urn),
            ("kata-node-capacity", urn(NODE_POOL, "kata-pool")),
        ]
    )
    assert all(v.enforcement_level == "mandatory" for v in violations)

    good_nodes, _ = _node_stack(["m8i.large"])
    deny_egress = k8s("networking.k8s.io/v1", "NetworkPolicy", "deny", {"podSelector": {}, "policyTypes": ["Egress"]}, namespace="tenant-a")  # fmt: skip
    good = [
        _namespace("tenant-a", True),
        resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", "deny", deny_egress),
        _workload_resource(deployment, kata_spec(), sandbox=False, name="plain"),
        *good_nodes,
        _node_pool(families=["m8i"]),
        _node_class(),
    ]
    assert pack.analyze_stack(good) == []


def test_grpc_enforcement_level_overrides(pack: PolicyPackProcess, reconfigure: Any) -> None:
    bad = _workload_resource(KINDS[1], {k: v for k, v in BAD_SPEC.items() if v is not None})
    reconfigure({"sandbox-runtime-class": "advisory", "sandbox-no-host-access": {"enforcementLevel": "disabled"}})
    assert _levels(pack.analyze(bad)) == {"sandbox-runtime-class": "advisory"}
    reconfigure({"all": "advisory"})
    assert _levels(pack.analyze(bad)) == {
        "sandbox-runtime-class": "advisory",
        "sandbox-no-host-access": "advisory",
    }
    # A policy's own level wins over "all", as with --policy-pack-config.
    reconfigure({"all": "disabled", "sandbox-no-host-access": "mandatory"})
    assert _levels(pack.analyze(bad)) == {"sandbox-no-host-access": "mandatory"}
    stack = [_namespace("tenant-a", True), _workload_resource(KINDS[1], {}, sandbox=False, name="p")]
    assert pack.analyze_stack(stack) == []
    reconfigure({"kata-clh-no-init-containers": "mandatory"})
    clh = _workload_resource(KINDS[0], kata_spec(runtimeClassName="kata-clh", initContainers=[{"name": "i"}]))
    assert _levels(pack.analyze(clh)) == {"kata-clh-no-init-containers": "mandatory"}


def test_grpc_config_schema_defaults_are_applied(pack: PolicyPackProcess, reconfigure: Any) -> None:
    config = pack.policy_config()
    assert config["sandbox-runtime-class"] == (
        "mandatory",
        {"allowedRuntimeClasses": ["kata-clh", "kata-qemu", "kata-fc"], "sandboxNamespaces": [], "sandboxKinds": []},
    )
    assert config["kata-clh-no-init-containers"][0] == "advisory"
    # Only sandboxNamespaces is given: allowedRuntimeClasses still comes from the defaults.
    reconfigure({"sandbox-runtime-class": {"sandboxNamespaces": ["tenant-x"]}})
    plain = _workload_resource(KINDS[1], {"containers": []}, sandbox=False, namespace="tenant-x")
    (violation,) = pack.analyze(plain)
    assert violation.message.endswith(
        "Deployment tenant-x/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."
    )
    reconfigure({"kata-dns": {"serviceCidrs": ["10.1.0.0/16"]}})
    kata = _workload_resource(KINDS[1], kata_spec())
    assert _levels(pack.analyze(kata)) == {"kata-dns": "mandatory"}


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"kata-dns": {"serviceCidrs": "10.100.0.0/16"}}, "policy 'kata-dns'"),
        ({"kata-dns": {"serviceCidrs": ["not a cidr"]}}, "policy 'kata-dns'"),
        ({"sandbox-runtime-class": {"allowedRuntimeClasses": []}}, "policy 'sandbox-runtime-class'"),
        ({"nested-virtualization-nodes": {"requireImdsv2": "yes"}}, "policy 'nested-virtualization-nodes'"),
        ({"kata-dns": "strict"}, "not a valid enforcement level"),
        ({"kata-dns": {"enforcementLevel": "loud"}}, "not a valid enforcement level"),
        ({"no-such-policy": "advisory"}, "'no-such-policy' is not in the pack"),
        ({"kata-dns": 3}, "use a string or an object"),
    ],
)
def test_grpc_bad_config_is_rejected(pack: PolicyPackProcess, config: dict[str, Any], error: str) -> None:
    pack.config = config
    try:
        with pytest.raises(ValueError, match=error.replace("(", r"\(")):
            pack.configure()
    finally:
        pack.config = {}


def test_grpc_unknown_values_do_not_crash(pack: PolicyPackProcess) -> None:
    everything_unknown = [
        resource(kind.resource_type, f"u-{i}", {"metadata": UNKNOWN, "spec": UNKNOWN}) for i, kind in enumerate(KINDS)
    ]
    unknown_runtime = _workload_resource(KINDS[1], kata_spec(runtimeClassName=UNKNOWN), name="u")
    unknown_service = resource(SERVICE, "u-svc", _service({LB_TYPE: "external", LB_ATTRIBUTES: UNKNOWN}))
    resources = [*everything_unknown, unknown_runtime, unknown_service]
    violations = pack.analyze_many(resources) + pack.analyze_stack(resources)
    assert violations, "unknowns are reported as advisory notes"
    assert {v.enforcement_level for v in violations} == {"advisory"}
    assert all("can't be known during preview" in v.message for v in violations)
    # The pack is still alive and correct afterwards.
    assert pack.analyze(resource(SERVICE, "after", _service({LB_TYPE: "external", **CROSS_ZONE}))) == []


def test_grpc_secrets(pack: PolicyPackProcess) -> None:
    spec = kata_spec(runtimeClassName=secret("kata-clh"), dnsConfig=secret({"nameservers": [VPC_DNS]}))
    assert pack.analyze(_workload_resource(KINDS[2], spec)) == []
    spec["dnsConfig"] = secret({"nameservers": ["172.20.0.10"]})
    (violation,) = pack.analyze(_workload_resource(KINDS[2], spec))
    assert violation.policy == "kata-dns" and "172.20.0.10" in violation.message
    lt = resource(LAUNCH_TEMPLATE, "s-lt", _launch_template(metadataOptions=secret({"httpTokens": "required"})))
    assert pack.analyze(lt) == []


def test_grpc_analyze_many_keeps_input_order(pack: PolicyPackProcess) -> None:
    resources = [_workload_resource(KINDS[i % len(KINDS)], {"containers": []}, name=f"w{i}") for i in range(40)]
    sequential = [v for r in resources for v in pack.analyze(r)]
    assert pack.analyze_many(resources, workers=8) == sequential
    assert [v.urn for v in sequential] == [r.urn for r in resources]


def test_run_pack_and_speedups_off_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes, _ = _node_stack(["m5.large"])
    resources = [
        _namespace("tenant-a", True),
        _workload_resource(KINDS[1], {k: v for k, v in BAD_SPEC.items() if v is not None}),
        _workload_resource(KINDS[3], {}, sandbox=False, name="plain"),
        _workload_resource(KINDS[7], kata_spec(runtimeClassName=UNKNOWN), name="unknown"),
        resource(SERVICE, "nlb", _service({LB_TYPE: "nlb"})),
        *nodes,
    ]
    config = {"kata-clh-no-init-containers": "mandatory"}
    fast = run_pack(PACK_DIR, resources, config)
    monkeypatch.setenv("AGENT_POLICIES_SDK_SPEEDUPS", "0")
    slow = run_pack(PACK_DIR, resources, config)
    assert fast == slow
    assert len({v.policy for v in fast}) >= 5


def test_broken_pack_fails_with_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text("raise RuntimeError('policy pack is broken')\n")
    with pytest.raises(PolicyPackError, match="policy pack is broken"):
        PolicyPackProcess(tmp_path, startup_timeout=20)
    with pytest.raises(PolicyPackError, match="not a Python policy pack"):
        PolicyPackProcess(tmp_path / "missing")


def test_example_config_is_valid(pack: PolicyPackProcess) -> None:
    pack.config = json.loads((PACK_DIR / "example-config.json").read_text())
    try:
        levels = pack.policy_config()
        assert levels["kata-clh-no-init-containers"][0] == "mandatory"
    finally:
        pack.config = {}


def test_env_switch_is_documented() -> None:
    readme = (PACK_DIR / "README.md").read_text()
    assert "AGENT_POLICIES_SDK_SPEEDUPS" in readme
    for policy in POLICIES:
        assert f"`{policy.name}`" in readme, policy.name
        for key in policy.config_schema.properties:
            assert f"`{key}`" in readme, (policy.name, key)
    assert os.path.exists(PACK_DIR / "requirements.txt")


PROBE_PACK = """
import sys

sys.path.insert(0, {policies!r})
import pulumi
from agent_policies import sdk_speedups
from pulumi_policy import PolicyPack, ResourceValidationPolicy, StackValidationPolicy

assert sdk_speedups.install()


def probe(args, report_violation):
    report_violation(f"{{pulumi.get_project()}}/{{pulumi.get_stack()}} x={{args.props['x']}}")


def stack_probe(args, report_violation):
    report_violation(",".join(str(r.props["x"]) for r in args.resources))


PolicyPack(
    name="probe",
    policies=[
        ResourceValidationPolicy(name="first", description="d", validate=probe),
        ResourceValidationPolicy(name="second", description="d", validate=probe),
        StackValidationPolicy(name="stack", description="d", validate=stack_probe),
    ],
)
"""


def test_speedups_keep_sdk_behaviour(tmp_path: Path) -> None:
    """Runtime settings stay set on every request; no properties leak between requests."""
    (tmp_path / "__main__.py").write_text(PROBE_PACK.format(policies=str(PACK_DIR)))
    resources = [resource("test:index:Thing", f"t{i}", {"x": i}) for i in range(12)]
    with PolicyPackProcess(tmp_path, project="proj", stack="stk") as probe:
        probe.configure()
        messages = [v.message.splitlines()[-1] for v in probe.analyze_many(resources, workers=4)]
        assert messages == [f"proj/stk x={i}.0" for i in range(12) for _ in range(2)]
        (stack,) = probe.analyze_stack(resources)
        assert stack.message.splitlines()[-1] == ",".join(f"{i}.0" for i in range(12))


# --- the SDK speedups change nothing the policies or the CLI can see ----------------------------

WALK_PACK = """
import sys

sys.path.insert(0, {policies!r})
from collections.abc import Mapping, Sequence

from agent_policies import sdk_speedups
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError, _DictProxy, _ListProxy

sdk_speedups.install()


def kind(x):
    return (type(x).__name__ if not isinstance(x, (_DictProxy, _ListProxy)) else "proxy") + (
        "M" if isinstance(x, Mapping) else "S" if isinstance(x, Sequence) and not isinstance(x, str) else ""
    )


def walk(x, out):
    '''Everything a policy can read, the way it can read it.'''
    out.append(kind(x))
    if isinstance(x, Mapping):
        out.append(f"len={{len(x)}} keys={{list(x)}} missing={{x.get('missing', '-')}}")
        for key in x:
            try:
                value = x[key]
            except UnknownValueError as e:
                out.append(f"unknown {{key}}: {{e.message}} {{e.props}} {{e.unknown_type_sentinel}}")
                continue
            out.append(f"{{key}} in x: {{key in x}}")
            walk(value, out)
    elif isinstance(x, Sequence) and not isinstance(x, str):
        out.append(f"len={{len(x)}}")
        for index in (*range(len(x)), -1):
            try:
                walk(x[index], out)
            except UnknownValueError as e:
                out.append(f"unknown [{{index}}]: {{e.message}} {{e.props}}")
            except IndexError:
                out.append("empty")
    else:
        out.append(repr(sorted(vars(x).items())) if hasattr(x, "__dict__") else repr(x))


def validate(args, report_violation):
    out = [args.resource_type, args.urn, args.name, str(args.opts.protect), str(args.opts.parent)]
    walk(args.props, out)
    if args.provider is not None:
        out.append(args.provider.urn)
        walk(args.provider.props, out)
    report_violation("\\\\n".join(out))
    dict(args.props)  # raises on the first unknown value, like an unprepared policy would


async def validate_async(args, report_violation):
    report_violation(f"async {{args.urn}} {{args.get_config()}} {{dict(args.stack_tags)}}")


def not_applicable(args, report_violation):
    if args.name.endswith("3"):
        args.not_applicable("ends with 3")
    report_violation("applies")


def validate_stack(args, report_violation):
    out = []
    for r in args.resources:
        out.append(f"{{r.urn}} parent={{r.parent and r.parent.urn}} deps={{[d.urn for d in r.dependencies]}}")
        out.append(str({{k: [d.urn for d in v] for k, v in r.property_dependencies.items()}}))
        walk(r.props, out)
    report_violation("\\\\n".join(out))


def remediate(args):
    return {{**{{k: args.props["__target"][k] for k in args.props}}, "remediated": args.urn}}


PolicyPack(
    name="walk",
    policies=[
        ResourceValidationPolicy(name="walk", description="d", validate=validate),
        ResourceValidationPolicy(name="async", description="d", validate=validate_async),
        ResourceValidationPolicy(name="not-applicable", description="d", validate=not_applicable),
        ResourceValidationPolicy(name="remediate-only", description="d", remediate=lambda args: None),
        ResourceValidationPolicy(
            name="fixer", description="d", remediate=remediate, enforcement_level=EnforcementLevel.REMEDIATE
        ),
        ResourceValidationPolicy(
            name="off", description="d", validate=validate, enforcement_level=EnforcementLevel.DISABLED
        ),
        StackValidationPolicy(name="stack", description="d", validate=validate_stack),
        StackValidationPolicy(name="stack-na", description="d", validate=lambda args, report: args.not_applicable()),
    ],
)
"""

ASSET = {"4dabf18193072939515e22adb298388d": "c44067f5952c0a294b673a41bacd8c17", "text": "hello"}
ARCHIVE = {"4dabf18193072939515e22adb298388d": "0def7320c3a5731c473e5ecbe6d01bc7", "path": "/tmp/a.zip"}
UNKNOWNS = [
    UNKNOWN,
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
]


def _random_value(rng: Any, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice(["a", "", "true", 1, 2.5, -0.0, True, False, None, *UNKNOWNS])
    if roll < 0.6:
        return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(4))}
    if roll < 0.8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if roll < 0.92:
        return secret(_random_value(rng, depth + 1))
    return rng.choice([ASSET, ARCHIVE])


def _raw_responses(pack_dir: Path, requests: Any, speedups: str) -> list[bytes | str]:
    os.environ["AGENT_POLICIES_SDK_SPEEDUPS"] = speedups
    with PolicyPackProcess(pack_dir) as pack:
        pack.configure()
        pack.configure_stack({"team": "platform"})
        channel = pack._channel
        assert channel is not None

        def call(method: str) -> Any:
            return channel.unary_unary(f"/pulumirpc.Analyzer/{method}", request_serializer=None)

        analyze, stack, remediate = call("Analyze"), call("AnalyzeStack"), call("Remediate")
        return (
            [analyze(r) for r in requests.analyze] + [stack(requests.stack)] + [remediate(r) for r in requests.analyze]
        )


def test_lazy_decoding_matches_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte-identical responses for what policies read: unknowns, secrets, assets, stack links."""
    import random

    from tools.analyzer import encode_preview

    rng = random.Random(6)
    resources: list[AnalyzerResource] = []
    for i in range(80):
        deps = [r.urn for r in rng.sample(resources, min(len(resources), rng.randrange(3)))]
        resources.append(
            AnalyzerResource(
                type=rng.choice(["test:index:Thing", KINDS[1].resource_type]),
                urn=urn("test:index:Thing", f"r{i}"),
                name=f"r{i}",
                properties={f"p{j}": _random_value(rng) for j in range(rng.randrange(5))},
                parent=rng.choice(["", *(r.urn for r in resources[-2:])]),
                provider_urn=rng.choice(["", "urn:pulumi:test::agent-platform::pulumi:providers:aws::default"]),
                protect=rng.random() < 0.2,
                dependencies=deps,
                property_dependencies={"p0": deps[:1]} if deps else {},
            )
        )
    (tmp_path / "__main__.py").write_text(WALK_PACK.format(policies=str(PACK_DIR)))
    requests = encode_preview(resources)
    monkeypatch.setenv("AGENT_POLICIES_SDK_SPEEDUPS", "1")
    fast = _raw_responses(tmp_path, requests, "1")
    slow = _raw_responses(tmp_path, requests, "0")
    assert fast == slow
    assert sum(b"can't be known during preview" in r for r in fast if isinstance(r, bytes)) > 10


def test_bench_stack_agrees_in_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.bench_policy import generate

    resources = generate(600)
    fast = run_pack(PACK_DIR, resources)
    monkeypatch.setenv("AGENT_POLICIES_SDK_SPEEDUPS", "0")
    assert run_pack(PACK_DIR, resources) == fast
    assert {v.policy for v in fast} == {p.name for p in POLICIES}


@pytest.mark.parametrize("speedups", ["1", "0"])
def test_unimplemented_methods_stay_unimplemented(monkeypatch: pytest.MonkeyPatch, speedups: str) -> None:
    """The CLI reads UNIMPLEMENTED from Handshake as "an older analyzer": keep the status code."""
    import grpc
    from pulumi.runtime.proto import analyzer_pb2

    monkeypatch.setenv("AGENT_POLICIES_SDK_SPEEDUPS", speedups)
    with PolicyPackProcess(PACK_DIR) as pack, pytest.raises(grpc.RpcError) as error:
        pack.stub.Handshake(analyzer_pb2.AnalyzerHandshakeRequest())
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


class _Untouchable(dict):  # type: ignore[type-arg]
    """Properties that fail the test when a validator reads them."""

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError(f"read {key!r}")

    def get(self, key: Any, default: Any = None) -> Any:
        raise AssertionError(f"read {key!r}")


def test_declared_resource_types_cover_what_validators_read() -> None:
    """A policy is skipped for types its ``applies_to`` rejects: its validator must ignore them."""
    from pulumi_policy import ResourceValidationArgs

    from tests.policy_cases import Outcome, _options
    from tools.bench_policy import generate

    types = {r.type for r in generate(400)} | {k.resource_type for k in KINDS}
    types |= {SERVICE, NAMESPACE, LAUNCH_TEMPLATE, NODE_GROUP, AWS_LB, NODE_POOL, NODE_CLASS}
    types |= {"aws:alb/loadBalancer:LoadBalancer", "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:PodTemplate"}
    types |= {"kubernetes:core/v1:ReplicationController", "kubernetes:extensions/v1beta1:Deployment", "x:y:Z"}
    declared = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
    assert all(callable(getattr(p, "applies_to", None)) for p in declared)
    for policy in declared:
        skipped = sorted(t for t in types if not policy.applies_to(t))
        assert skipped and len(skipped) < len(types), policy.name
        outcome = Outcome()
        for resource_type in skipped:
            args = ResourceValidationArgs(resource_type, _Untouchable(), "urn", "n", _options(), None, {})
            policy.validate(args, outcome.report)
        assert outcome.messages == [], policy.name
