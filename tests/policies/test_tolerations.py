"""dedicated-tenant-tolerations (reported as sandbox-namespace-runtime-class): a toleration for a tenant's dedicated
nodes only in that tenant's namespace; tolerating every tenant's only for node DaemonSets in platform namespaces."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.sandbox_namespaces import sandbox_namespace_runtime_class
from agent_policies.tolerations import DEDICATED_TAINT_EFFECT, DEDICATED_TENANT_KEY, PLATFORM_NAMESPACES, TENANT_LABEL

from components.contracts import labels, namespaces
from components.contracts.labels import TENANT_LABEL as PROGRAM_TENANT_LABEL
from tests.policies.builders import NAMESPACE
from tests.policy_cases import KINDS, PATCH_KINDS, UNKNOWN, Kind, k8s, kata_spec, resource, run_stack_policy, workload
from tools.analyzer import AnalyzerResource, PolicyPackProcess

KIND = {k.kind: k for k in KINDS if not k.api_version.endswith("v1alpha1")}
GLOBEX = labels.dedicated_toleration("globex")


def _namespace(name: str, tenant: str | None = None) -> AnalyzerResource:
    return resource(
        NAMESPACE, f"ns-{name}", k8s("v1", "Namespace", name, labels={TENANT_LABEL: tenant} if tenant else {})
    )


def _pod_spec(*tolerations: dict[str, Any]) -> dict[str, Any]:
    return kata_spec(tolerations=list(tolerations))


def _workload(
    kind: Kind, namespace: str | None, *tolerations: dict[str, Any], name: str = "w", **kw: Any
) -> AnalyzerResource:
    props = workload(kind, _pod_spec(*tolerations), sandbox=False, namespace=namespace, name=name)
    return resource(kind.resource_type, name, props, **kw)


def _run(*resources: AnalyzerResource) -> list[str]:
    outcome = run_stack_policy(sandbox_namespace_runtime_class, list(resources))
    assert outcome.unknown is None, outcome.unknown.message
    return outcome.messages


def test_the_pack_uses_the_platforms_names() -> None:
    assert DEDICATED_TENANT_KEY == labels.DEDICATED_TENANT_KEY
    assert labels.dedicated_taint("t") == {"key": DEDICATED_TENANT_KEY, "value": "t", "effect": DEDICATED_TAINT_EFFECT}
    assert TENANT_LABEL == PROGRAM_TENANT_LABEL
    assert set(PLATFORM_NAMESPACES) == namespaces.NODE_DAEMON_NAMESPACES


@pytest.mark.parametrize("kind", list(KIND.values()), ids=list(KIND))
def test_a_tenants_toleration_only_in_its_namespace(kind: Kind) -> None:
    globex, acme = _namespace("tenant-globex", "globex"), _namespace("tenant-acme", "acme")
    assert _run(globex, acme, _workload(kind, "tenant-globex", GLOBEX)) == []
    (message,) = _run(globex, acme, _workload(kind, "tenant-acme", GLOBEX))
    assert message == (
        f"{kind.kind} tenant-acme/w: remove {kind.spec_path}.tolerations[0] ({DEDICATED_TENANT_KEY}=globex): only pods "
        f"in a namespace labelled {TENANT_LABEL}=globex may run on tenant globex's dedicated nodes, and Namespace "
        "tenant-acme belongs to tenant acme."
    )
    (message,) = _run(globex, _namespace("apps"), _workload(kind, "apps", GLOBEX))
    assert message.endswith("and Namespace apps has no agent-platform.io/tenant label.")
    (message,) = _run(globex, _workload(kind, "elsewhere", GLOBEX))
    assert message.endswith("and namespace elsewhere is not a Namespace declared in this stack.")


@pytest.mark.parametrize(
    ("toleration", "bad"),
    [
        ({"key": DEDICATED_TENANT_KEY, "operator": "Equal", "value": "acme", "effect": "NoSchedule"}, True),
        ({"key": DEDICATED_TENANT_KEY, "value": "acme"}, True),  # no operator: Equal
        ({"key": DEDICATED_TENANT_KEY, "value": "acme", "effect": "NoSchedule"}, True),
        ({"key": DEDICATED_TENANT_KEY, "value": "acme", "effect": "NoExecute"}, False),  # another taint's effect
        ({"effect": "NoExecute", "operator": "Exists", "tolerationSeconds": 300}, False),  # the EBS CSI controller
        ({"key": DEDICATED_TENANT_KEY, "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # no key: every taint
        ({"key": "", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": DEDICATED_TENANT_KEY, "value": ""}, True),
        ({"key": DEDICATED_TENANT_KEY, "value": "globex"}, False),
        ({"key": "kata", "operator": "Exists"}, False),
        ({"key": "agent-platform.io/dedicated", "operator": "Exists"}, False),
        ({"operator": "Equal", "value": "globex"}, False),  # no key, Equal: tolerates only key-less taints
    ],
)
def test_toleration_forms(toleration: dict[str, Any], bad: bool) -> None:
    namespace = _namespace("tenant-globex", "globex")
    assert len(_run(namespace, _workload(KIND["Deployment"], "tenant-globex", toleration))) == int(bad)


def test_every_tenant_only_for_node_daemon_sets_in_platform_namespaces() -> None:
    every = {"operator": "Exists"}
    kube_system = _namespace("kube-system")
    assert _run(kube_system, _workload(KIND["DaemonSet"], "kube-system", every)) == []
    assert _run(_workload(KIND["DaemonSet"], "kata-system", labels.DEDICATED_TOLERATION_ANY)) == []
    (message,) = _run(kube_system, _workload(KIND["Deployment"], "kube-system", every))
    assert message.startswith("Deployment kube-system/w: remove spec.template.spec.tolerations[0] (operator Exists)")
    assert len(_run(_workload(KIND["DaemonSet"], "tenant-acme", every))) == 1
    # A Pod that a DaemonSet controls, as the DaemonSet controller makes it.
    pod = _workload(KIND["Pod"], "monitoring", every)
    assert len(_run(pod)) == 1
    pod.properties["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter", "uid": "u", "controller": True}
    ]
    assert _run(pod) == []


def test_platform_namespaces_are_configurable() -> None:
    daemon = _workload(KIND["DaemonSet"], "ops", {"operator": "Exists"})
    config = {"platformNamespaces": ["ops"]}
    assert run_stack_policy(sandbox_namespace_runtime_class, [daemon], config).messages == []


def test_patches_are_judged_on_the_tolerations_they_set() -> None:
    patch = next(k for k in PATCH_KINDS if k.kind == "DeploymentPatch")
    namespace = _namespace("tenant-acme", "acme")
    assert len(_run(namespace, _workload(patch, "tenant-acme", GLOBEX))) == 1
    leaves_them = resource(
        patch.resource_type, "p", workload(patch, {"replicas": 2}, sandbox=False, namespace="tenant-acme")
    )
    assert _run(namespace, leaves_them) == []
    # A NamespacePatch that gives a namespace to tenant globex makes its toleration valid there.
    labelled = resource(
        "kubernetes:core/v1:NamespacePatch",
        "label",
        k8s("v1", "NamespacePatch", "shared", labels={TENANT_LABEL: "globex"}),
    )
    assert _run(labelled, _workload(KIND["Deployment"], "shared", GLOBEX)) == []


def test_unknowns() -> None:
    namespace = _namespace("tenant-acme", "acme")
    unknown_namespace = _workload(KIND["Deployment"], UNKNOWN, GLOBEX)
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [namespace, unknown_namespace])
    assert outcome.messages == []
    assert outcome.unknown is not None
    unknown_value = _workload(KIND["Deployment"], "tenant-acme", {"key": DEDICATED_TENANT_KEY, "value": UNKNOWN})
    outcome = run_stack_policy(sandbox_namespace_runtime_class, [namespace, unknown_value])
    assert (outcome.messages, outcome.unknown is not None) == ([], True)
    # Resolved through the dependencies: the verdict.
    linked = _workload(KIND["Deployment"], UNKNOWN, GLOBEX, property_dependencies={"metadata": [namespace.urn]})
    assert len(_run(namespace, linked)) == 1


def test_grpc_dedicated_tolerations(pack: PolicyPackProcess) -> None:
    bad = _workload(KIND["Deployment"], "tenant-acme", GLOBEX)
    violations = pack.analyze_stack([_namespace("tenant-acme", "acme"), bad])
    assert [(v.policy, v.urn, v.enforcement_level) for v in violations] == [
        ("sandbox-namespace-runtime-class", bad.urn, "mandatory")
    ]
