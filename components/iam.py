"""IAM helpers: roles that EKS Pod Identity binds to a Kubernetes service account.

Every Pod Identity role trusts ``pods.eks.amazonaws.com`` (``sts:AssumeRole`` + ``sts:TagSession``, the EKS
user guide's "Create IAM role with trust policy required by EKS Pod Identity") only on behalf of THIS cluster:
``aws:SourceAccount`` is the account and ``aws:SourceArn`` the cluster ARN (cross-service confused-deputy
prevention, IAM user guide). Without them any cluster in the account (or a Pod Identity association someone
creates on another cluster) could hand the role to its pods. ``pod_identity_trust_policy`` is the one place
that writes this document: Karpenter, the gateway's roles, the LB controller, the EBS CSI driver and the
VPC CNI all get it.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")


def pod_identity_trust(account_id: str, cluster_arn: str) -> str:
    """Trust policy (JSON) letting EKS Pod Identity assume the role for pods of ``cluster_arn`` only."""
    statement = {
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
        "Action": list(POD_IDENTITY_ACTIONS),
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnEquals": {"aws:SourceArn": cluster_arn},
        },
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def cluster_arn(cluster_name: pulumi.Input[str], parent: pulumi.Resource) -> pulumi.Output[str]:
    """``arn:<partition>:eks:<region>:<account>:cluster/<name>``, built from the provider's account and region
    (callers only know the cluster's name)."""
    invoke = pulumi.InvokeOptions(parent=parent)
    return pulumi.Output.concat(
        "arn:",
        aws.get_partition_output(opts=invoke).partition,
        ":eks:",
        aws.get_region_output(opts=invoke).region,
        ":",
        aws.get_caller_identity_output(opts=invoke).account_id,
        ":cluster/",
        cluster_name,
    )


def pod_identity_trust_policy(cluster_name: pulumi.Input[str], parent: pulumi.Resource) -> pulumi.Output[str]:
    """The Pod Identity trust policy of ``cluster_name`` (see the module docstring)."""
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=parent)).account_id
    return pulumi.Output.all(account, cluster_arn(cluster_name, parent)).apply(lambda v: pod_identity_trust(v[0], v[1]))


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
    role = aws.iam.Role(f"{name}-role", assume_role_policy=pod_identity_trust_policy(cluster_name, parent), opts=opts)
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
