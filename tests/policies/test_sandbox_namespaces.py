"""sandbox-namespace-runtime-class (stack): sandbox Namespaces of the stack, patches of its sandbox
workloads, the provider's default namespace, and two clusters in one stack."""

from __future__ import annotations

import pytest
from agent_policies.pod_checks import PodSpecCheck
from agent_policies.sandbox_checks import SANDBOX_CHECKS
from agent_policies.sandbox_namespaces import sandbox_namespace_runtime_class

from tests.policies.builders import (
    KIND_IDS,
    NAMESPACE,
    SANDBOX,
    deployment_patch_resource,
    deployment_resource,
    namespace_resource,
    who,
)
from tests.policy_cases import (
    KINDS,
    UNKNOWN,
    Kind,
    k8s,
    k8s_provider,
    kata_spec,
    resource,
    run_resource_policy,
    run_stack_policy,
    workload,
)
from tests.sandbox_corpus import CASES, SANDBOX_NAMESPACE, build
from tools.analyzer import AnalyzerResource, PolicyPackProcess

# --- sandbox namespaces -----------------------------------------------------------------------


@pytest.mark.parametrize("check", SANDBOX_CHECKS, ids=[check.rule for check in SANDBOX_CHECKS])
def test_stack_policy_runs_every_sandbox_check(check: PodSpecCheck) -> None:
    """What a sandbox check's resource policy reports on a labelled sandbox of the corpus, the stack policy reports
    on the same workload unlabelled in a sandbox Namespace of the stack (a check left out of it fails here)."""
    reason = f" Namespace {SANDBOX_NAMESPACE} is a sandbox namespace (agent-platform.io/sandbox=true)."
    compared = 0
    for case in CASES:
        if case.namespace != SANDBOX_NAMESPACE or case.labelled is not True or case.allowed:
            continue
        direct = run_resource_policy(
            check.policy, case.resource_type, build(case.kind, case.spec, case.namespace, True)
        )
        if not direct.messages:
            continue
        plain = resource(case.resource_type, "hermes", build(case.kind, case.spec, case.namespace, False))
        outcome = run_stack_policy(
            sandbox_namespace_runtime_class, [namespace_resource(SANDBOX_NAMESPACE, True), plain]
        )
        assert set(direct.messages) <= {m.removesuffix(reason) for m in outcome.messages}, case.id
        compared += 1
    assert compared, f"no corpus case violates {check.rule}"


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
        [namespace_resource("tenant-a", True), namespace_resource("shared", False), bad, good, elsewhere, labelled],
    )
    assert outcome.unknown is None
    assert outcome.urns == [bad.urn]
    assert outcome.messages == [
        f"{who(kind)}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, "
        "kata-fc. Namespace tenant-a is a sandbox namespace (agent-platform.io/sandbox=true)."
    ]


def test_stack_namespace_workloads_get_the_host_access_checks() -> None:
    spec = kata_spec(hostPID=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    plain = deployment_resource("plain", spec, sandbox=False)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [namespace_resource("tenant-a", True), plain])
    assert outcome.urns == [plain.urn, plain.urn]
    assert "remove spec.template.spec.hostPID" in outcome.messages[0]
    assert 'remove the hostPath volume "root"' in outcome.messages[1]
    assert all(
        m.endswith("Namespace tenant-a is a sandbox namespace (agent-platform.io/sandbox=true).")
        for m in outcome.messages
    )
    assert len(run_stack_policy(sandbox_namespace_runtime_class, [namespace_resource("tenant-a", False), plain])) == 0


def test_provider_default_namespace_stack_policy() -> None:
    provider = k8s_provider("cluster", namespace="tenant-a")
    namespace = resource(
        NAMESPACE, "ns", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=provider
    )
    plain = deployment_resource("plain", {"runtimeClassName": "runc"}, sandbox=False, namespace=None, provider=provider)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [provider, namespace, plain])
    assert outcome.urns == [plain.urn]
    other = k8s_provider("other")
    elsewhere = deployment_resource(
        "plain2", {"runtimeClassName": "runc"}, sandbox=False, namespace=None, provider=other
    )
    assert len(run_stack_policy(sandbox_namespace_runtime_class, [provider, other, namespace, elsewhere])) == 0


# --- patches of a sandbox workload ------------------------------------------------------------


def test_stack_patch_of_a_sandbox_workload_in_the_stack() -> None:
    cluster_a = k8s_provider("a", kubeconfig="cluster-a")
    cluster_b = k8s_provider("b", kubeconfig="cluster-b")
    target = deployment_resource("hermes", kata_spec(), sandbox=True, provider=cluster_a)
    bad = deployment_patch_resource(
        "hermes-runc", {"runtimeClassName": "runc", "hostNetwork": True}, provider=cluster_a
    )
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [cluster_a, cluster_b, target, bad])
    assert outcome.urns == [bad.urn, bad.urn]
    assert outcome.messages[0].startswith(
        "DeploymentPatch tenant-a/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, "
        'kata-fc instead of "runc". It patches Deployment tenant-a/hermes, a sandbox'
    )
    assert "remove spec.template.spec.hostNetwork" in outcome.messages[1]
    # Same name on another cluster, in another namespace, or a patch that leaves the fields alone: not this sandbox.
    other_cluster = deployment_patch_resource("p1", {"runtimeClassName": "runc"}, provider=cluster_b)
    other_namespace = deployment_patch_resource(
        "p2", {"runtimeClassName": "runc"}, namespace="tenant-b", provider=cluster_a
    )
    harmless = deployment_patch_resource("p3", {"containers": [{"name": "agent", "image": "x:2"}]}, provider=cluster_a)
    resources = [cluster_a, cluster_b, target, other_cluster, other_namespace, harmless]
    assert run_stack_policy(sandbox_namespace_runtime_class, resources).messages == []


def test_stack_patch_in_a_sandbox_namespace() -> None:
    patch = deployment_patch_resource("p", {"runtimeClassName": "runc"})
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [namespace_resource("tenant-a", True), patch])
    assert outcome.urns == [patch.urn]
    assert "Namespace tenant-a is a sandbox namespace" in outcome.messages[0]
    leaves_it = deployment_patch_resource("q", {"replicas": 2})
    assert (
        len(run_stack_policy(sandbox_namespace_runtime_class, [namespace_resource("tenant-a", True), leaves_it])) == 0
    )


# --- two clusters in one stack ----------------------------------------------------------------


def _cluster_stack(
    a: AnalyzerResource, b: AnalyzerResource, *, workload_on: AnalyzerResource
) -> tuple[list[AnalyzerResource], AnalyzerResource]:
    namespace = resource(NAMESPACE, "ns-a", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=a)
    plain_b = resource(NAMESPACE, "ns-b", k8s("v1", "Namespace", "tenant-a"), provider=b)
    web = deployment_resource("web", {"containers": [{"name": "web"}]}, sandbox=False, provider=workload_on)
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
