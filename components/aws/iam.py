"""IAM helpers: roles that EKS Pod Identity binds to a Kubernetes service account.

The one place that writes the Pod Identity trust policy, scoped to this account, this cluster and the one namespace
and service account the role is for, from the session tags Pod Identity sets (documented condition keys only). Details: docs/cluster.md#pod-identity-roles.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
# The condition keys a Pod Identity trust policy may use: the session tags EKS Pod Identity sets (EKS User Guide,
# "Create IAM role with trust policy required by EKS Pod Identity" and "Enable or disable session tags"), and
# aws:SourceAccount (global condition key). aws:SourceArn is not documented for Pod Identity: a public report shows it
# as a pod-identity-association ARN, never the cluster's (docs/cloud.md).
POD_IDENTITY_TAGS = (
    "eks-cluster-arn",
    "eks-cluster-name",
    "kubernetes-namespace",
    "kubernetes-service-account",
    "kubernetes-pod-name",
    "kubernetes-pod-uid",
)
POD_IDENTITY_CONDITION_KEYS = frozenset({"aws:SourceAccount", *(f"aws:RequestTag/{tag}" for tag in POD_IDENTITY_TAGS)})


def pod_identity_trust(account_id: str, cluster_arn: str, namespace: str, service_account: str) -> str:
    """Trust policy (JSON) letting EKS Pod Identity assume the role for ``namespace/service_account`` of
    ``cluster_arn`` only, from the session tags it sets (so its associations must keep session tags on)."""
    statement = {
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
        "Action": list(POD_IDENTITY_ACTIONS),
        "Condition": {
            "StringEquals": {
                "aws:SourceAccount": account_id,
                "aws:RequestTag/eks-cluster-arn": cluster_arn,
                "aws:RequestTag/kubernetes-namespace": namespace,
                "aws:RequestTag/kubernetes-service-account": service_account,
            },
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


def pod_identity_trust_policy(
    cluster_name: pulumi.Input[str], namespace: str, service_account: str, parent: pulumi.Resource
) -> pulumi.Output[str]:
    """The Pod Identity trust policy for ``namespace/service_account`` of ``cluster_name``
    (docs/cluster.md#pod-identity-roles)."""
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=parent)).account_id
    return pulumi.Output.all(account, cluster_arn(cluster_name, parent)).apply(
        lambda v: pod_identity_trust(v[0], v[1], namespace, service_account)
    )


def account_policy(
    parent: pulumi.Resource, build: Callable[..., str], *inputs: pulumi.Input[str]
) -> pulumi.Output[str]:
    """``build(partition, account_id, *inputs)``: a policy document (JSON) naming ARNs of this account, built once
    the provider's partition and account id and ``inputs`` are known."""
    invoke = pulumi.InvokeOptions(parent=parent)
    partition = aws.get_partition_output(opts=invoke).partition
    account = aws.get_caller_identity_output(opts=invoke).account_id
    return pulumi.Output.all(partition, account, *inputs).apply(lambda values: build(*values))


def assume_role_policy(service: str) -> str:
    """Trust policy letting an AWS service (``ec2.amazonaws.com``...) assume the role."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class PodIdentityRole:
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    association: aws.eks.PodIdentityAssociation

    @property
    def ready(self) -> list[pulumi.Resource]:
        """Depend on these before the pods start: EKS injects credentials at pod creation."""
        return [self.role, self.policy, self.association]


def pod_identity_role(
    name: str,
    *,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
    policy_aliases: Sequence[pulumi.Alias] = (),
) -> PodIdentityRole:
    """An IAM role with an inline ``policy`` (JSON), bound to ``namespace/service_account``."""
    opts = pulumi.ResourceOptions(parent=parent)
    trust = pod_identity_trust_policy(cluster_name, namespace, service_account, parent)
    role = aws.iam.Role(f"{name}-role", assume_role_policy=trust, opts=opts)
    role_policy = aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=policy,
        opts=pulumi.ResourceOptions(parent=role, aliases=list(policy_aliases) or None),
    )
    association = aws.eks.PodIdentityAssociation(
        f"{name}-pod-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        opts=opts,
    )
    return PodIdentityRole(role, role_policy, association)


class PodIdentity(pulumi.ComponentResource):
    """``pod_identity_role`` in a component, so that workloads can depend on the role, its policy AND the
    association: EKS Pod Identity injects credentials when a pod is created, so the association must exist
    before the pods do. ``type_token`` keeps the token a deployed stack already has for its caller."""

    role: aws.iam.Role

    def __init__(
        self,
        name: str,
        *,
        cluster_name: pulumi.Input[str],
        namespace: str,
        service_account: str,
        policy: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        type_token: str = "agent-platform:iam:PodIdentity",
        policy_aliases: Sequence[pulumi.Alias] = (),
    ) -> None:
        super().__init__(type_token, name, None, opts)
        self.role = pod_identity_role(
            name,
            cluster_name=cluster_name,
            namespace=namespace,
            service_account=service_account,
            policy=policy,
            parent=self,
            policy_aliases=policy_aliases,
        ).role
        self.register_outputs({"roleArn": self.role.arn})
