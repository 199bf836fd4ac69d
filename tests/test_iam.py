"""Node and Pod Identity IAM: every Pod Identity role trusts, by documented session tags, exactly the cluster,
namespace and service account its association binds (issues 14 and 27)."""

from __future__ import annotations

import json

import pytest

from components.aws.iam import POD_IDENTITY_CONDITION_KEYS, pod_identity_trust
from components.cluster.eks import ADDON_NAMESPACE
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


POD_IDENTITY_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def bindings(result: ProgramResult) -> dict[str, tuple[str, str]]:
    """role ARN -> (namespace, service account) of every Pod Identity association: the program's own and the
    add-ons' (an add-on's association binds a service account in the add-on's namespace, kube-system)."""
    bound: dict[str, list[tuple[str, str]]] = {}
    for association in result.of_type(POD_IDENTITY_ASSOCIATION):
        i = association.inputs
        assert not i.get("disableSessionTags"), association.name  # the trust conditions read the session tags
        assert "targetRoleArn" not in i, association.name
        bound.setdefault(i["roleArn"], []).append((i["namespace"], i["serviceAccount"]))
    for addon in result.of_type(ADDON):
        for association in addon.inputs.get("podIdentityAssociations") or []:
            bound.setdefault(association["roleArn"], []).append((ADDON_NAMESPACE, association["serviceAccount"]))
    assert all(len(pairs) == 1 for pairs in bound.values()), bound  # one binding per role
    return {arn: pairs[0] for arn, pairs in bound.items()}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_pod_identity_trust_uses_documented_keys_for_exactly_its_binding(stack: str) -> None:
    result = program_result(stack)
    roles = pod_identity_roles(result)
    # Karpenter's controller, the EBS CSI driver, the gateway's Bedrock role and the LB controller at least.
    assert {"karpenter-controller-role", "cluster-ebs-csi-role", "cluster-vpc-cni-role"} <= set(roles)
    bound = bindings(result)
    cluster = result.outputs["clusterName"]
    for name, statement in roles.items():
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"], name
        assert set(statement["Condition"]) == {"StringEquals"}, name
        condition = statement["Condition"]["StringEquals"]
        assert set(condition) <= POD_IDENTITY_CONDITION_KEYS, (
            name,
            sorted(set(condition) - POD_IDENTITY_CONDITION_KEYS),
        )
        arn = result.named(ROLE, name).inputs.get("arn") or f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        namespace, service_account = bound[arn]  # every trusting role is bound by exactly one association
        assert condition == {
            "aws:SourceAccount": ACCOUNT_ID,
            "aws:RequestTag/eks-cluster-arn": f"arn:aws:eks:us-east-1:{ACCOUNT_ID}:cluster/{cluster}",
            "aws:RequestTag/kubernetes-namespace": namespace,
            "aws:RequestTag/kubernetes-service-account": service_account,
        }, name
    assert set(bound) == {f"arn:aws:iam::{ACCOUNT_ID}:role/{name}" for name in roles}  # and no binding without one


def test_trust_document_shape() -> None:
    cluster = "arn:aws:eks:eu-west-1:111122223333:cluster/c"
    doc = json.loads(pod_identity_trust("111122223333", cluster, "litellm", "litellm"))
    assert doc["Version"] == "2012-10-17"
    (statement,) = doc["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": "111122223333",
            "aws:RequestTag/eks-cluster-arn": cluster,
            "aws:RequestTag/kubernetes-namespace": "litellm",
            "aws:RequestTag/kubernetes-service-account": "litellm",
        }
    }


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
    assert role.name in pod_identity_roles(each_stack)  # with the trust conditions of its binding
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
