"""Karpenter: controller release on core nodes with Pod Identity, controller IAM scoped to the cluster,
interruption queue + EventBridge rules, node role + access entry, schema-valid Kata EC2NodeClass/NodePool."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from components.capacity.karpenter_specs import node_pool_spec
from tests.configs import default, other_vendored, parse_config
from tests.conftest import program_result
from tests.schemas import validate_custom_resource, validate_object
from tests.tokens import NODE_CLASS, NODE_POOL, RELEASE
from tools.program import ProgramResult, Registration

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
ACCOUNT = "123456789012"


def node_class(result: ProgramResult) -> Registration:
    return result.named(NODE_CLASS, "karpenter-kata-nodeclass")


def node_pool(result: ProgramResult) -> Registration:
    return result.named(NODE_POOL, "karpenter-kata-nodepool")


def controller_policy(result: ProgramResult) -> dict[str, Any]:
    return json.loads(result.named("aws:iam/rolePolicy:RolePolicy", "karpenter-controller-policy").inputs["policy"])


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in policy["Statement"] if s.get("Sid") == sid)


# --- custom resources


def test_custom_resources_are_schema_valid(each_stack: ProgramResult) -> None:
    for reg in (node_class(each_stack), node_pool(each_stack)):
        validate_custom_resource(reg.inputs)
        validate_object(reg.inputs)


def test_schema_validation_catches_a_broken_node_class(dev: ProgramResult) -> None:
    broken = json.loads(json.dumps(node_class(dev).inputs))
    broken["spec"]["cpuOptions"]["nestedVirtualization"] = "on"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(broken)


def test_node_class_enables_nested_virtualization_with_imdsv2_and_encrypted_gp3(dev: ProgramResult) -> None:
    reg = node_class(dev)
    assert reg.inputs["apiVersion"] == "karpenter.k8s.aws/v1"
    assert reg.inputs["metadata"] == {"name": "kata"}
    spec = reg.inputs["spec"]
    assert spec["cpuOptions"] == {"nestedVirtualization": "enabled"}
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    discovery = [{"tags": {"karpenter.sh/discovery": "agents-dev"}}]
    assert spec["subnetSelectorTerms"] == discovery
    # The sandbox nodes' own security group, by id (tests/test_node_security.py checks its rules).
    rule = dev.named(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "sandbox-nodes-in-kubelet-from-cluster"
    )
    assert spec["securityGroupSelectorTerms"] == [{"id": rule.inputs["securityGroupId"]}]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1  # same as the Kata managed group
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "rootVolume": True,
            "ebs": {"volumeSize": "100Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True},
        }
    ]
    # CEL rules of the CRD that jsonschema does not evaluate:
    assert ("role" in spec) != ("instanceProfile" in spec)
    assert not {"eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim"} & set(spec["tags"])
    assert not any(k.startswith("kubernetes.io/cluster") for k in spec["tags"])


def test_node_class_uses_the_karpenter_node_role(dev: ProgramResult) -> None:
    role = dev.named("aws:iam/role:Role", "karpenter-node-role")
    assert node_class(dev).inputs["spec"]["role"] == role.name  # mocks name roles after the resource
    assert dev.outputs["karpenterNodeRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{role.name}"


def test_kata_disk_ami_alias_and_version_come_from_config() -> None:
    other = other_vendored("karpenterVersion")  # published and vendored (a config error otherwise)
    overrides = {
        "agent-platform:kataDiskGiB": 250,
        "agent-platform:karpenterAmiAlias": "al2023@v20251020",
        "agent-platform:karpenterVersion": other,
    }
    result = program_result("staging", overrides)
    spec = node_class(result).inputs["spec"]
    assert spec["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "250Gi"
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20251020"}]
    crds = result.named(RELEASE, "karpenter-crd").inputs
    assert crds["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert crds["version"] == result.named(RELEASE, "karpenter-controller").inputs["version"] == other
    validate_custom_resource(node_class(result).inputs)


@pytest.mark.parametrize(
    ("stack", "capacity", "cpu", "memory", "policy", "after", "budget"),
    [
        ("dev", ["spot", "on-demand"], "64", "256Gi", "WhenEmptyOrUnderutilized", "5m", "10%"),
        ("staging", ["on-demand"], "128", "512Gi", "WhenEmptyOrUnderutilized", "5m", "10%"),
        ("prod", ["on-demand"], "1024", "4096Gi", "WhenEmpty", "15m", "5%"),
    ],
)
def test_node_pool_per_stack(
    stack: str, capacity: list[str], cpu: str, memory: str, policy: str, after: str, budget: str
) -> None:
    spec = node_pool(program_result(stack)).inputs["spec"]
    template = spec["template"]
    assert template["metadata"]["labels"] == {"workload-type": "kata"}
    assert template["spec"]["taints"] == [{"key": "kata", "value": "true", "effect": "NoSchedule"}]
    assert template["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "kata"}
    requirements = {r["key"]: (r["operator"], r["values"]) for r in template["spec"]["requirements"]}
    assert requirements["karpenter.k8s.aws/instance-family"] == ("In", ["c8i", "m8i", "r8i"])
    assert requirements["karpenter.sh/capacity-type"] == ("In", capacity)
    assert requirements["kubernetes.io/arch"] == ("In", ["amd64"])
    assert spec["limits"] == {"cpu": cpu, "memory": memory}
    assert spec["disruption"] == {
        "consolidationPolicy": policy,
        "consolidateAfter": after,
        "budgets": [{"nodes": budget}],
    }


def test_node_pool_matches_the_kata_managed_group() -> None:
    managed = program_result("dev", {"agent-platform:kataManagedNodeGroup": True})
    group = managed.named("aws:eks/nodeGroup:NodeGroup", "kata-nodes").inputs
    template = node_pool(managed).inputs["spec"]["template"]
    assert template["metadata"]["labels"] == group["labels"]
    (taint,) = template["spec"]["taints"]
    assert (taint["key"], taint["value"]) == (group["taints"][0]["key"], group["taints"][0]["value"])


def test_custom_resources_wait_for_the_controller_and_use_the_cluster_provider(dev: ProgramResult) -> None:
    release = dev.named(RELEASE, "karpenter-controller")
    crds = dev.named(RELEASE, "karpenter-crd")
    for reg in (node_class(dev), node_pool(dev)):
        assert {release.urn, crds.urn} <= set(reg.dependencies)
        assert reg.provider.endswith("::cluster-k8s")
    assert node_class(dev).urn in node_pool(dev).dependencies
    # Nodes Karpenter launches can join (access entry) and their security group has its rules.
    deps = set(node_class(dev).dependencies)
    assert dev.named("aws:eks/accessEntry:AccessEntry", "karpenter-node-access").urn in deps
    rules = [  # the sandbox nodes' (a Fargate tenant's pod security group has rules of its own)
        r.urn
        for r in dev.registrations
        if r.type.startswith("aws:vpc/securityGroup") and "agent-platform:tenants:FargateTier$" not in r.urn
    ]
    assert rules
    assert set(rules) <= deps


# --- controller


def test_controller_release_runs_on_core_nodes(dev: ProgramResult) -> None:
    release = dev.named(RELEASE, "karpenter-controller")
    inputs = release.inputs
    assert inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert inputs["version"] == default("karpenterVersion")
    assert inputs["namespace"] == "karpenter"
    assert inputs["skipCrds"] is True
    values = inputs["values"]
    assert values["settings"]["clusterName"] == "agents-dev"
    assert values["settings"]["interruptionQueue"] == "karpenter-interruption"
    assert values["settings"]["clusterEndpoint"] == dev.outputs["clusterEndpoint"]
    assert values["nodeSelector"]["node-role.agent-platform.io/core"] == "true"
    assert values["nodeSelector"] == {"node-role.agent-platform.io/core": "true"}  # merged with the chart's linux
    assert "replicas" not in values
    assert "serviceAccount" not in values
    assert values["controller"]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert dev.named("aws:eks/nodeGroup:NodeGroup", "cluster-core-nodes").urn in release.dependencies
    assert release.provider.endswith("::cluster-k8s")


def test_namespace_is_declared(dev: ProgramResult) -> None:
    ns = dev.named("kubernetes:core/v1:Namespace", "karpenter-ns")
    validate_object(ns.inputs)
    assert ns.inputs["metadata"]["name"] == "karpenter"


def test_controller_role_is_bound_with_pod_identity_before_the_release(dev: ProgramResult) -> None:
    association = dev.named(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-controller-pod-identity"
    )
    role = dev.named("aws:iam/role:Role", "karpenter-controller-role")
    assert association.inputs == {
        "clusterName": "agents-dev",
        "namespace": "karpenter",
        "serviceAccount": "karpenter",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role.name}",
    }
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    # Pods get Pod Identity credentials at admission: the association must exist first.
    assert association.urn in dev.named(RELEASE, "karpenter-controller").dependencies


def test_controller_policy_is_scoped_to_the_cluster(dev: ProgramResult) -> None:
    policy = controller_policy(dev)
    owned = {"aws:ResourceTag/kubernetes.io/cluster/agents-dev": "owned"}
    for sid in ("AllowScopedEC2LaunchTemplateAccessActions", "AllowScopedDeletion", "AllowScopedResourceTagging"):
        assert statement(policy, sid)["Condition"]["StringEquals"].items() >= owned.items(), sid
    create = statement(policy, "AllowScopedEC2InstanceActionsWithTags")["Condition"]["StringEquals"]
    assert create == {
        "aws:RequestTag/kubernetes.io/cluster/agents-dev": "owned",
        "aws:RequestTag/eks:eks-cluster-name": "agents-dev",
    }
    profile = statement(policy, "AllowScopedInstanceProfileCreationActions")["Condition"]["StringEquals"]
    assert profile["aws:RequestTag/topology.kubernetes.io/region"] == "us-east-1"
    assert statement(policy, "AllowAPIServerEndpointDiscovery")["Resource"] == (
        f"arn:aws:eks:us-east-1:{ACCOUNT}:cluster/agents-dev"
    )
    reads = statement(policy, "AllowRegionalReadActions")
    assert reads["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}
    assert "ec2:DescribeInstanceStatus" in reads["Action"]  # required since Karpenter 1.12
    # Under the 10,240-character limit of a role's inline policies.
    assert len(dev.named("aws:iam/rolePolicy:RolePolicy", "karpenter-controller-policy").inputs["policy"]) < 10240


def test_controller_may_pass_only_the_karpenter_node_role(dev: ProgramResult) -> None:
    passrole = statement(controller_policy(dev), "AllowPassingInstanceRole")
    assert passrole["Resource"] == dev.outputs["karpenterNodeRoleArn"]
    assert passrole["Condition"]["StringEquals"]["iam:PassedToService"] == ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]
    passing = [s for s in controller_policy(dev)["Statement"] if "iam:PassRole" in json.dumps(s["Action"])]
    assert [s["Sid"] for s in passing] == ["AllowPassingInstanceRole"]


def test_controller_reads_only_its_interruption_queue(dev: ProgramResult) -> None:
    queue = dev.named("aws:sqs/queue:Queue", "karpenter-interruption")
    sqs = statement(controller_policy(dev), "AllowInterruptionQueueActions")
    assert sqs["Resource"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue.name}"
    assert sorted(sqs["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]


# --- node role


def test_karpenter_node_role_and_access_entry(dev: ProgramResult) -> None:
    role = dev.named("aws:iam/role:Role", "karpenter-node-role")
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {
        r.inputs["policyArn"].rsplit("/", 1)[1]
        for r in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.parent == role.urn
    }
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"}
    entry = dev.named("aws:eks/accessEntry:AccessEntry", "karpenter-node-access").inputs
    assert entry == {
        "clusterName": "agents-dev",
        "principalArn": dev.outputs["karpenterNodeRoleArn"],
        "type": "EC2_LINUX",
    }
    # Karpenter v1 creates the instance profile from spec.role: none is declared here.
    assert not dev.of_type("aws:iam/instanceProfile:InstanceProfile")


# --- interruption handling


def test_interruption_queue(dev: ProgramResult) -> None:
    queue = dev.named("aws:sqs/queue:Queue", "karpenter-interruption").inputs
    assert queue["sqsManagedSseEnabled"] is True
    assert queue["messageRetentionSeconds"] == 300
    policy = json.loads(dev.named("aws:sqs/queuePolicy:QueuePolicy", "karpenter-interruption").inputs["policy"])
    arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:karpenter-interruption"
    allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert (allow["Action"], allow["Resource"]) == ("sqs:SendMessage", arn)
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


EXPECTED_EVENTS = {
    ("aws.health", "AWS Health Event"),
    ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("aws.ec2", "EC2 Instance State-change Notification"),
    ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


def test_eventbridge_rules_send_every_interruption_event_to_the_queue(dev: ProgramResult) -> None:
    queue_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:karpenter-interruption"
    seen = set()
    targets = dev.of_type(TARGET)
    for rule in dev.of_type(RULE):
        pattern = json.loads(rule.inputs["eventPattern"])
        assert set(pattern) == {"source", "detail-type"}
        seen.add((pattern["source"][0], pattern["detail-type"][0]))
        (target,) = [t for t in targets if t.inputs["rule"] == rule.name]
        assert target.inputs["arn"] == queue_arn
        assert target.inputs["targetId"] == "KarpenterInterruptionQueueTarget"
        assert target.parent == rule.urn
    assert seen == EXPECTED_EVENTS
    assert len(targets) == len(EXPECTED_EVENTS)


def test_controller_starts_after_the_interruption_wiring(dev: ProgramResult) -> None:
    deps = set(dev.named(RELEASE, "karpenter-controller").dependencies)
    assert {t.urn for t in dev.of_type(TARGET)} <= deps


parse = parse_config


def pool_object(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "kata"}, "spec": spec}


@pytest.mark.parametrize("after", ["30s", "5m", "1h30m", "Never"])
def test_consolidate_after_accepts_what_the_crd_accepts(after: str) -> None:
    cfg = parse(karpenterConsolidateAfter=after).karpenter
    validate_custom_resource(pool_object(node_pool_spec(cfg)))


def test_the_crd_rejects_day_units_that_the_config_check_catches() -> None:
    spec = node_pool_spec(parse().karpenter)
    spec["disruption"]["consolidateAfter"] = "1d"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(pool_object(spec))


def test_warm_kata_nodes_are_held_by_preemptible_placeholders() -> None:
    """kataWarmNodes: one placeholder per Kata node (anti-affinity), lowest priority, never preempting."""
    prod = program_result("prod")
    deployment = prod.named("kubernetes:apps/v1:Deployment", "karpenter-placeholder").inputs
    assert deployment["spec"]["replicas"] == 2  # Pulumi.prod.yaml
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"workload-type": "kata"}
    assert pod["tolerations"][0]["key"] == "kata"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    priority = prod.named("kubernetes:scheduling.k8s.io/v1:PriorityClass", "karpenter-placeholder-priority").inputs
    assert priority["value"] < 0
    assert priority["preemptionPolicy"] == "Never"
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert pod["containers"][0]["image"] == default("pauseImage")
    assert not program_result("dev").of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")  # kataWarmNodes 0
