"""Kata managed node group (opt-in: kataManagedNodeGroup): nested-virtualization launch template (IMDSv2, encrypted gp3, cluster SG),
AL2023 node group with the Kata label and taint, sized from config; bad instance types refused."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import FEATURES, program_result
from tests.tokens import LAUNCH_TEMPLATE, NODE_GROUP
from tools.program import ProgramResult

MANAGED = {"agent-platform:kataManagedNodeGroup": True}


def managed(stack: str) -> ProgramResult:
    """The stack with the Kata managed node group turned on."""
    return program_result(stack, MANAGED)


def test_default_stacks_have_no_kata_managed_node_group(each_stack: ProgramResult) -> None:
    """Karpenter-first: the EC2NodeClass sets nested virtualization itself (managed groups may drop it, #2784)."""
    assert [g.name for g in each_stack.of_type(NODE_GROUP)] == ["cluster-core-nodes"]
    assert not [t for t in each_stack.of_type(LAUNCH_TEMPLATE) if t.name == "kata-lt"]
    assert each_stack.outputs["kataNodeRoleArn"] == "arn:aws:iam::123456789012:role/karpenter-node-role"


STACKS = {
    # stack: (instance types, (min, desired, max), disk GiB)
    "dev": (["m8i.2xlarge"], (1, 1, 2), 100),
    "staging": (["m8i.2xlarge", "c8i.2xlarge"], (1, 2, 4), 100),
    "prod": (["m8i.4xlarge", "c8i.4xlarge", "r8i.4xlarge"], (3, 3, 12), 200),
}


@pytest.mark.parametrize("stack", list(STACKS))
def test_launch_template_enables_nested_virtualization(stack: str) -> None:
    result = managed(stack)
    _, _, disk = STACKS[stack]
    lt = result.named(LAUNCH_TEMPLATE, "kata-lt").inputs
    assert lt["cpuOptions"] == {"nestedVirtualization": "enabled"}
    # IMDSv2 only, and the token cannot reach a pod network namespace or a Kata guest (hop limit 1).
    assert lt["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    assert lt["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {"volumeSize": disk, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"},
        }
    ]
    # A launch template naming SGs replaces the one EKS would add: the sandbox nodes' own group, the same
    # Karpenter's EC2NodeClass selects (its rules: tests/test_node_security.py), not the cluster SG.
    rule = result.named(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "sandbox-nodes-in-kubelet-from-cluster"
    )
    assert lt["vpcSecurityGroupIds"] == [rule.inputs["securityGroupId"]]
    assert lt["vpcSecurityGroupIds"] != [result.outputs["clusterSecurityGroupId"]]
    assert lt["tags"]["karpenter.sh/discovery"] == f"agents-{stack}"
    assert "imageId" not in lt
    assert "instanceType" not in lt


@pytest.mark.parametrize("stack", list(STACKS))
def test_node_group_shape(stack: str) -> None:
    result = managed(stack)
    types, (lo, desired, hi), _ = STACKS[stack]
    group = result.named(NODE_GROUP, "kata-nodes")
    inputs = group.inputs
    assert inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert inputs["instanceTypes"] == types
    assert inputs["scalingConfig"] == {"minSize": lo, "desiredSize": desired, "maxSize": hi}
    assert inputs["labels"] == {"workload-type": "kata"}
    assert inputs["taints"] == [{"key": "kata", "value": "true", "effect": "NO_SCHEDULE"}]
    assert inputs["updateConfig"] == {"maxUnavailable": 1}
    assert inputs["subnetIds"] == result.outputs["privateSubnetIds"]
    template = result.named(LAUNCH_TEMPLATE, "kata-lt")
    assert template.urn in group.property_dependencies["launchTemplate"]
    assert inputs["launchTemplate"]["version"] == "1"
    assert "diskSize" not in inputs  # the disk is in the launch template


def test_kata_nodes_have_their_own_role() -> None:
    dev = managed("dev")
    group = dev.named(NODE_GROUP, "kata-nodes")
    role = dev.named("aws:iam/role:Role", "kata-node-role")
    assert (
        group.inputs["nodeRoleArn"] == dev.outputs["kataNodeRoleArn"] == f"arn:aws:iam::123456789012:role/{role.name}"
    )
    assert dev.outputs["kataNodeRoleArn"] != dev.outputs["coreNodeRoleArn"]
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attachments = [r for r in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.parent == role.urn]
    assert len(attachments) == 2  # worker node + ECR read-only (tests/test_iam.py checks which)
    assert {a.urn for a in attachments} <= set(group.dependencies)
    # Networking add-ons are up before the nodes start.
    assert dev.named("aws:eks/addon:Addon", "cluster-vpc-cni").urn in group.dependencies


def test_instance_types_and_sizes_come_from_config() -> None:
    result = program_result(
        "dev",
        {
            **MANAGED,
            "agent-platform:kataInstanceTypes": ["c8i-flex.4xlarge", "r8i.2xlarge"],
            "agent-platform:kataMinSize": 0,
            "agent-platform:kataDesiredSize": 2,
            "agent-platform:kataMaxSize": 5,
            "agent-platform:kataDiskGiB": 300,
        },
    )
    group = result.named(NODE_GROUP, "kata-nodes").inputs
    assert group["instanceTypes"] == ["c8i-flex.4xlarge", "r8i.2xlarge"]
    assert group["scalingConfig"] == {"minSize": 0, "desiredSize": 2, "maxSize": 5}
    lt = result.named(LAUNCH_TEMPLATE, "kata-lt").inputs
    assert lt["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 300


def test_component_parents_its_children() -> None:
    dev = managed("dev")
    component = dev.named("agent-platform:kata:KataNodes", "kata")
    for type_, name in (
        (NODE_GROUP, "kata-nodes"),
        (LAUNCH_TEMPLATE, "kata-lt"),
        ("aws:iam/role:Role", "kata-node-role"),
    ):
        assert dev.named(type_, name).parent == component.urn


def test_firecracker_prepares_the_devmapper_pool_on_every_kata_node() -> None:
    """With kataFirecracker on, both the managed Kata group and Karpenter's nodes get the user data that
    creates the thin pool and registers containerd's devmapper snapshotter; without it, neither has any."""
    with_fc = program_result("dev", FEATURES)
    template = next(r for r in with_fc.of_type("aws:ec2/launchTemplate:LaunchTemplate") if "kata" in r.name)
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert user_data.startswith("MIME-Version: 1.0")
    assert 'plugins."io.containerd.snapshotter.v1.devmapper"' in user_data
    node_class = with_fc.named("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "karpenter-kata-nodeclass").inputs
    assert node_class["spec"]["userData"] == user_data
    assert all(
        "userData" not in r.inputs for r in program_result("dev").of_type("aws:ec2/launchTemplate:LaunchTemplate")
    )
