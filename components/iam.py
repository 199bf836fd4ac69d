"""IAM helpers: roles that EKS Pod Identity binds to a Kubernetes service account."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

POD_IDENTITY_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }
)


def assume_role_policy(service: str) -> str:
    """Trust policy letting an AWS service (``ec2.amazonaws.com``...) assume the role."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def pod_identity_role(
    name: str,
    *,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.iam.Role:
    """An IAM role with an inline ``policy`` (JSON), bound to ``namespace/service_account``."""
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(f"{name}-role", assume_role_policy=POD_IDENTITY_TRUST, opts=opts)
    aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=role))
    aws.eks.PodIdentityAssociation(
        f"{name}-pod-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        opts=opts,
    )
    return role
