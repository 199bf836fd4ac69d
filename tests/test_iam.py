"""Node and Pod Identity IAM: every Pod Identity role is bound to this cluster (issue 14: trust conditions)."""

from __future__ import annotations

import json

from components.iam import pod_identity_trust
from tools.mocks import ACCOUNT_ID
from tools.program import ProgramResult

ROLE = "aws:iam/role:Role"


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
        assert arn.startswith("arn:aws:eks:") and arn.endswith(f":{ACCOUNT_ID}:cluster/{cluster}"), (name, arn)
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
