"""Node and Pod Identity IAM: every Pod Identity role is bound to this cluster (issue 14: trust conditions)."""

from __future__ import annotations

import json

from components.iam import pod_identity_trust
from tests.conftest import program_result
from tests.tokens import ADDON, ATTACHMENT, ROLE
from tools.mocks import ACCOUNT_ID
from tools.program import ProgramResult


def pod_identity_roles(result: ProgramResult) -> dict[str, dict]:
    """name -> trust statement of every role whose trust policy names the Pod Identity service."""
    roles = {}
    for role in result.of_type(ROLE):
        statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        if any(s["Principal"] == {"Service": "pods.eks.amazonaws.com"} for s in statement):
            assert len(statement) == 1, role.name
            roles[role.name] = statement[0]
    return roles


def test_every_pod_identity_role_trusts_only_this_cluster(each_stack: ProgramResult) -> None:
    roles = pod_identity_roles(each_stack)
    # Karpenter's controller, the EBS CSI driver, the gateway's Bedrock role and the LB controller at least.
    assert {"karpenter-controller-role", "cluster-ebs-csi-role"} <= set(roles)
    assert len(roles) >= 4, sorted(roles)
    cluster = each_stack.outputs["clusterName"]
    region = {"dev": "us-east-1", "staging": "us-west-2", "prod": "us-east-1"}
    for name, statement in roles.items():
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"], name
        arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
            "ArnEquals": {"aws:SourceArn": arn},
        }, name
        assert arn.startswith("arn:aws:eks:"), (name, arn)
        assert arn.endswith(f":{ACCOUNT_ID}:cluster/{cluster}"), (name, arn)
        assert arn.split(":")[3] in region.values()


def test_the_source_arn_is_the_clusters_own_arn(dev: ProgramResult) -> None:
    eks = dev.named("eks:index:Cluster", "cluster-eks")
    assert eks.inputs["name"] == "agents-dev"
    for statement in pod_identity_roles(dev).values():
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == (
            f"arn:aws:eks:us-east-1:{ACCOUNT_ID}:cluster/agents-dev"
        )


def test_trust_document_shape() -> None:
    doc = json.loads(pod_identity_trust("111122223333", "arn:aws:eks:eu-west-1:111122223333:cluster/c"))
    assert doc["Version"] == "2012-10-17"
    (statement,) = doc["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}
    assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": "arn:aws:eks:eu-west-1:111122223333:cluster/c"}


# --- node roles: no CNI policy (Pod Identity on aws-node instead), SSM only on request

NODE_ROLES = ("cluster-core-node-role", "karpenter-node-role", "kata-node-role")


def managed_policies(result: ProgramResult, role_name: str) -> set[str]:
    role = result.named(ROLE, role_name)
    return {a.inputs["policyArn"].rsplit("/", 1)[1] for a in result.of_type(ATTACHMENT) if a.parent == role.urn}


def test_node_roles_carry_neither_the_cni_policy_nor_ssm_by_default() -> None:
    result = program_result("dev", {"agent-platform:kataManagedNodeGroup": True})
    for name in NODE_ROLES:
        assert managed_policies(result, name) == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"}


def test_node_ssm_access_is_opt_in_for_every_node_role() -> None:
    result = program_result("dev", {"agent-platform:kataManagedNodeGroup": True, "agent-platform:nodeSsmAccess": True})
    for name in NODE_ROLES:
        assert "AmazonSSMManagedInstanceCore" in managed_policies(result, name), name
        assert "AmazonEKS_CNI_Policy" not in managed_policies(result, name), name


def test_vpc_cni_gets_its_policy_through_pod_identity_on_aws_node(each_stack: ProgramResult) -> None:
    cni = each_stack.named(ADDON, "cluster-vpc-cni")
    role = each_stack.named(ROLE, "cluster-vpc-cni-role")
    assert cni.inputs["podIdentityAssociations"] == [
        {"roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}", "serviceAccount": "aws-node"}
    ]
    assert managed_policies(each_stack, role.name) == {"AmazonEKS_CNI_Policy"}
    assert role.name in pod_identity_roles(each_stack)  # with the cluster-bound trust conditions
    # The credentials come from the Pod Identity agent: its add-on and the policy exist before the CNI's.
    agent = each_stack.named(ADDON, "cluster-eks-pod-identity-agent")
    attachment = next(a for a in each_stack.of_type(ATTACHMENT) if a.parent == role.urn)
    assert {agent.urn, attachment.urn} <= set(cni.dependencies)
    # ...and every node waits for the CNI add-on.
    for group in each_stack.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert cni.urn in group.dependencies


def test_only_the_cni_role_carries_the_cni_policy(each_stack: ProgramResult) -> None:
    holders = {
        a.parent for a in each_stack.of_type(ATTACHMENT) if a.inputs["policyArn"].endswith("/AmazonEKS_CNI_Policy")
    }
    assert holders == {each_stack.named(ROLE, "cluster-vpc-cni-role").urn}
