"""A Fargate tenant's AWS side: its Fargate profile, the pod execution role that profile uses, and the security group
its pods get through a SecurityGroupPolicy (the Tenant declares that one, in its namespace).

Why each piece looks the way it does, with the AWS sources: docs/fargate.md.
- Profile: the tenant's namespace AND the tier label (components/contracts/labels.py FARGATE_POD_LABELS), no
  wildcard, in the private subnets only (EKS accepts no other). Profiles are immutable: any change replaces it.
- Pod execution role: what Fargate's own agent needs to pull images from ECR (the managed policy
  AmazonEKSFargatePodExecutionRolePolicy), assumable by ``eks-fargate-pods.amazonaws.com`` only for this tenant's
  profile (``aws:SourceArn`` ArnLike, the confused-deputy guard AWS documents). Containers never get it: they have no
  AWS credentials at all (no service-account token, and Pod Identity does not exist on Fargate).
- Security group: VPC CNI NetworkPolicies are not enforced on Fargate, so this group is the tenant's boundary: DNS to
  the VPC resolver, each sandbox service's NLB port on the VPC CIDR, the tenant's own egress cidrs, the control plane
  (443 out, kubelet 10250 in, from the cluster security group: Fargate's kubelet shares the pod's network interface).
  The cluster security group itself is NOT attached, although AWS names it "the easiest way": it allows all egress.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig, TenantConfig
from components.contracts.labels import FARGATE_POD_LABELS
from components.contracts.sandboxes import sandbox_services
from components.network.node_security import ANYWHERE, KUBELET_PORT, port_rule

FARGATE_PODS_PRINCIPAL = "eks-fargate-pods.amazonaws.com"
POD_EXECUTION_POLICY = "AmazonEKSFargatePodExecutionRolePolicy"  # AWS managed: ecr:GetAuthorizationToken, pulls


def profile_name(tenant: TenantConfig) -> str:
    return f"tenant-{tenant.name}"


def profile_selectors(tenant: TenantConfig) -> list[dict[str, object]]:
    """One selector: the tenant's namespace and the tier label, both exact (the gates rely on it, docs/fargate.md)."""
    return [{"namespace": tenant.namespace, "labels": dict(FARGATE_POD_LABELS)}]


def pod_execution_trust(partition: str, region: str, account: str, cluster: str, profile: str) -> str:
    """Fargate may assume the role for pods of this one profile (its ARN ends with a generated id: ArnLike)."""
    arn = f"arn:{partition}:eks:{region}:{account}:fargateprofile/{cluster}/{profile}/*"
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": FARGATE_PODS_PRINCIPAL},
        "Action": "sts:AssumeRole",
        "Condition": {"ArnLike": {"aws:SourceArn": arn}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class FargateTierArgs:
    tenant: TenantConfig
    network: NetworkConfig
    allowlist: bool  # egressMode allowlist: the egress proxy NLB is a sandbox service; open: HTTPS anywhere
    cluster_name: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    cluster_security_group_id: pulumi.Input[str]


class FargateTier(pulumi.ComponentResource):
    """One Fargate tenant's profile, pod execution role and pod security group."""

    security_group_id: pulumi.Output[str]
    profile: aws.eks.FargateProfile

    def __init__(self, name: str, args: FargateTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:tenants:FargateTier", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tenant, profile = args.tenant, profile_name(args.tenant)
        invoke = pulumi.InvokeOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        trust = pulumi.Output.all(
            partition,
            aws.get_region_output(opts=invoke).region,
            aws.get_caller_identity_output(opts=invoke).account_id,
            args.cluster_name,
        ).apply(lambda v: pod_execution_trust(*v, profile))
        role = aws.iam.Role(f"{name}-pod-execution", assume_role_policy=trust, opts=child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-pod-execution-ecr",
            role=role.name,
            policy_arn=pulumi.Output.concat("arn:", partition, f":iam::aws:policy/{POD_EXECUTION_POLICY}"),
            opts=pulumi.ResourceOptions(parent=role),
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-pods-sg",
            description=f"Fargate pods of tenant {tenant.name}",
            vpc_id=args.vpc_id,
            revoke_rules_on_delete=True,
            tags={"Name": f"fargate-{tenant.name}"},
            opts=child,
        )
        self.security_group_id = group.id
        cluster_sg = args.cluster_security_group_id

        def rule(direction: str, what: str, protocol: str, port: int | None, **peer: pulumi.Input[str]) -> None:
            port_rule(
                direction, f"{name}-{direction}-{what}", group.id, protocol, port, opts=child, description=what, **peer
            )

        rule("in", "kubelet-from-cluster", "tcp", KUBELET_PORT, sg=cluster_sg)
        rule("out", "api-server", "tcp", 443, sg=cluster_sg)
        for protocol in ("udp", "tcp"):
            rule("out", f"dns-{protocol}-resolver", protocol, 53, cidr=f"{args.network.resolver_ip}/32")
        for service in sandbox_services(args.allowlist):  # each through its internal NLB, addresses in the VPC
            rule("out", service.name, "tcp", service.port, cidr=args.network.cidr)
        if not args.allowlist:  # open mode (the transition switch): HTTPS anywhere, as the Kata NetworkPolicy allows
            rule("out", "https", "tcp", 443, cidr=ANYWHERE)
        for cidr in tenant.egress_cidrs:
            rule("out", f"tenant-{cidr.replace('/', '-')}", "-1", None, cidr=cidr)
        self.profile = aws.eks.FargateProfile(
            f"{name}-profile",
            cluster_name=args.cluster_name,
            fargate_profile_name=profile,
            pod_execution_role_arn=role.arn,
            subnet_ids=args.private_subnet_ids,
            selectors=profile_selectors(tenant),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
        )
        self.register_outputs({"securityGroupId": self.security_group_id, "profile": profile})
