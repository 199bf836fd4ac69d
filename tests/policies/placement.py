"""The placement matrix: every rule of the pack (``agent_policies.RULES``) wherever its resources land.

Each rule has one scenario here: a small stack that violates it (``bad``: reported on ``subjects``, by resource
name) and the same resources, under the same names, that comply. Scenarios are written the plain way: on cluster A
(one Kubernetes provider) and in us-east-1 (one AWS provider), with ``metadata.namespace`` set, every namespace
declared. tests/policies/test_placement.py moves them (:data:`PLACEMENTS`: the provider's default namespace, a
default computed from a Namespace, an unknown namespace resolved through dependencies), turns each Kubernetes
resource into its ``*Patch`` kind in turn, and adds the opposite stack with the same names on cluster B and in
us-west-2; the verdict must not change. A new rule needs only its scenario; the variants come with it. A sandbox
pod-spec check (agent_policies.SANDBOX_CHECKS) gets its scenario from the parity corpus: the first case of a
sandbox namespace that the check reports, against a compliant pod spec.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_policies.placement import CLUSTER_SCOPED, kind_of
from agent_policies.pod_checks import PodSpecCheck
from agent_policies.sandbox_checks import SANDBOX_CHECKS

from tests.policy_cases import (
    KINDS,
    UNKNOWN,
    aws_provider,
    k8s,
    k8s_provider,
    kata_spec,
    resource,
    run_resource_policy,
    urn,
    workload,
)
from tests.sandbox_corpus import CASES, SANDBOX_NAMESPACE, build
from tests.tokens import LAUNCH_TEMPLATE, NETPOL, NODE_CLASS, NODE_GROUP, NODE_POOL, SERVICE, TEMPLATE
from tools.analyzer import AnalyzerResource

NAMESPACE = "kubernetes:core/v1:Namespace"
SANDBOX = "agent-platform.io/sandbox"
TENANT = "agent-platform.io/tenant"
DEDICATED = "agent-platform.io/dedicated-tenant"
CLUSTER_A, CLUSTER_B = "cluster-a", "cluster-b"
REGION_A, REGION_B = "us-east-1", "us-west-2"
KIND = {k.kind: k for k in KINDS if k.api_version.endswith(("v1", "v1beta1"))}


# --- building a scenario on cluster A ---------------------------------------------------------


def _on_a(resources: list[AnalyzerResource]) -> list[AnalyzerResource]:
    """Attach cluster A's and us-east-1's providers; the providers are resources of the stack too."""
    k8s_a = k8s_provider("k8s-a", kubeconfig=CLUSTER_A)
    aws_a = aws_provider("aws-a", region=REGION_A)
    for r in resources:
        attach(r, k8s_a if kind_of(r.type) is not None else aws_a)
    return [k8s_a, aws_a, *resources]


def attach(r: AnalyzerResource, provider: AnalyzerResource) -> None:
    r.provider_urn, r.provider_type, r.provider_properties = provider.urn, provider.type, dict(provider.properties)


def namespace(name: str, **labels: str) -> AnalyzerResource:
    return resource(NAMESPACE, f"ns-{name}", k8s("v1", "Namespace", name, labels=labels))


def pods(kind: str, name: str, spec: dict[str, Any], ns: str, sandbox: bool = False) -> AnalyzerResource:
    return resource(
        KIND[kind].resource_type, name, workload(KIND[kind], spec, sandbox=sandbox, namespace=ns, name=name)
    )


def _pod_check(check: PodSpecCheck) -> Callable[[bool], list[AnalyzerResource]]:
    """A sandbox check's scenario: the first corpus case of a sandbox namespace it reports, or a compliant spec."""
    case = next(
        c
        for c in CASES
        if c.namespace == SANDBOX_NAMESPACE
        and c.labelled is True
        and c.kind in KIND
        and run_resource_policy(check.policy, c.resource_type, build(c.kind, c.spec, c.namespace, True)).messages
    )

    def stack(bad: bool) -> list[AnalyzerResource]:
        spec = case.spec if bad else kata_spec(runtimeClassName="kata-qemu")
        return [namespace("tenant-a", **{SANDBOX: "true"}), pods(case.kind, "agent", spec, "tenant-a", sandbox=True)]

    return stack


def _kata_dns(bad: bool) -> list[AnalyzerResource]:
    spec = kata_spec(dnsPolicy="ClusterFirst" if bad else "None")
    return [namespace("apps"), pods("Pod", "agent", spec, "apps")]


def _kata_clh(bad: bool) -> list[AnalyzerResource]:
    spec = kata_spec(runtimeClassName="kata-clh" if bad else "kata-qemu", initContainers=[{"name": "setup"}])
    return [namespace("apps"), pods("Job", "agent", spec, "apps")]


def _nlb(bad: bool) -> list[AnalyzerResource]:
    annotations = {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-attributes": f"load_balancing.cross_zone.enabled={str(not bad).lower()}",
    }
    spec = {"type": "LoadBalancer", "ports": [{"port": 4000}]}
    service = k8s("v1", "Service", "gateway", spec, namespace="litellm", annotations=annotations)
    nlb = {"loadBalancerType": "network", "enableCrossZoneLoadBalancing": not bad, "name": "gateway"}
    return [namespace("litellm"), resource(SERVICE, "gateway", service), resource(AWS_LB, "nlb", nlb)]


def _launch_template(name: str, nested: bool, instance_type: str = "m8i.large") -> dict[str, Any]:
    return {
        "name": name,
        "instanceType": instance_type,
        "cpuOptions": {"nestedVirtualization": "enabled" if nested else "disabled"},
        "metadataOptions": {"httpTokens": "required"},
    }


def _nested_nodes(bad: bool) -> list[AnalyzerResource]:
    return [resource(LAUNCH_TEMPLATE, "kata-lt", _launch_template("kata", True, "m7i.large" if bad else "m8i.large"))]


def _node_capacity(bad: bool) -> list[AnalyzerResource]:
    """A general-purpose node group on launch template "nodes" (a Kata one when bad), and a Kata NodePool on
    EC2NodeClass "kata" (without nested virtualization when bad)."""
    template = resource(LAUNCH_TEMPLATE, "nodes-lt", _launch_template("nodes", nested=bad))
    group = resource(
        NODE_GROUP,
        "workers",
        {"clusterName": "agents", "instanceTypes": ["t3.large"], "launchTemplate": {"name": "nodes"}},
    )
    node_class = resource(
        NODE_CLASS,
        "kata-class",
        k8s(
            "karpenter.k8s.aws/v1",
            "EC2NodeClass",
            "kata",
            {"cpuOptions": {"nestedVirtualization": "disabled" if bad else "enabled"}},
        ),
    )
    pool_spec = {
        "template": {
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "kata"},
                "taints": [{"key": "kata", "effect": "NoSchedule"}],
                "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m8i"]}],
            }
        }
    }
    pool = resource(NODE_POOL, "kata-pool", k8s("karpenter.sh/v1", "NodePool", "kata", pool_spec))
    return [template, group, node_class, pool]


def _sandbox_namespace(bad: bool) -> list[AnalyzerResource]:
    spec = kata_spec(runtimeClassName="runc" if bad else "kata-qemu")
    return [namespace("tenant-a", **{SANDBOX: "true"}), pods("Deployment", "agent", spec, "tenant-a")]


ALLOWLIST = [{"to": [{"ipBlock": {"cidr": "10.1.0.2/32"}}], "ports": [{"protocol": "UDP", "port": 53}]}]
OPEN = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]


def _egress(bad: bool) -> list[AnalyzerResource]:
    """A sandbox namespace whose one NetworkPolicy is (bad) not a default deny and opens the internet, and a
    SandboxTemplate whose managed policy does the same."""
    selector = {"matchLabels": {"app": "agent"}} if bad else {}
    policy = {"podSelector": selector, "policyTypes": ["Ingress", "Egress"], "egress": OPEN if bad else ALLOWLIST}
    netpol = k8s("networking.k8s.io/v1", "NetworkPolicy", "isolation", policy, namespace="tenant-a")
    template_spec = {"podTemplate": {"spec": kata_spec()}, "networkPolicy": {"egress": OPEN if bad else ALLOWLIST}}
    template = k8s("extensions.agents.x-k8s.io/v1beta1", "SandboxTemplate", "warm", template_spec, namespace="tenant-a")
    return [
        namespace("tenant-a", **{SANDBOX: "true"}),
        resource(NETPOL, "isolation", netpol),
        resource(TEMPLATE, "warm", template),
    ]


def _dedicated(bad: bool) -> list[AnalyzerResource]:
    """Tenant globex's toleration in a namespace that (bad) belongs to another tenant, and an Exists toleration
    on a node DaemonSet that (bad) is not in a platform namespace."""
    toleration = {"key": DEDICATED, "operator": "Equal", "value": "globex", "effect": "NoSchedule"}
    daemon = kata_spec(tolerations=[{"key": DEDICATED, "operator": "Exists"}])
    return [
        namespace("tenant-globex", **{TENANT: "initech" if bad else "globex"}),
        namespace("kata-system"),
        pods("Deployment", "agent", kata_spec(tolerations=[toleration]), "tenant-globex"),
        pods("DaemonSet", "node-agent", daemon, "tenant-globex" if bad else "kata-system"),
    ]


def _gpu_nodes(bad: bool) -> list[AnalyzerResource]:
    """A GPU toleration on a tenant's agent (bad) or a model server, and a GPU request on a DaemonSet outside the
    platform namespaces (bad) or in the device plugin's."""
    toleration = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    request = {"containers": [{"name": "plugin", "image": "p:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    return [
        namespace("tenant-globex", **{TENANT: "globex"}),
        namespace("models"),
        namespace("nvidia-device-plugin"),
        pods("Deployment", "agent", kata_spec(tolerations=[toleration]), "tenant-globex" if bad else "models"),
        pods("DaemonSet", "node-agent", request, "tenant-globex" if bad else "nvidia-device-plugin"),
    ]


AWS_LB = "aws:lb/loadBalancer:LoadBalancer"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def _mcp_servers(bad: bool) -> list[AnalyzerResource]:
    server = {"url": "http://tools.tenant-a.svc.cluster.local:8080/mcp", "transport": "http"}
    server |= {"allow_all_keys": bad, "available_on_public_internet": False}
    values = {"proxy_config": {"mcp_servers": {"a_tools": server}}}
    return [
        namespace("litellm"),
        resource(HELM_RELEASE, "litellm", {"name": "litellm", "namespace": "litellm", "values": values}),
    ]


FARGATE_PROFILE = "aws:eks/fargateProfile:FargateProfile"
TIER = {"agent-platform.io/isolation": "fargate"}


def _profile(namespace_selected: str) -> AnalyzerResource:
    return resource(
        FARGATE_PROFILE,
        "profile",
        {"clusterName": "a", "selectors": [{"namespace": namespace_selected, "labels": dict(TIER)}]},
    )


def _fargate_pods(bad: bool) -> list[AnalyzerResource]:
    """A Fargate pod in a namespace the stack's profile binds; bad: it names an EC2 node (nodeName)."""
    spec = kata_spec(runtimeClassName=None, **({"nodeName": "ip-10-1-2-3.ec2.internal"} if bad else {}))
    agent = resource(
        KIND["Deployment"].resource_type,
        "agent",
        workload(KIND["Deployment"], spec, namespace="tenant-f", name="agent", labels=TIER),
    )
    return [namespace("tenant-f", **{SANDBOX: "true"}), _profile("tenant-f"), agent]


def _fargate_profile(bad: bool) -> list[AnalyzerResource]:
    """bad: a wildcard namespace, which could put another namespace's pods on Fargate."""
    return [_profile("tenant-*" if bad else "tenant-f")]


@dataclass(frozen=True)
class Scenario:
    build: Callable[[bool], list[AnalyzerResource]]  # bad -> the stack, on cluster A and in us-east-1
    subjects: tuple[str, ...]  # the resources the bad stack is reported on
    config: dict[str, Any] = field(default_factory=dict)

    def stack(self, bad: bool) -> list[AnalyzerResource]:
        return _on_a(self.build(bad))


SCENARIOS: dict[str, Scenario] = {
    **{check.rule: Scenario(_pod_check(check), ("agent",)) for check in SANDBOX_CHECKS},
    "sandbox-namespace-runtime-class": Scenario(_sandbox_namespace, ("agent",)),
    "kata-dns": Scenario(_kata_dns, ("agent",)),
    "nlb-cross-zone": Scenario(_nlb, ("gateway", "nlb")),
    "kata-clh-no-init-containers": Scenario(_kata_clh, ("agent",)),
    "nested-virtualization-nodes": Scenario(_nested_nodes, ("kata-lt",)),
    "kata-node-capacity": Scenario(_node_capacity, ("workers", "kata-pool")),
    "sandbox-egress-allowlist": Scenario(_egress, ("ns-tenant-a", "isolation", "warm")),
    "dedicated-tenant-tolerations": Scenario(_dedicated, ("agent", "node-agent")),
    "mcp-servers-closed": Scenario(_mcp_servers, ("litellm",)),
    "gpu-nodes-model-servers-only": Scenario(_gpu_nodes, ("agent", "node-agent")),
    "fargate-sandbox-pods": Scenario(_fargate_pods, ("agent",)),
    "fargate-profile-selectors": Scenario(_fargate_profile, ("profile",)),
}


# --- moving a stack ---------------------------------------------------------------------------


def _providers(resources: list[AnalyzerResource]) -> dict[str, AnalyzerResource]:
    return {r.urn: r for r in resources if r.type.startswith("pulumi:providers:")}


def is_object(r: AnalyzerResource) -> bool:
    """A Kubernetes object (a Helm install is none: its namespace is an input, it has no ``*Patch`` kind)."""
    return kind_of(r.type) is not None and not r.type.startswith("kubernetes:helm.sh/")


def is_namespaced(r: AnalyzerResource) -> bool:
    return is_object(r) and kind_of(r.type) not in CLUSTER_SCOPED


def _namespace_resource(resources: list[AnalyzerResource], r: AnalyzerResource, name: str) -> AnalyzerResource:
    """The Namespace ``name`` on r's cluster (scenarios declare every namespace they use)."""
    (found,) = [
        n
        for n in resources
        if n.type.startswith(NAMESPACE)
        and n.properties["metadata"]["name"] == name
        and n.provider_properties.get("kubeconfig") == r.provider_properties.get("kubeconfig")
    ]
    return found


def explicit(resources: list[AnalyzerResource]) -> list[AnalyzerResource]:
    return resources


def provider_default(resources: list[AnalyzerResource], computed: bool = False) -> list[AnalyzerResource]:
    """No ``metadata.namespace``: each namespace comes from a provider of the same cluster whose ``namespace`` input
    is it (``computed``: an output of the Namespace, unknown during preview, followed by its dependency)."""
    made: dict[tuple[str, str], AnalyzerResource] = {}
    for r in resources:
        if not is_namespaced(r):
            continue
        name = r.properties["metadata"].pop("namespace")
        kubeconfig = r.provider_properties["kubeconfig"]
        provider = made.get((kubeconfig, name))
        if provider is None:
            inputs = {"kubeconfig": kubeconfig, "namespace": UNKNOWN if computed else name}
            provider = made[(kubeconfig, name)] = k8s_provider(f"k8s-{kubeconfig}-{name}", **inputs)
            if computed:
                provider.property_dependencies = {"namespace": [_namespace_resource(resources, r, name).urn]}
        attach(r, provider)
    return [*made.values(), *resources]


def provider_default_computed(resources: list[AnalyzerResource]) -> list[AnalyzerResource]:
    return provider_default(resources, computed=True)


def unknown_namespace(resources: list[AnalyzerResource]) -> list[AnalyzerResource]:
    """``metadata.namespace`` an output of the Namespace (unknown during preview), with its dependency."""
    for r in resources:
        if is_namespaced(r):
            owner = _namespace_resource(resources, r, r.properties["metadata"]["namespace"])
            r.properties["metadata"]["namespace"] = UNKNOWN
            r.property_dependencies = {**r.property_dependencies, "metadata": [owner.urn]}
            r.dependencies = [*r.dependencies, owner.urn]
    return resources


PLACEMENTS: dict[str, Callable[[list[AnalyzerResource]], list[AnalyzerResource]]] = {
    "explicit-namespace": explicit,
    "provider-default": provider_default,
    "provider-default-computed": provider_default_computed,
    "unknown-with-dependencies": unknown_namespace,
}


def _renamed(resources: list[AnalyzerResource], rename: Callable[[AnalyzerResource], tuple[str, str]]) -> None:
    """Give resources a new (type, name), and keep every URN reference pointing at them."""
    urns = {}
    for r in resources:
        r.type, r.name = rename(r)
        old, r.urn = r.urn, urn(r.type, r.name)
        urns[old] = r.urn
    for r in resources:
        r.provider_urn = urns.get(r.provider_urn, r.provider_urn)
        r.dependencies = [urns.get(d, d) for d in r.dependencies]
        r.property_dependencies = {k: [urns.get(d, d) for d in v] for k, v in r.property_dependencies.items()}


def as_patch(resources: list[AnalyzerResource], name: str | None) -> list[AnalyzerResource]:
    """Resource ``name`` as its server-side-apply ``*Patch`` kind, with the same fields."""
    resources = copy.deepcopy(resources)
    for r in resources:
        if r.name == name:
            r.properties["kind"] += "Patch"
    _renamed(resources, lambda r: (r.type + "Patch" if r.name == name else r.type, r.name))
    return resources


def kubernetes_names(resources: list[AnalyzerResource]) -> list[str]:
    return [r.name for r in resources if is_object(r)]


def elsewhere(resources: list[AnalyzerResource]) -> list[AnalyzerResource]:
    """The same stack on cluster B and in us-west-2: same object names, resource names suffixed ``-b``."""
    resources = copy.deepcopy(resources)
    _renamed(resources, lambda r: (r.type, f"{r.name}-b"))
    providers = _providers(resources)
    for provider in providers.values():
        if provider.type.endswith(":kubernetes"):
            provider.properties["kubeconfig"] = CLUSTER_B
        else:
            provider.properties["region"] = REGION_B
    for r in resources:
        if r.provider_urn in providers:
            attach(r, providers[r.provider_urn])
    return resources


def reported(names_by_urn: dict[str, str], urns: list[str | None]) -> set[str]:
    return {names_by_urn[u] for u in urns if u is not None}
