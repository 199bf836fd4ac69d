"""Tests for the CrossGuard policy pack in policies/.

Most cases call the validators directly (through the SDK's own decoding, see
tests/policy_cases.py); every rule also has a violating and a compliant case that goes
through the real analyzer gRPC protocol with tools.analyzer.PolicyPackProcess, started
once for the module.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_policies import POLICIES, POLICY_PACK_NAME
from agent_policies.dns import kata_dns
from agent_policies.host_access import sandbox_no_host_access
from agent_policies.kata import kata_clh_no_init_containers
from agent_policies.network import AnnotationError, nlb_cross_zone, parse_attributes, parse_string_map
from agent_policies.node_capacity import kata_node_capacity
from agent_policies.nodes import nested_virtualization_nodes
from agent_policies.runtime_class import sandbox_runtime_class
from agent_policies.sandbox_namespaces import sandbox_namespace_runtime_class
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from tests.policy_cases import (
    KINDS,
    PACK_DIR,
    PATCH_KINDS,
    UNKNOWN,
    VPC_DNS,
    Kind,
    defaults,
    k8s,
    k8s_provider,
    kata_spec,
    resource,
    run_resource_policy,
    run_stack_policy,
    secret,
    urn,
    workload,
)
from tests.tokens import LAUNCH_TEMPLATE, NODE_CLASS, NODE_GROUP, NODE_POOL, SERVICE
from tools.analyzer import (
    AnalyzerResource,
    PolicyPackError,
    PolicyPackProcess,
    Violation,
)
from tools.program import ROOT

KIND_IDS = [k.id for k in KINDS]
NAMESPACE = "kubernetes:core/v1:Namespace"
AWS_LB = "aws:lb/loadBalancer:LoadBalancer"
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
            assert "default" in spec, (policy.name, key)
            assert "description" in spec, (policy.name, key)


def test_main_only_builds_the_pack() -> None:
    source = (PACK_DIR / "__main__.py").read_text()
    assert "PolicyPack(" in source
    assert "def " not in source
    manifest = (PACK_DIR / "PulumiPolicy.yaml").read_text()
    assert "name: python" in manifest
    assert "virtualenv: venv" in manifest
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
    spec = kata_spec(runtimeClassName="kata-clh", dnsPolicy=dns_policy, dnsConfig=dns_config)  # None: absent
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
        ({}, {}, 1),  # the controller's webhook makes it an NLB (see test_nlb_cross_zone_without_webhook)
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


def test_nlb_cross_zone_without_webhook() -> None:
    config = {"serviceMutatorWebhook": False}
    assert len(run_resource_policy(nlb_cross_zone, SERVICE, _service({}), config)) == 0  # in-tree classic ELB
    props = _service({}, loadBalancerClass="example.com/other")
    assert len(run_resource_policy(nlb_cross_zone, SERVICE, props)) == 0  # another controller's class


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
        assert message.startswith("LaunchTemplate kata-nodes: ")
        assert fragment in message


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
        assert message.startswith("NodePool kata: ")
        assert fragment in message
    assert all(u == pool.urn for u in outcome.urns)


def test_kata_node_capacity_computed_node_class_name() -> None:
    node_class = _node_class(name="kata-x1")
    pool = _node_pool(node_class=UNKNOWN)
    pool.property_dependencies = {"spec": [node_class.urn]}
    assert len(run_stack_policy(kata_node_capacity, [pool, node_class])) == 0
    unlinked = _node_pool(node_class=UNKNOWN)
    outcome = run_stack_policy(kata_node_capacity, [unlinked, node_class])
    assert len(outcome) == 0
    assert outcome.unknown is not None


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
    assert len(outcome) == 1
    assert "10.100.0.10" in outcome.messages[0]
    assert outcome.unknown is not None
    assert "nameservers" in outcome.unknown.message
    outcome = run_resource_policy(sandbox_no_host_access, KINDS[1].resource_type, workload(KINDS[1], spec))
    assert len(outcome) == 1
    assert "containers[b]" in outcome.messages[0]
    assert outcome.unknown is not None


def test_unknown_sandbox_label_decided_by_namespace() -> None:
    kind = KINDS[1]
    props = workload(kind, {"containers": []}, sandbox=False, labels={"agent-platform.io/sandbox": UNKNOWN})
    outcome = run_resource_policy(sandbox_runtime_class, kind.resource_type, props)
    assert len(outcome) == 0
    assert outcome.unknown is not None
    outcome = run_resource_policy(sandbox_runtime_class, kind.resource_type, props, {"sandboxNamespaces": ["tenant-a"]})
    assert len(outcome) == 1
    assert outcome.unknown is None


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
    corpus = [(kind.resource_type, workload(kind, spec)) for kind in (KINDS[0], KINDS[6], KINDS[8], PATCH_KINDS[1])]
    corpus.append((SERVICE, _service({LB_TYPE: "external", **CROSS_ZONE})))
    tg = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
    legacy = "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled"
    corpus.append(
        (SERVICE, _service({legacy: "true", tg: "a=b", f"{tg}.4000": "load_balancing.cross_zone.enabled=true"}))
    )
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


def test_garbage_providers_never_raise() -> None:
    inputs = {"namespace": "tenant-a", "kubeconfig": {"contexts": [{"name": "c", "context": {"namespace": "x"}}]}}
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    for variant in [inputs, *_garbage_variants(inputs)]:
        provider = k8s_provider("p", **variant)
        for policy in RESOURCE_POLICIES:
            config = {"sandboxNamespaces": ["tenant-a"]} if "sandboxNamespaces" in defaults(policy) else None
            run_resource_policy(policy, KINDS[1].resource_type, props, config, provider=provider)
        namespace = resource(
            NAMESPACE, "ns", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=provider
        )
        stack = [provider, namespace, resource(KINDS[1].resource_type, "w", props, provider=provider)]
        for policy in STACK_POLICIES:
            run_stack_policy(policy, stack)


@pytest.mark.parametrize("resource_type", ["aws:s3/bucketV2:BucketV2", "kubernetes:core/v1:ConfigMap", NAMESPACE])
def test_quiet_on_unrelated_resources(resource_type: str) -> None:
    props = {"metadata": {"name": "x"}, "spec": {"template": {"spec": {"hostNetwork": True}}}}
    for policy in RESOURCE_POLICIES:
        assert len(run_resource_policy(policy, resource_type, props)) == 0


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
    deny_egress = k8s(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "deny",
        {"podSelector": {}, "policyTypes": ["Egress"]},
        namespace="tenant-a",
    )
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
    assert violation.policy == "kata-dns"
    assert "172.20.0.10" in violation.message
    lt = resource(LAUNCH_TEMPLATE, "s-lt", _launch_template(metadataOptions=secret({"httpTokens": "required"})))
    assert pack.analyze(lt) == []


def test_grpc_analyze_many_keeps_input_order(pack: PolicyPackProcess) -> None:
    resources = [_workload_resource(KINDS[i % len(KINDS)], {"containers": []}, name=f"w{i}") for i in range(40)]
    sequential = [v for r in resources for v in pack.analyze(r)]
    assert pack.analyze_many(resources, workers=8) == sequential
    assert [v.urn for v in sequential] == [r.urn for r in resources]


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


def test_readme_documents_every_policy_and_key() -> None:
    readme = (PACK_DIR / "README.md").read_text()
    for policy in POLICIES:
        assert f"`{policy.name}`" in readme, policy.name
        for key in policy.config_schema.properties:
            assert f"`{key}`" in readme, (policy.name, key)
    assert (PACK_DIR / "pyproject.toml").exists()
    assert (PACK_DIR / "uv.lock").exists()


class _Untouchable(dict):  # type: ignore[type-arg]
    """Properties that fail the test when a validator reads them."""

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError(f"read {key!r}")

    def get(self, key: Any, default: Any = None) -> Any:  # noqa: ARG002 - dict.get's signature
        raise AssertionError(f"read {key!r}")


def test_validators_ignore_other_resource_types_without_reading_them() -> None:
    """Each resource policy declares its types (``common.applies_to``); its validator returns at once,
    without reading the properties, for every other type (the SDK calls it for every resource)."""
    from pulumi_policy import ResourceValidationArgs

    from tests.policy_cases import Outcome, _options

    types = {k.resource_type for k in KINDS} | {k.resource_type for k in PATCH_KINDS}
    types |= {"aws:s3/bucketV2:BucketV2", "aws:iam/role:Role", "aws:ec2/securityGroup:SecurityGroup"}
    types |= {SERVICE, NAMESPACE, LAUNCH_TEMPLATE, NODE_GROUP, AWS_LB, NODE_POOL, NODE_CLASS}
    types |= {"aws:alb/loadBalancer:LoadBalancer", "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:PodTemplate"}
    types |= {"kubernetes:core/v1:ReplicationController", "kubernetes:extensions/v1beta1:Deployment", "x:y:Z"}
    types |= {"kubernetes:core/v1:ConfigMapPatch", "kubernetes:core/v1:ServicePatch", "pulumi:providers:kubernetes"}
    declared = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
    assert all(callable(getattr(p, "applies_to", None)) for p in declared)
    for policy in declared:
        skipped = sorted(t for t in types if not policy.applies_to(t))
        assert skipped, policy.name
        assert len(skipped) < len(types), policy.name
        outcome = Outcome()
        for resource_type in skipped:
            args = ResourceValidationArgs(resource_type, _Untouchable(), "urn", "n", _options(), None, {})
            policy.validate(args, outcome.report)
        assert outcome.messages == [], policy.name


# --- issue 13: server-side-apply patches ------------------------------------------------------

PATCH_IDS = [k.id for k in PATCH_KINDS]


def _patch(kind: Kind, spec: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return workload(kind, spec, **kwargs)


@pytest.mark.parametrize("kind", PATCH_KINDS, ids=PATCH_IDS)
def test_patches_are_workloads(kind: Kind) -> None:
    """A patch that sets a bad field on a sandbox is reported; a field it omits is not a violation."""
    who_ = f"{kind.kind} tenant-a/hermes"
    assert check(sandbox_runtime_class, kind, {"runtimeClassName": "runc"}) == [
        f'{who_}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, kata-fc instead of "runc".'
    ]
    assert check(sandbox_runtime_class, kind, {"containers": [{"name": "agent", "image": "x:2"}]}) == []
    assert check(sandbox_runtime_class, kind, {"runtimeClassName": "kata-clh"}) == []
    host = check(
        sandbox_no_host_access,
        kind,
        {
            "hostNetwork": True,
            "hostPID": "true",
            "containers": [{"name": "agent", "securityContext": {"privileged": True}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        },
    )
    assert [m.split(": ", 1)[1].split(" ", 2)[:2] for m in host] == [
        ["remove", f"{kind.spec_path}.hostNetwork"],
        ["remove", f"{kind.spec_path}.hostPID"],
        ["set", f"{kind.spec_path}.containers[agent].securityContext.privileged"],
        ["remove", "the"],
    ]
    assert all(m.startswith(who_) for m in host)
    assert check(sandbox_no_host_access, kind, {"hostNetwork": False}) == []
    assert check(sandbox_no_host_access, kind, {}) == []
    # kata-dns: judged on the fields the patch sets, Kata by runtime class or (left alone) by the sandbox label.
    assert len(check(kata_dns, kind, {"runtimeClassName": "kata-qemu", "dnsPolicy": "ClusterFirst"})) == 1
    assert len(check(kata_dns, kind, {"dnsPolicy": "ClusterFirst"})) == 1
    assert len(check(kata_dns, kind, {"dnsConfig": {"nameservers": ["172.20.0.10"]}})) == 1
    assert len(check(kata_dns, kind, {"dnsConfig": {"nameservers": []}})) == 1
    assert check(kata_dns, kind, {"dnsPolicy": "None"}) == []
    assert check(kata_dns, kind, {"containers": [{"name": "agent"}]}) == []
    assert check(kata_dns, kind, {"dnsPolicy": "ClusterFirst"}, sandbox=False) == []
    assert len(check(kata_clh_no_init_containers, kind, {"runtimeClassName": "kata-clh", "initContainers": [{}]})) == 1


def test_patch_sandbox_by_namespace_and_kind() -> None:
    kind = PATCH_KINDS[1]  # DeploymentPatch
    config = {"sandboxNamespaces": ["tenant-a"]}
    assert len(check(sandbox_runtime_class, kind, {"runtimeClassName": "runc"}, sandbox=False, config=config)) == 1
    assert check(sandbox_runtime_class, kind, {"runtimeClassName": "runc"}, sandbox=False) == []
    sandbox_patch = next(k for k in PATCH_KINDS if k.kind == "SandboxPatch")
    config = {"sandboxKinds": ["Sandbox"]}
    assert len(check(sandbox_no_host_access, sandbox_patch, {"hostIPC": True}, sandbox=False, config=config)) == 1


def _deployment(name: str, spec: dict[str, Any], *, sandbox: bool, namespace: str = "tenant-a", **kw: Any) -> Any:
    kind = KINDS[1]
    return resource(kind.resource_type, name, workload(kind, spec, sandbox=sandbox, namespace=namespace), **kw)


def _deployment_patch(name: str, spec: dict[str, Any], namespace: str = "tenant-a", **kw: Any) -> AnalyzerResource:
    kind = PATCH_KINDS[1]
    props = workload(kind, spec, sandbox=False, namespace=namespace, name="hermes")
    return resource(kind.resource_type, name, props, **kw)


def test_stack_patch_of_a_sandbox_workload_in_the_stack() -> None:
    cluster_a = k8s_provider("a", kubeconfig="cluster-a")
    cluster_b = k8s_provider("b", kubeconfig="cluster-b")
    target = _deployment("hermes", kata_spec(), sandbox=True, provider=cluster_a)
    bad = _deployment_patch("hermes-runc", {"runtimeClassName": "runc", "hostNetwork": True}, provider=cluster_a)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [cluster_a, cluster_b, target, bad])
    assert outcome.urns == [bad.urn, bad.urn]
    assert outcome.messages[0].startswith(
        "DeploymentPatch tenant-a/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, "
        'kata-fc instead of "runc". It patches Deployment tenant-a/hermes, a sandbox'
    )
    assert "remove spec.template.spec.hostNetwork" in outcome.messages[1]
    # Same name on another cluster, in another namespace, or a patch that leaves the fields alone: not this sandbox.
    other_cluster = _deployment_patch("p1", {"runtimeClassName": "runc"}, provider=cluster_b)
    other_namespace = _deployment_patch("p2", {"runtimeClassName": "runc"}, namespace="tenant-b", provider=cluster_a)
    harmless = _deployment_patch("p3", {"containers": [{"name": "agent", "image": "x:2"}]}, provider=cluster_a)
    resources = [cluster_a, cluster_b, target, other_cluster, other_namespace, harmless]
    assert run_stack_policy(sandbox_namespace_runtime_class, resources).messages == []


def test_stack_patch_in_a_sandbox_namespace() -> None:
    patch = _deployment_patch("p", {"runtimeClassName": "runc"})
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [_namespace("tenant-a", True), patch])
    assert outcome.urns == [patch.urn]
    assert "Namespace tenant-a is a sandbox namespace" in outcome.messages[0]
    leaves_it = _deployment_patch("q", {"replicas": 2})
    assert len(run_stack_policy(sandbox_namespace_runtime_class, [_namespace("tenant-a", True), leaves_it])) == 0


def test_grpc_patches(pack: PolicyPackProcess) -> None:
    kind = PATCH_KINDS[3]  # DaemonSetPatch
    bad = resource(kind.resource_type, "ds", workload(kind, {"runtimeClassName": "runc", "hostNetwork": True}))
    assert _levels(pack.analyze(bad)) == {"sandbox-runtime-class": "mandatory", "sandbox-no-host-access": "mandatory"}
    fine = resource(kind.resource_type, "ds-ok", workload(kind, {"containers": [{"name": "agent", "image": "x:2"}]}))
    assert pack.analyze(fine) == []
    target = _deployment("hermes", kata_spec(), sandbox=True)
    patch = _deployment_patch("hermes-runc", {"runtimeClassName": "runc"})
    assert [(v.policy, v.urn) for v in pack.analyze_stack([target, patch])] == [
        ("sandbox-namespace-runtime-class", patch.urn)
    ]


# --- issue 13: the provider's default namespace -----------------------------------------------

KUBECONFIG_YAML = """
apiVersion: v1
kind: Config
current-context: main
contexts:
- name: main
  context: {cluster: c, user: u, namespace: tenant-a}
- name: other
  context: {cluster: c, user: u}
"""


@pytest.mark.parametrize(
    ("inputs", "sandbox"),
    [
        ({"namespace": "tenant-a"}, True),
        ({"namespace": "tenant-b"}, False),
        ({}, False),  # "default"
        ({"kubeconfig": KUBECONFIG_YAML}, True),
        ({"kubeconfig": KUBECONFIG_YAML, "context": "other"}, False),
        ({"kubeconfig": KUBECONFIG_YAML, "namespace": "tenant-b"}, False),  # the provider input wins
        (
            {
                "kubeconfig": json.dumps(
                    {"current-context": "x", "contexts": [{"name": "x", "context": {"namespace": "tenant-a"}}]}
                )
            },
            True,
        ),  # noqa: E501
        ({"kubeconfig": "not: [a kubeconfig"}, False),
    ],
)
def test_provider_default_namespace_resource_policies(inputs: dict[str, Any], sandbox: bool) -> None:
    provider = k8s_provider("cluster", **inputs)
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    config = {"sandboxNamespaces": ["tenant-a"]}
    outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)
    assert outcome.unknown is None
    assert len(outcome) == int(sandbox), outcome.messages
    # metadata.namespace, when set, wins over the provider's default.
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace="tenant-c")
    assert (
        len(run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)) == 0
    )


def test_provider_default_namespace_from_a_kubeconfig_file(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG_YAML)
    props = workload(KINDS[0], {"hostNetwork": True}, sandbox=False, namespace=None)
    outcome = run_resource_policy(
        sandbox_no_host_access,
        KINDS[0].resource_type,
        props,
        {"sandboxNamespaces": ["tenant-a"]},
        provider=k8s_provider("file", kubeconfig=str(path)),
    )
    assert len(outcome) == 1


def test_provider_default_namespace_unknown() -> None:
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    config = {"sandboxNamespaces": ["tenant-a"]}
    for inputs in ({"namespace": UNKNOWN}, {"kubeconfig": UNKNOWN}):
        provider = k8s_provider("cluster", **inputs)
        outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)
        assert outcome.messages == []
        assert outcome.unknown is not None
    # Not needed when nothing depends on it.
    provider = k8s_provider("cluster", namespace=UNKNOWN)
    outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, provider=provider)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_provider_default_namespace_stack_policy() -> None:
    provider = k8s_provider("cluster", namespace="tenant-a")
    namespace = resource(
        NAMESPACE, "ns", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=provider
    )
    plain = _deployment("plain", {"runtimeClassName": "runc"}, sandbox=False, namespace=None, provider=provider)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [provider, namespace, plain])
    assert outcome.urns == [plain.urn]
    other = k8s_provider("other")
    elsewhere = _deployment("plain2", {"runtimeClassName": "runc"}, sandbox=False, namespace=None, provider=other)
    assert len(run_stack_policy(sandbox_namespace_runtime_class, [provider, other, namespace, elsewhere])) == 0


def test_grpc_provider_default_namespace(pack: PolicyPackProcess, reconfigure: Any) -> None:
    reconfigure({"sandbox-runtime-class": {"sandboxNamespaces": ["tenant-a"]}})
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    bad = resource(KINDS[1].resource_type, "p", props, provider=k8s_provider("c", namespace="tenant-a"))
    assert _levels(pack.analyze(bad)) == {"sandbox-runtime-class": "mandatory"}
    ok = resource(KINDS[1].resource_type, "q", props, provider=k8s_provider("d", namespace="web"))
    assert pack.analyze(ok) == []


# --- issue 13: two clusters in one stack ------------------------------------------------------

SANDBOX = "agent-platform.io/sandbox"


def _cluster_stack(
    a: AnalyzerResource, b: AnalyzerResource, *, workload_on: AnalyzerResource
) -> tuple[list[AnalyzerResource], AnalyzerResource]:
    namespace = resource(NAMESPACE, "ns-a", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=a)
    plain_b = resource(NAMESPACE, "ns-b", k8s("v1", "Namespace", "tenant-a"), provider=b)
    web = _deployment("web", {"containers": [{"name": "web"}]}, sandbox=False, provider=workload_on)
    return [a, b, namespace, plain_b, web], web


def test_namespaces_match_per_cluster() -> None:
    a = k8s_provider("a", kubeconfig="apiVersion: v1\nclusters: [{name: a}]")
    b = k8s_provider("b", kubeconfig="apiVersion: v1\nclusters: [{name: b}]")
    resources, web = _cluster_stack(a, b, workload_on=b)
    assert run_stack_policy(sandbox_namespace_runtime_class, resources).messages == []  # the old false positive
    resources, web = _cluster_stack(a, b, workload_on=a)
    assert run_stack_policy(sandbox_namespace_runtime_class, resources).urns == [web.urn]
    # Two providers of one cluster (same kubeconfig, or kubeconfig from the same EKS cluster) are one cluster.
    same = k8s_provider("a2", kubeconfig="apiVersion: v1\nclusters: [{name: a}]")
    resources, web = _cluster_stack(a, same, workload_on=same)
    assert run_stack_policy(sandbox_namespace_runtime_class, resources).urns == [web.urn]
    eks = resource("eks:index:Cluster", "agents", {})
    a_out = k8s_provider("a-out", kubeconfig=UNKNOWN)
    b_out = k8s_provider("b-out", kubeconfig=UNKNOWN)
    for p in (a_out, b_out):
        p.property_dependencies = {"kubeconfig": [eks.urn]}
    resources, web = _cluster_stack(a_out, b_out, workload_on=b_out)
    assert run_stack_policy(sandbox_namespace_runtime_class, [eks, *resources]).urns == [web.urn]
    c_out = k8s_provider("c-out", kubeconfig=UNKNOWN)  # unknown kubeconfig, no known source: its own cluster
    resources, web = _cluster_stack(a_out, c_out, workload_on=c_out)
    assert run_stack_policy(sandbox_namespace_runtime_class, [eks, *resources]).messages == []


def test_computed_namespace_of_another_cluster() -> None:
    a = k8s_provider("a", kubeconfig="a")
    b = k8s_provider("b", kubeconfig="b")
    namespace = resource(NAMESPACE, "ns-a", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=a)
    props = workload(KINDS[1], {"containers": []}, sandbox=False, namespace=UNKNOWN)
    on_b = resource(KINDS[1].resource_type, "w", props, provider=b, property_dependencies={"metadata": [namespace.urn]})
    assert run_stack_policy(sandbox_namespace_runtime_class, [a, b, namespace, on_b]).messages == []
    on_a = resource(KINDS[1].resource_type, "v", props, provider=a, property_dependencies={"metadata": [namespace.urn]})
    assert run_stack_policy(sandbox_namespace_runtime_class, [a, b, namespace, on_a]).urns == [on_a.urn]


def test_grpc_two_clusters(pack: PolicyPackProcess) -> None:
    a = k8s_provider("a", kubeconfig="a")
    b = k8s_provider("b", kubeconfig="b")

    def runtime_class_urns(resources: list[AnalyzerResource]) -> list[str]:
        return [v.urn for v in pack.analyze_stack(resources) if v.policy == "sandbox-namespace-runtime-class"]

    resources, _ = _cluster_stack(a, b, workload_on=b)
    assert runtime_class_urns(resources) == []
    resources, web = _cluster_stack(a, b, workload_on=a)
    assert runtime_class_urns(resources) == [web.urn]


# --- issue 13: IPv6 spellings of IPv4 nameservers ---------------------------------------------


@pytest.mark.parametrize(
    ("nameserver", "inside"),
    [
        ("::ffff:0:172.20.0.10", True),  # IPv4-translated
        ("::172.20.0.10", True),  # IPv4-compatible
        ("64:ff9b::172.20.0.10", True),  # NAT64
        ("2002:ac14:000a::1", True),  # 6to4
        ("64:ff9b::10.1.0.2", False),
        ("fd00::a", False),
        ("::1", False),
        ("::", False),
    ],
)
def test_kata_dns_ipv6_spellings_of_ipv4(nameserver: str, inside: bool) -> None:
    spec = kata_spec(dnsConfig={"nameservers": [nameserver]})
    messages = check(kata_dns, KINDS[1], spec)
    assert len(messages) == int(inside), messages
    if inside:
        assert f"replace nameserver {nameserver} in spec.template.spec.dnsConfig.nameservers" in messages[0]
        assert "(IPv4 " in messages[0]
        assert "inside the service CIDR" in messages[0]


@pytest.mark.parametrize(
    ("nameserver", "ipv4"),
    [
        ("::ffff:172.20.0.10", "172.20.0.10"),
        ("::FFFF:AC14:000A", "172.20.0.10"),
        ("0:0:0:0:0:ffff:172.20.0.10", "172.20.0.10"),
        ("::ffff:10.100.0.10", "10.100.0.10"),
        ("::ffff:10.1.0.2", "10.1.0.2"),  # even the VPC resolver: admission (CEL ip()) refuses every mapped form
    ],
)
def test_kata_dns_refuses_ipv4_mapped_nameservers(nameserver: str, ipv4: str) -> None:
    (message,) = check(kata_dns, KINDS[1], kata_spec(dnsConfig={"nameservers": [nameserver]}))
    assert (
        f"replace nameserver {nameserver} in spec.template.spec.dnsConfig.nameservers with the plain IPv4 address {ipv4}"
        in message
    )


def test_kata_dns_ipv6_service_cidr() -> None:
    spec = kata_spec(dnsConfig={"nameservers": ["fd00:10:96::a", "10.1.0.2"]})
    config = {"serviceCidrs": ["fd00:10:96::/112"]}
    assert len(check(kata_dns, KINDS[0], spec, config=config)) == 1


def test_grpc_kata_dns_mapped_ipv4(pack: PolicyPackProcess) -> None:
    spec = kata_spec(dnsConfig={"nameservers": ["::ffff:172.20.0.10"]})
    (violation,) = pack.analyze(_workload_resource(KINDS[2], spec))
    assert violation.policy == "kata-dns"
    assert "the plain IPv4 address 172.20.0.10" in violation.message


# --- issue 13: NLB cross-zone as the AWS Load Balancer Controller decides ----------------------

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
    props = _service({LB_TYPE: "external", **annotations})
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
    props = _service({LB_TYPE: "external", LB_ATTRIBUTES: ON, f"{TG_ATTRIBUTES}.4000": OFF})
    props["spec"]["ports"] = UNKNOWN
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, props)
    assert outcome.messages == []
    assert outcome.unknown is not None
    props = _service({LB_TYPE: "external", LB_ATTRIBUTES: ON, LEGACY_CROSS_ZONE: UNKNOWN})
    outcome = run_resource_policy(nlb_cross_zone, SERVICE, props)
    assert outcome.messages == []
    assert outcome.unknown is not None


def test_grpc_nlb_cross_zone(pack: PolicyPackProcess, reconfigure: Any) -> None:
    legacy_off = resource(SERVICE, "legacy", _service({LB_TYPE: "external", LEGACY_CROSS_ZONE: "false", **CROSS_ZONE}))
    (violation,) = pack.analyze(legacy_off)
    assert "take precedence" in violation.message
    spaced = resource(
        SERVICE, "spaced", _service({LB_TYPE: "external", LB_ATTRIBUTES: "load_balancing.cross_zone.enabled = true"})
    )  # noqa: E501
    assert pack.analyze(spaced) == []
    reconfigure({"nlb-cross-zone": {"awsLoadBalancerControllerVersion": "v2.14.0"}})
    assert _levels(pack.analyze(spaced)) == {"nlb-cross-zone": "mandatory"}
    pack.config = {"nlb-cross-zone": {"awsLoadBalancerControllerVersion": "latest"}}
    with pytest.raises(ValueError, match="policy 'nlb-cross-zone'"):
        pack.configure()


# --- issue 13: node groups and NodePools -------------------------------------------------------


@pytest.mark.parametrize("link", ["property", "dependency"])
def test_node_group_with_unknown_launch_template(link: str) -> None:
    resources, group = _node_stack(["m8i.xlarge", "m5.large"], link=link)
    group.properties["launchTemplate"] = UNKNOWN
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.urns == [group.urn]
    assert "(remove m5.large)" in outcome.messages[0]
    resources, group = _node_stack(["m8i.xlarge"], link=link)
    group.properties["launchTemplate"] = UNKNOWN
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_node_group_with_unknown_launch_template_and_no_link() -> None:
    resources, group = _node_stack(["m5.large"], link="none")
    group.properties["launchTemplate"] = UNKNOWN
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is not None
    # The core group's unknown template is known not to be a nested-virtualization one.
    core = next(r for r in resources if r.name == "core-ng")
    core.properties["launchTemplate"] = UNKNOWN
    others = [r for r in resources if r is not group]
    outcome = run_stack_policy(kata_node_capacity, others)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_grpc_node_group_with_unknown_launch_template(pack: PolicyPackProcess) -> None:
    resources, group = _node_stack(["c7i.large"])
    group.properties["launchTemplate"] = UNKNOWN
    assert [(v.policy, v.urn, v.enforcement_level) for v in pack.analyze_stack(resources)] == [
        ("kata-node-capacity", group.urn, "mandatory")
    ]


FAMILY = "karpenter.k8s.aws/instance-family"
TYPE = "node.kubernetes.io/instance-type"


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ([{"key": FAMILY, "operator": "NotIn", "values": ["t3"]}], ["karpenter.k8s.aws/instance-family NotIn"]),
        ([{"key": FAMILY, "operator": "Exists"}], ["instance-family Exists does not confine"]),
        ([{"key": FAMILY, "operator": "DoesNotExist"}], ["DoesNotExist"]),
        ([{"key": TYPE, "operator": "Gt", "values": ["1"]}], ["node.kubernetes.io/instance-type Gt"]),
        ([{"key": TYPE, "operator": "Lt", "values": ["9"]}], ["Lt"]),
        (
            [{"key": "beta.kubernetes.io/instance-type", "operator": "NotIn", "values": ["m5.large"]}],
            ["beta.kubernetes.io/instance-type NotIn"],
        ),  # noqa: E501
        (
            [
                {"key": FAMILY, "operator": "NotIn", "values": ["t3"]},
                {"key": FAMILY, "operator": "In", "values": ["m8i"]},
            ],
            [],
        ),  # noqa: E501
        ([{"key": FAMILY, "operator": "Exists"}, {"key": TYPE, "operator": "In", "values": ["c8i.large"]}], []),
        (
            [{"key": "beta.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]}],
            ["(remove m5.large)"],
        ),  # noqa: E501
        (
            [{"key": FAMILY, "operator": "Exists"}, {"key": FAMILY, "operator": "In", "values": ["m8i", "m7i"]}],
            ["(remove m7i)"],
        ),  # noqa: E501
        ([{"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["7"]}], []),  # other keys
        ([], []),
    ],
)
def test_kata_node_pool_requirement_operators(requirements: list[dict[str, Any]], expected: list[str]) -> None:
    pool = _node_pool(extra_requirements=requirements)
    outcome = run_stack_policy(kata_node_capacity, [pool, _node_class()])
    assert outcome.unknown is None
    assert len(outcome) == len(expected), outcome.messages
    for message, fragment in zip(outcome.messages, expected, strict=True):
        assert message.startswith("NodePool kata: ")
        assert fragment in message
    if expected and "does not confine" in outcome.messages[0]:
        assert outcome.messages[0].startswith(
            "NodePool kata: add a requirement {key: karpenter.k8s.aws/instance-family"
        )
    not_kata = _node_pool(taint=None, extra_requirements=requirements)
    assert len(run_stack_policy(kata_node_capacity, [not_kata, _node_class()])) == 0


def test_grpc_kata_node_pool_not_in(pack: PolicyPackProcess) -> None:
    pool = _node_pool(extra_requirements=[{"key": FAMILY, "operator": "NotIn", "values": ["t3"]}])
    assert [(v.policy, v.urn) for v in pack.analyze_stack([pool, _node_class()])] == [("kata-node-capacity", pool.urn)]


def test_node_group_with_unknown_template_id_and_no_link() -> None:
    resources, group = _node_stack(["m5.large"], link="none")  # launchTemplate {id: unknown}
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is not None
    group.properties["launchTemplate"] = {"id": "lt-0123456789", "version": "1"}  # a template of another stack
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_empty_namespace_is_the_provider_default() -> None:
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace="")
    config = {"sandboxNamespaces": ["tenant-a"]}
    provider = k8s_provider("c", namespace="tenant-a")
    outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)
    assert len(outcome) == 1
    outcome = run_resource_policy(
        sandbox_runtime_class, KINDS[1].resource_type, props, {"sandboxNamespaces": ["default"]}
    )
    assert len(outcome) == 1


# --- the SDK runs unmodified --------------------------------------------------------------------

SNAPSHOT = """
import sys
sys.path.insert(0, {policies!r})
import asyncio, concurrent.futures, gc, inspect
import grpc, grpc._server
import pulumi_policy, pulumi_policy.deserialize, pulumi_policy.policy, pulumi_policy.proxy

MODULES = [asyncio, asyncio.events, concurrent.futures, grpc, grpc._server, pulumi_policy,
           pulumi_policy.deserialize, pulumi_policy.policy, pulumi_policy.proxy]


def snapshot():
    state = {{}}
    for module in MODULES:
        for key, value in vars(module).items():
            state[(module.__name__, key)] = id(value)
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    state[(module.__name__, key, attribute)] = id(member)
    state["gc"] = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    return state


before = snapshot()
import agent_policies
policies = agent_policies.all_policies()
after = snapshot()
changed = sorted(str(k) for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(len(policies), changed)
"""


def test_the_pack_patches_nothing(tmp_path: Path) -> None:
    """Importing the pack changes no attribute of pulumi-policy, grpc or asyncio, nor the GC settings."""
    import subprocess
    import sys

    script = tmp_path / "snapshot.py"
    script.write_text(SNAPSHOT.format(policies=str(PACK_DIR)))
    output = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert output.stdout.strip() == f"{len(POLICIES)} []", output.stdout + output.stderr
    for path in (PACK_DIR / "agent_policies").glob("*.py"):
        source = path.read_text()
        for needle in ("_PolicyAnalyzerServicer", "setattr(", "import grpc", "import asyncio", "import gc"):
            assert needle not in source, (path.name, needle)
    assert not any((PACK_DIR / "agent_policies").glob("sdk_*.py"))
    for project in (ROOT, PACK_DIR):  # the gate's SDK is pinned exactly, in the project and in its lock
        assert '"pulumi-policy==1.21.0"' in (project / "pyproject.toml").read_text(), project
        lock = tomllib.loads((project / "uv.lock").read_text())
        assert [p["version"] for p in lock["package"] if p["name"] == "pulumi-policy"] == ["1.21.0"], project


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


def test_stack_namespace_workloads_get_the_host_access_checks() -> None:
    spec = kata_spec(hostPID=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    plain = _deployment("plain", spec, sandbox=False)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [_namespace("tenant-a", True), plain])
    assert outcome.urns == [plain.urn, plain.urn]
    assert "remove spec.template.spec.hostPID" in outcome.messages[0]
    assert 'remove the hostPath volume "root"' in outcome.messages[1]
    assert all(
        m.endswith("Namespace tenant-a is a sandbox namespace (agent-platform.io/sandbox=true).")
        for m in outcome.messages
    )
    assert len(run_stack_policy(sandbox_namespace_runtime_class, [_namespace("tenant-a", False), plain])) == 0


def test_nlb_cross_zone_legacy_off_but_every_target_group_on() -> None:
    # Exact semantics: the target groups' own attribute wins over the load balancer's (legacy) setting.
    assert _nlb({LEGACY_CROSS_ZONE: "false", TG_ATTRIBUTES: ON}) == []
    (message,) = _nlb({LEGACY_CROSS_ZONE: "false", LB_ATTRIBUTES: OFF})
    assert message.startswith(f"Service litellm/litellm: remove the {LEGACY_CROSS_ZONE} annotation")
    assert f'to the {LB_ATTRIBUTES} annotation (it is "false")' in message
