"""The placement classes of issue 22, one test each, with the messages: what the matrix (test_placement.py) checks
generically, spelled out where the resolution layer decides (placement.py)."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.egress import sandbox_egress_allowlist
from agent_policies.node_capacity import kata_node_capacity
from agent_policies.placement import aws_location, kubernetes_kind
from agent_policies.runtime_class import sandbox_runtime_class
from agent_policies.sandbox_namespaces import sandbox_namespace_runtime_class
from agent_policies.stack import Overlay, Stack

from tests.policies.builders import NAMESPACE, SANDBOX, ec2_node_class, launch_template, node_pool
from tests.policy_cases import (
    KINDS,
    UNKNOWN,
    aws_provider,
    k8s,
    k8s_provider,
    kata_spec,
    resource,
    run_resource_policy,
    run_stack_policy,
    workload,
)
from tests.tokens import LAUNCH_TEMPLATE, NETPOL, NODE_GROUP, TEMPLATE
from tools.analyzer import AnalyzerResource, PolicyPackProcess

DENY = {"podSelector": {}, "policyTypes": ["Egress"], "egress": []}
OPEN = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}


def _sandbox_namespace(name: str = "tenant-a", **kw: Any) -> AnalyzerResource:
    return resource(NAMESPACE, f"ns-{name}", k8s("v1", "Namespace", name, labels={SANDBOX: "true"}), **kw)


def _netpol(name: str, spec: dict[str, Any], namespace: str | None = "tenant-a", **kw: Any) -> AnalyzerResource:
    metadata = {} if namespace is None else {"namespace": namespace}
    return resource(NETPOL, name, k8s("networking.k8s.io/v1", "NetworkPolicy", name, spec, **metadata), **kw)


def _egress(resources: list[AnalyzerResource]) -> list[tuple[str, str]]:
    outcome = run_stack_policy(sandbox_egress_allowlist, resources)
    assert outcome.unknown is None, outcome.unknown.message
    names = {r.urn: r.name for r in resources}
    return [(names[u], m.split(":", 1)[0]) for u, m in zip(outcome.urns, outcome.messages, strict=True)]  # type: ignore[index]


# --- NetworkPolicies placed by the provider's default namespace --------------------------------


def test_egress_policy_in_the_providers_default_namespace() -> None:
    """No metadata.namespace: the policy lands in its provider's namespace, for the open rule (was missed) and
    for the default deny (was a false report)."""
    provider = k8s_provider("tenant-a", kubeconfig="c", namespace="tenant-a")
    namespace = _sandbox_namespace(provider=provider)
    assert _egress([provider, namespace, _netpol("deny", DENY, None, provider=provider)]) == []
    assert _egress([provider, namespace, _netpol("open", OPEN, None, provider=provider)]) == [
        ("open", "NetworkPolicy tenant-a/open")
    ]  # it is a default deny too, but it opens the internet


def test_egress_patch_kinds() -> None:
    """NetworkPolicyPatch and SandboxTemplatePatch are judged on the fields they set, merged with their target."""
    patch = "kubernetes:networking.k8s.io/v1:NetworkPolicyPatch"
    deny = resource(
        patch, "deny-patch", k8s("networking.k8s.io/v1", "NetworkPolicyPatch", "d", DENY, namespace="tenant-a")
    )
    assert _egress([_sandbox_namespace(), deny]) == []
    opened = resource(
        patch, "open-patch", k8s("networking.k8s.io/v1", "NetworkPolicyPatch", "d", OPEN, namespace="tenant-a")
    )
    assert _egress([_sandbox_namespace(), opened]) == [("open-patch", "NetworkPolicyPatch tenant-a/d")]
    # A patch that narrows the declared default deny to some pods: the merged object no longer protects.
    narrow = {"podSelector": {"matchLabels": {"app": "x"}}}
    narrowing = resource(
        patch, "narrow", k8s("networking.k8s.io/v1", "NetworkPolicyPatch", "deny", narrow, namespace="tenant-a")
    )
    assert _egress([_sandbox_namespace(), _netpol("deny", DENY), narrowing]) == [("ns-tenant-a", "Namespace tenant-a")]
    # A SandboxTemplatePatch opening the managed policy; one leaving it alone is not a violation.
    template = k8s(
        "extensions.agents.x-k8s.io/v1beta1",
        "SandboxTemplatePatch",
        "warm",
        {"networkPolicy": {"egress": [{}]}},
        namespace="tenant-a",
    )
    template_patch = resource(TEMPLATE + "Patch", "warm-patch", template)
    assert _egress([_sandbox_namespace(), _netpol("deny", DENY), template_patch]) == [
        ("warm-patch", "SandboxTemplatePatch tenant-a/warm")
    ]
    template["spec"] = {"podTemplate": {"spec": kata_spec()}}
    assert _egress([_sandbox_namespace(), _netpol("deny", DENY), template_patch]) == []


def test_egress_namespaces_match_per_cluster() -> None:
    a, b = k8s_provider("a", kubeconfig="a"), k8s_provider("b", kubeconfig="b")
    ns_a, ns_b = (
        _sandbox_namespace(provider=a),
        resource(NAMESPACE, "ns-b", k8s("v1", "Namespace", "tenant-a"), provider=b),
    )
    # A default deny on cluster B's tenant-a does not protect cluster A's.
    assert _egress([a, b, ns_a, _netpol("deny", DENY, provider=b)]) == [("ns-tenant-a", "Namespace tenant-a")]
    # An open policy in B's tenant-a (not a sandbox namespace there) is not reported.
    assert _egress([a, b, ns_a, ns_b, _netpol("deny", DENY, provider=a), _netpol("open", OPEN, provider=b)]) == []


def test_egress_namespace_with_a_computed_name() -> None:
    """A sandbox Namespace whose name is computed (auto-named): matched through the dependencies, a verdict and
    not an advisory note."""
    namespace = resource(NAMESPACE, "ns", k8s("v1", "Namespace", UNKNOWN, labels={SANDBOX: "true"}))
    linked = {"property_dependencies": {"metadata": [namespace.urn]}}
    assert _egress([namespace, _netpol("deny", DENY, UNKNOWN, **linked)]) == []
    assert _egress([namespace, _netpol("open", OPEN, UNKNOWN, **linked)]) == [("open", "NetworkPolicy open")]
    assert _egress([namespace]) == [("ns", "Namespace ns")]


def test_egress_policy_whose_namespace_cannot_be_told() -> None:
    """A policy with an unknown namespace and no dependency may be the default deny: an unknown, not a report."""
    outcome = run_stack_policy(sandbox_egress_allowlist, [_sandbox_namespace(), _netpol("deny", DENY, UNKNOWN)])
    assert outcome.messages == []
    assert outcome.unknown is not None


# --- launch templates and node classes in their own region and cluster -------------------------


def _group(name: str, template_name: str, types: list[str], **kw: Any) -> AnalyzerResource:
    props = {"clusterName": "agents", "instanceTypes": types, "launchTemplate": {"name": template_name}}
    return resource(NODE_GROUP, name, props, **kw)


def test_launch_templates_match_by_name_within_a_region() -> None:
    east, west = aws_provider("east", region="us-east-1"), aws_provider("west", region="us-west-2")
    kata = resource(LAUNCH_TEMPLATE, "kata", launch_template(name="nodes"), provider=west)
    general = resource(LAUNCH_TEMPLATE, "general", {"name": "nodes", "instanceType": "t3.large"}, provider=east)
    group = _group("workers", "nodes", ["t3.large"], provider=east)
    assert run_stack_policy(kata_node_capacity, [east, west, kata, general, group]).messages == []
    kata_group = _group("kata-workers", "nodes", ["t3.large"], provider=west)
    outcome = run_stack_policy(kata_node_capacity, [east, west, kata, general, group, kata_group])
    assert outcome.urns == [kata_group.urn]
    assert outcome.messages[0].startswith("NodeGroup kata-workers: use only c8i, m8i, r8i")


def test_a_resources_own_region_and_the_account() -> None:
    """pulumi-aws 7 takes a per-resource ``region`` over the provider's; accounts differ by the role assumed."""
    east = aws_provider("east", region="us-east-1")
    kata = resource(LAUNCH_TEMPLATE, "kata", {**launch_template(name="nodes"), "region": "eu-west-1"}, provider=east)
    group = _group("workers", "nodes", ["t3.large"], provider=east)
    assert run_stack_policy(kata_node_capacity, [east, kata, group]).messages == []
    group.properties["region"] = "eu-west-1"
    assert len(run_stack_policy(kata_node_capacity, [east, kata, group]).messages) == 1
    role = {"roleArn": "arn:aws:iam::111122223333:role/deploy"}
    other_account = aws_provider("other", region="eu-west-1", assumeRoles=[role])
    group = _group("workers", "nodes", ["t3.large"], provider=other_account)
    assert run_stack_policy(kata_node_capacity, [east, other_account, kata, group]).messages == []
    assert aws_location({}, None) == ("aws", "", "")


def test_node_classes_match_by_name_within_a_cluster() -> None:
    """A compliant EC2NodeClass of the same name on another cluster no longer hides this cluster's."""
    a, b = k8s_provider("a", kubeconfig="a"), k8s_provider("b", kubeconfig="b")
    pool = node_pool(families=["m8i"])
    disabled, enabled = ec2_node_class(nested="disabled"), ec2_node_class(nested="enabled")
    enabled.name, enabled.urn = "class-kata-b", enabled.urn + "-b"
    for r, provider in ((pool, a), (disabled, a), (enabled, b)):
        r.provider_urn, r.provider_type = provider.urn, provider.type
        r.provider_properties = dict(provider.properties)
    outcome = run_stack_policy(kata_node_capacity, [a, b, pool, disabled, enabled])
    assert outcome.urns == [pool.urn]
    assert 'set spec.cpuOptions.nestedVirtualization to "enabled" on EC2NodeClass kata' in outcome.messages[0]


def test_node_class_patch_turns_nested_virtualization_off() -> None:
    patch_type = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClassPatch"
    off = k8s("karpenter.k8s.aws/v1", "EC2NodeClassPatch", "kata", {"cpuOptions": {"nestedVirtualization": "disabled"}})
    pool = node_pool(families=["m8i"])
    outcome = run_stack_policy(kata_node_capacity, [pool, ec2_node_class(), resource(patch_type, "off", off)])
    assert outcome.urns == [pool.urn]
    assert "on EC2NodeClassPatch kata" in outcome.messages[0]
    tags = k8s("karpenter.k8s.aws/v1", "EC2NodeClassPatch", "kata", {"tags": {"team": "a"}})
    assert (
        run_stack_policy(kata_node_capacity, [pool, ec2_node_class(), resource(patch_type, "t", tags)]).messages == []
    )


# --- an unknown namespace resolved through propertyDependencies: the verdict ---------------------


def test_configured_sandbox_namespace_reached_through_dependencies() -> None:
    """The resource policies cannot see dependencies (an advisory note); the stack policy gives the verdict."""
    namespace = resource(NAMESPACE, "ns", k8s("v1", "Namespace", "agents-shared"))
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=UNKNOWN)
    config = {"sandboxNamespaces": ["agents-shared"]}
    alone = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config)
    assert alone.messages == []
    assert alone.unknown is not None
    deployment = resource(KINDS[1].resource_type, "w", props, property_dependencies={"metadata": [namespace.urn]})
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [namespace, deployment], config)
    assert outcome.unknown is None
    assert outcome.urns == [deployment.urn]
    assert outcome.messages[0].endswith("Namespace agents-shared is a sandbox namespace (sandboxNamespaces).")
    # Known namespaces are the resource policies' to report (no duplicates).
    known = resource(
        KINDS[1].resource_type,
        "k",
        workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace="agents-shared"),
    )
    assert run_stack_policy(sandbox_namespace_runtime_class, [namespace, known], config).messages == []


def test_provider_namespace_computed_from_a_namespace() -> None:
    namespace = _sandbox_namespace()
    provider = k8s_provider("p", kubeconfig="c", namespace=UNKNOWN)
    provider.property_dependencies = {"namespace": [namespace.urn]}
    namespace.provider_urn, namespace.provider_type = provider.urn, provider.type
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    deployment = resource(KINDS[1].resource_type, "w", props, provider=provider)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [provider, namespace, deployment])
    assert outcome.unknown is None
    assert outcome.urns == [deployment.urn]


# --- the layer ---------------------------------------------------------------------------------


def test_overlay_merges_like_server_side_apply() -> None:
    merged = Overlay([{"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2], "e": 3}}])
    assert dict(merged["a"]) == {"b": 1, "c": [2], "e": 3}
    assert merged["d"] == 1
    assert set(merged) == {"a", "d"}
    with pytest.raises(KeyError):
        merged["x"]  # noqa: B018 - the lookup is the test
    assert Overlay([{"a": {"b": 1}}, {"a": "replaced"}])["a"] == "replaced"


def test_kinds_of_patches() -> None:
    assert kubernetes_kind("kubernetes:networking.k8s.io/v1:NetworkPolicyPatch") == (
        "networking.k8s.io",
        "NetworkPolicy",
        True,
    )
    assert kubernetes_kind("kubernetes:core/v1:Pod") == ("core", "Pod", False)
    assert kubernetes_kind("aws:ec2/launchTemplate:LaunchTemplate") is None
    assert Stack([]).of_kind(("core", "Pod")) == []


def test_grpc_egress_patch(pack: PolicyPackProcess) -> None:
    patch = "kubernetes:networking.k8s.io/v1:NetworkPolicyPatch"
    opened = resource(patch, "open", k8s("networking.k8s.io/v1", "NetworkPolicyPatch", "d", OPEN, namespace="tenant-a"))
    violations = pack.analyze_stack([_sandbox_namespace(), opened])
    assert [(v.policy, v.urn) for v in violations] == [("sandbox-egress-allowlist", opened.urn)]
