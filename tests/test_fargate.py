"""The Fargate tier (issue 28): what a Fargate tenant may configure, what the program declares for it (profile, pod
execution role, pod security group, SecurityGroupPolicy), a stack mixing all three tiers, and the deploy-time rules on
profiles. The gates' parity on Fargate pods is in the shared corpus (tests/sandbox_corpus.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_policies import sandbox_namespace_runtime_class

from components.config.fargate import fargate_size
from components.contracts.labels import FARGATE_POD_LABELS, ISOLATION_LABEL
from tests.configs import config_error, parse_config
from tests.conftest import program_result
from tests.policy_cases import PACK_DIR, resource, run_stack_policy
from tests.sandbox_corpus import FARGATE_NAMESPACE, build, fargate_spec, namespace
from tests.schemas import validate_object
from tools.analyzer import run_pack
from tools.engine import analyzer_resources
from tools.program import ProgramResult

PROFILE = "aws:eks/fargateProfile:FargateProfile"
SGP = "kubernetes:vpcresources.k8s.aws/v1beta1:SecurityGroupPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
INGRESS, EGRESS = (
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"),
)


def fargate(*agents: dict[str, Any]) -> dict[str, Any]:
    return {"name": "initech", "isolation": "fargate", "agents": list(agents) or [{"name": "bot", "type": "hermes"}]}


def agent(**fields: Any) -> dict[str, Any]:
    return {"name": "bot", "type": "hermes", **fields}


# --- configuration: what Fargate lacks is refused, one line naming the key


@pytest.mark.parametrize(
    ("tenant", "key", "reason"),
    [
        (fargate(agent(runtimeClass="kata-clh")), "agents[0].runtimeClass", "take no runtime class"),
        (fargate(agent(storageGiB=10)), "agents[0].storageGiB", "no EBS volumes"),
        (fargate(agent(warmPool=1)), "agents[0].warmPool", "no warm pools on Fargate"),
        (fargate(agent(vmCpus=1)), "agents[0].vmCpus", "Kata VM sizing"),
        (fargate(agent(vmMemoryMiB=512)), "agents[0].vmMemoryMiB", "Kata VM sizing"),
        ({**fargate(), "dedicatedNodes": True}, "dedicatedNodes", "Fargate has no nodes to dedicate"),
        (fargate(agent(cpu="16", memory="120Gi")), "agents[0].memory", "largest Fargate pod"),
        (fargate(agent(cpu="32", memory="64Gi")), "agents[0].memory", "largest Fargate pod"),
        ({**fargate(), "isolation": "firecracker"}, "isolation", "not one of kata, gvisor, fargate"),
        ({**fargate(), "isolation": "gvisor"}, "agents[0].runtimeClass", "unknown runtime class 'gvisor'"),
        ({**fargate(agent(runtimeClass="gvisor")), "isolation": "kata"}, "agents[0].runtimeClass", "not a Kata"),
    ],
)
def test_what_fargate_lacks_is_refused(tenant: dict[str, Any], key: str, reason: str) -> None:
    message = config_error(tenants=[tenant])
    assert message.startswith(f"agent-platform:tenants[0].{key}: "), message
    assert reason in message, message
    assert "\n" not in message


def test_tiers_default_and_mix() -> None:
    cfg = parse_config(
        gvisor=True,
        tenants=[
            {"name": "a", "agents": [agent()]},
            {"name": "g", "isolation": "gvisor", "agents": [agent()]},
            fargate(),
        ],
    )
    assert [(t.isolation, t.agents[0].runtime_class) for t in cfg.tenants] == [
        ("kata", "kata-clh"),
        ("gvisor", "gvisor"),
        ("fargate", ""),
    ]
    assert [t.namespace for t in cfg.fargate_tenants] == ["tenant-initech"]
    # A stack whose default runtime class is gvisor: its tenants are gVisor tenants unless they say otherwise.
    gvisor_default = parse_config(
        gvisor=True, defaultRuntimeClass="gvisor", tenants=[{"name": "a", "agents": [agent()]}]
    )
    assert gvisor_default.tenants[0].isolation == "gvisor"


def test_sizes_round_up_as_aws_documents() -> None:
    """fargate-pod-configuration.html: +256 MB, then the nearest combination (its example: 1 vCPU and 8 GB of
    requests run as 2 vCPU / 9 GB... and unset requests as 0.25 vCPU / 0.5 GB)."""
    assert str(fargate_size("1", "8Gi")) == "2 vCPU / 9 GB"
    assert str(fargate_size("100m", "128Mi")) == "0.25 vCPU / 0.5 GB"
    assert str(fargate_size("1", "2Gi")) == "1 vCPU / 3 GB"
    assert str(fargate_size("4", "30Gi")) == "8 vCPU / 32 GB"  # 30 GB + 256 MB is past 4 vCPU's largest
    assert str(fargate_size("16", "119Gi")) == "16 vCPU / 120 GB"
    assert fargate_size("16", "120Gi") is None
    size = fargate_size("1", "2Gi")
    assert size is not None
    assert round(size.hourly_usd, 5) == round(0.04048 + 3 * 0.004445, 5)


def test_the_tenant_sees_what_holds_differently() -> None:
    cfg = parse_config(tenants=[fargate(agent(cpu="1", memory="2Gi"))])
    warnings = "\n".join(cfg.warnings)
    assert "agent-platform:tenants[0].isolation: fargate: no NetworkPolicy is enforced on Fargate" in warnings
    assert "agent-platform:tenants[0].isolation: fargate pulls images over the pod's own network interface" in warnings
    assert "agent-platform:tenants[0].agents[0].memory: Fargate bills 1 vCPU / 3 GB" in warnings
    many = parse_config(tenants=[{**fargate(), "name": f"t{i}"} for i in range(11)])
    assert any("11 Fargate tenants need as many Fargate profiles" in w for w in many.warnings)
    assert parse_config(tenants=[{"name": "a", "agents": [agent()]}]).warnings == ()


# --- the program: profile, role, security group, SecurityGroupPolicy


@pytest.fixture(scope="module")
def dev() -> ProgramResult:
    return program_result("dev")


def test_one_profile_binds_the_namespace_and_the_tier_label_in_private_subnets(dev: ProgramResult) -> None:
    (profile,) = dev.of_type(PROFILE)
    inputs = profile.inputs
    assert inputs["fargateProfileName"] == "tenant-initech"
    assert inputs["selectors"] == [{"namespace": FARGATE_NAMESPACE, "labels": FARGATE_POD_LABELS}]
    assert inputs["subnetIds"] == dev.outputs["privateSubnetIds"]
    assert inputs["clusterName"] == dev.outputs["clusterName"]
    role = next(r for r in dev.registrations if r.urn.endswith("::initech-fargate-pod-execution"))
    assert role.urn in profile.property_dependencies["podExecutionRoleArn"]
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "eks-fargate-pods.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]
    assert arn.startswith("arn:aws:eks:us-east-1:")
    assert arn.endswith(":fargateprofile/agents-dev/tenant-initech/*")
    (attachment,) = [
        r
        for r in dev.registrations
        if r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment" and r.parent == role.urn
    ]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"


def pod_rules(result: ProgramResult) -> set[tuple[Any, ...]]:
    found = set()
    for kind, direction in ((INGRESS, "in"), (EGRESS, "out")):
        for r in result.of_type(kind):
            if "agent-platform:tenants:FargateTier$" in r.urn:
                i = r.inputs
                peer = i.get("referencedSecurityGroupId") or i.get("cidrIpv4")
                found.add((direction, i["ipProtocol"], i.get("fromPort"), peer))
    return found


def test_the_pod_security_group_allows_only_the_sandbox_paths(dev: ProgramResult) -> None:
    cluster, vpc, resolver = dev.outputs["clusterSecurityGroupId"], "10.1.0.0/16", "10.1.0.2/32"
    assert pod_rules(dev) == {
        ("in", "tcp", 10250, cluster),  # kubelet: logs, exec, metrics through the API server
        ("out", "tcp", 443, cluster),  # the control plane (Fargate's kubelet shares the pod's interface)
        ("out", "udp", 53, resolver),
        ("out", "tcp", 53, resolver),
        ("out", "tcp", 4000, vpc),  # the tenant gateway NLB
        ("out", "tcp", 3128, vpc),  # the egress proxy NLB
        ("out", "-1", None, "198.51.100.0/24"),  # the tenant's own egress.cidrs
    }
    open_mode = pod_rules(mixed())  # egressMode open: HTTPS anywhere, as the Kata NetworkPolicy allows, no proxy
    assert ("out", "tcp", 443, "0.0.0.0/0") in open_mode
    assert ("out", "tcp", 3128, vpc) not in open_mode


def test_the_namespace_binds_its_pods_to_the_group(dev: ProgramResult) -> None:
    (policy,) = dev.of_type(SGP)
    group = next(r for r in dev.registrations if r.urn.endswith("::initech-fargate-pods-sg"))
    assert policy.inputs["metadata"]["namespace"] == FARGATE_NAMESPACE
    (group_id,) = policy.inputs["spec"]["securityGroups"]["groupIds"]
    assert policy.inputs["spec"] == {
        "podSelector": {"matchLabels": FARGATE_POD_LABELS},
        "securityGroups": {"groupIds": [group_id]},
    }
    assert group_id.startswith("sg-")
    assert group.urn in policy.property_dependencies["spec"]
    deployment = dev.named(DEPLOYMENT, "initech-hermes")
    assert {policy.urn, dev.of_type(PROFILE)[0].urn} <= set(deployment.dependencies)
    template = deployment.inputs["spec"]["template"]
    assert template["metadata"]["labels"][ISOLATION_LABEL] == "fargate"
    assert "runtimeClassName" not in template["spec"]
    ns = dev.named("kubernetes:core/v1:Namespace", "initech-ns").inputs["metadata"]["labels"]
    assert ns[ISOLATION_LABEL] == "fargate"
    assert dev.named("kubernetes:core/v1:Namespace", "acme-ns").inputs["metadata"]["labels"][ISOLATION_LABEL] == "kata"
    validate_object({k: v for k, v in policy.inputs.items() if not k.startswith("__")})  # the CRD EKS runs


def mixed() -> ProgramResult:
    """The dev stack with one tenant per tier, in open egress mode (one program run for both)."""
    tenants = [
        {"name": "acme", "agents": [agent()]},
        {"name": "umbrella", "isolation": "gvisor", "agents": [agent()]},
        {"name": "initech", "isolation": "fargate", "agents": [agent()]},
    ]
    overrides = {
        "gvisor": True,
        "tenants": tenants,
        "knownTenants": [t["name"] for t in tenants],  # the stack's record of its tenants (docs/tenants.md)
        "tenantSecrets": {},
        "egressMode": "open",
    }
    return program_result("dev", {f"agent-platform:{k}": v for k, v in overrides.items()})


def test_a_stack_mixing_all_three_tiers_previews_clean() -> None:
    result = mixed()
    classes = {r.name: r.inputs["spec"]["template"]["spec"].get("runtimeClassName") for r in result.of_type(DEPLOYMENT)}
    assert {k: classes[k] for k in ("acme-bot", "umbrella-bot", "initech-bot")} == {
        "acme-bot": "kata-clh",
        "umbrella-bot": "gvisor",
        "initech-bot": None,
    }
    allowed = {"allowedRuntimeClasses": ["kata-clh", "kata-qemu", "gvisor"]}  # the stack's enabled classes
    config = {"sandbox-runtime-class": allowed, "sandbox-namespace-runtime-class": allowed}
    violations = run_pack(PACK_DIR, analyzer_resources(result), config)
    assert [v for v in violations if v.policy != "sandbox-egress-allowlist"] == []  # open mode: reported, as always


# --- deploy time: profiles and the pods they bind


def _stack(profile_labels: dict[str, str], profile_namespace: str = FARGATE_NAMESPACE) -> list[Any]:
    profile = resource(PROFILE, "profile", {"selectors": [{"namespace": profile_namespace, "labels": profile_labels}]})
    pod = resource(
        "kubernetes:apps/v1:Deployment",
        "agent",
        build("Deployment", fargate_spec(), FARGATE_NAMESPACE, True, pod_labels=FARGATE_POD_LABELS),
    )
    return [resource("kubernetes:core/v1:Namespace", "ns", namespace(FARGATE_NAMESPACE)), profile, pod]


@pytest.mark.parametrize(
    ("labels", "profile_namespace", "problem"),
    [
        ({"tier": "fargate"}, FARGATE_NAMESPACE, "are not exactly agent-platform.io/isolation=fargate"),
        ({**FARGATE_POD_LABELS, "app": "x"}, FARGATE_NAMESPACE, "are not exactly"),
        ({}, FARGATE_NAMESPACE, "labels (none)"),
        (FARGATE_POD_LABELS, "tenant-*", "has a wildcard"),
        (FARGATE_POD_LABELS, "tenant-initec?", "has a wildcard"),
        ({ISOLATION_LABEL: "farg*"}, FARGATE_NAMESPACE, "has a wildcard"),
    ],
)
def test_a_profile_that_binds_loosely_binds_nothing(
    labels: dict[str, str], profile_namespace: str, problem: str
) -> None:
    """Label mismatch or wildcard: the profile is reported, and the pod that relied on it is refused (it would run
    on an EC2 node without a micro-VM if the profile did not match it)."""
    outcome = run_stack_policy(sandbox_namespace_runtime_class, _stack(labels, profile_namespace))
    profile_message, pod_message = outcome.messages
    assert profile_message.startswith("FargateProfile profile: selectors[0]: ")
    assert problem in profile_message
    assert "is bound to no Fargate profile" in pod_message
    assert run_stack_policy(sandbox_namespace_runtime_class, _stack(dict(FARGATE_POD_LABELS))).messages == []


def test_the_pack_and_the_program_name_the_same_fargate_facts() -> None:
    from agent_policies import fargate as pack

    from components.contracts import labels
    from components.tenants.fargate import profile_selectors
    from tests.test_admission import FARGATE_TENANT

    assert (pack.ISOLATION_LABEL, pack.FARGATE) == (labels.ISOLATION_LABEL, labels.FARGATE)
    assert (pack.FARGATE_SCHEDULER, pack.FARGATE_COMPUTE_TYPE) == (
        labels.FARGATE_SCHEDULER,
        labels.FARGATE_COMPUTE_TYPE,
    )
    assert profile_selectors(FARGATE_TENANT) == [
        {"namespace": FARGATE_NAMESPACE, "labels": {pack.ISOLATION_LABEL: pack.FARGATE}}
    ]


def test_messages_name_the_field_and_why(dev: ProgramResult) -> None:
    """Admission's messages for a tenant who tries to leave the micro-VM (the pack's say the same in its words)."""
    from tests import kube_cel
    from tests.test_admission import rendered

    gates = rendered(dev)

    def denied(kind: str, spec: dict[str, Any], ns: str = FARGATE_NAMESPACE, **fields: Any) -> list[str]:
        obj = build(kind, spec, ns, True, pod_labels=fields.pop("pod_labels", FARGATE_POD_LABELS), **fields)
        return [message for _, message in kube_cel.admit(*gates, obj, namespace(ns)).denials]

    why = "this namespace is bound to a Fargate profile, so every sandbox pod here must be a Fargate pod"
    (node,) = denied("Pod", fargate_spec("Pod", nodeName="ip-10-1-2-3"))
    assert node == f"remove spec.nodeName: it skips the scheduler and lands on any node; {why}."
    (scheduler,) = denied("Pod", fargate_spec("Pod", schedulerName=None))
    assert scheduler.startswith("leave spec.schedulerName to EKS: a Pod must be scheduled by fargate-scheduler")
    (annotation,) = denied("Deployment", fargate_spec(), annotations={"eks.amazonaws.com/compute-type": "ec2"})
    assert annotation.startswith(
        "remove the pod annotation eks.amazonaws.com/compute-type (ec2 keeps a pod off Fargate)"
    )
    (label,) = denied("Deployment", fargate_spec(), pod_labels={})
    assert label.startswith("label the pod template agent-platform.io/isolation=fargate")
    (claim,) = denied("Deployment", fargate_spec(), ns="tenant-a")
    assert claim.startswith("set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu;")
