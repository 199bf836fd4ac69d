"""Builders and expectations shared by the policy pack tests (tests/policies/), over tests/policy_cases.py."""

from __future__ import annotations

from typing import Any

from pulumi_policy import ResourceValidationPolicy

from tests.policy_cases import KINDS, PATCH_KINDS, UNKNOWN, Kind, k8s, resource, run_resource_policy, workload
from tests.tokens import LAUNCH_TEMPLATE, NODE_CLASS, NODE_GROUP, NODE_POOL
from tools.analyzer import AnalyzerResource, Violation

KIND_IDS = [k.id for k in KINDS]
PATCH_IDS = [k.id for k in PATCH_KINDS]
NAMESPACE = "kubernetes:core/v1:Namespace"
AWS_LB = "aws:lb/loadBalancer:LoadBalancer"
LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
LB_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-attributes"
SANDBOX = "agent-platform.io/sandbox"
CROSS_ZONE = {LB_ATTRIBUTES: "load_balancing.cross_zone.enabled=true"}


def who(kind: Kind) -> str:
    return f"{kind.kind} tenant-a/hermes"


def check(policy: ResourceValidationPolicy, kind: Kind, spec: Any, **kwargs: Any) -> list[str]:
    config = kwargs.pop("config", None)
    outcome = run_resource_policy(policy, kind.resource_type, workload(kind, spec, **kwargs), config)
    assert outcome.unknown is None, outcome.unknown.message
    return outcome.messages


def workload_resource(kind: Kind, spec: Any, name: str = "hermes", **kwargs: Any) -> AnalyzerResource:
    return resource(kind.resource_type, name, workload(kind, spec, name=name, **kwargs))


def policy_levels(violations: list[Violation]) -> dict[str, str]:
    return {v.policy: v.enforcement_level for v in violations}


def namespace_resource(name: str, sandbox: bool) -> AnalyzerResource:
    labels = {"agent-platform.io/sandbox": "true"} if sandbox else {}
    return resource(NAMESPACE, name, k8s("v1", "Namespace", name, labels=labels))


def deployment_resource(
    name: str, spec: dict[str, Any], *, sandbox: bool, namespace: str = "tenant-a", **kw: Any
) -> Any:
    kind = KINDS[1]
    return resource(kind.resource_type, name, workload(kind, spec, sandbox=sandbox, namespace=namespace), **kw)


def deployment_patch_resource(
    name: str, spec: dict[str, Any], namespace: str = "tenant-a", **kw: Any
) -> AnalyzerResource:
    kind = PATCH_KINDS[1]
    props = workload(kind, spec, sandbox=False, namespace=namespace, name="hermes")
    return resource(kind.resource_type, name, props, **kw)


def lb_service(annotations: dict[str, str], spec_type: str = "LoadBalancer", **spec: Any) -> dict[str, Any]:
    return k8s(
        "v1",
        "Service",
        "litellm",
        {"type": spec_type, "ports": [{"port": 4000}], **spec},
        namespace="litellm",
        annotations=annotations,
    )


def launch_template(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "kata-nodes",
        "cpuOptions": {"nestedVirtualization": "enabled"},
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2},
        "instanceType": "m8i.2xlarge",
    }
    base.update(props)
    return {k: v for k, v in base.items() if v is not None}


def node_stack(
    instance_types: list[str] | None,
    *,
    link: str = "property",
    template_type: str | None = "m8i.xlarge",
) -> tuple[list[AnalyzerResource], AnalyzerResource]:
    lt = resource(LAUNCH_TEMPLATE, "kata-lt", launch_template(instanceType=template_type))
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


def node_pool(
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


def ec2_node_class(name: str = "kata", nested: str | None = "enabled") -> AnalyzerResource:
    spec: dict[str, Any] = {"amiSelectorTerms": [{"alias": "al2023@latest"}], "role": "KarpenterNode"}
    if nested:
        spec["cpuOptions"] = {"nestedVirtualization": nested}
    return resource(NODE_CLASS, f"class-{name}", k8s("karpenter.k8s.aws/v1", "EC2NodeClass", name, spec))
