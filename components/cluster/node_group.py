"""Node building blocks shared by the core group (components/cluster/eks.py), the opt-in Kata group
(components/capacity/kata_node_group.py) and Karpenter's nodes (components/capacity/karpenter.py): the node IAM role, the launch template
and the EKS managed node group. Plain functions over the few cluster facts they need, so no component has to
hand another one its whole ``Cluster``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.iam import assume_role_policy
from components.config import NodeGroupConfig

AMI_TYPE = "AL2023_x86_64_STANDARD"
ROOT_DEVICE = "/dev/xvda"  # root device of the EKS AL2023 AMIs
# Node roles: joining the cluster (and eks-auth:AssumeRoleForPodIdentity for the Pod Identity agent) and
# pulling images. The CNI's ENI/IP permissions go to the aws-node service account through Pod Identity
# (components/cluster/eks.py VPC_CNI_POLICY), so a pod or VM that reaches a node's credentials cannot rewire the
# VPC's ENIs; Session Manager access is opt-in (config nodeSsmAccess).
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly")
SSM_POLICY = "AmazonSSMManagedInstanceCore"
# Kubernetes taint effect -> EKS API enum.
EKS_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


def partition(parent: pulumi.Resource) -> pulumi.Output[str]:
    return aws.get_partition_output(opts=pulumi.InvokeOptions(parent=parent)).partition


def managed_policy_arn(policy: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """``AmazonEKSWorkerNodePolicy`` -> ``arn:<partition>:iam::aws:policy/AmazonEKSWorkerNodePolicy``."""
    return pulumi.Output.concat("arn:", partition(parent), ":iam::aws:policy/", policy)


@dataclass(frozen=True)
class NodeRole:
    role: aws.iam.Role
    attachments: tuple[aws.iam.RolePolicyAttachment, ...]

    @property
    def ready(self) -> list[pulumi.Resource]:
        """Depend on these before nodes start: the role with all its policies attached."""
        return [self.role, *self.attachments]


def node_policies(ssm: bool) -> tuple[str, ...]:
    """The managed policies of a node role: ``NODE_POLICIES``, plus SSM when ``nodeSsmAccess`` is on."""
    return (*NODE_POLICIES, SSM_POLICY) if ssm else NODE_POLICIES


def node_role(name: str, *, parent: pulumi.Resource, ssm: bool = False) -> NodeRole:
    """An EC2 instance role for EKS nodes with the AWS managed node policies (see ``NODE_POLICIES``)."""
    role = aws.iam.Role(
        f"{name}-node-role",
        assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    attachments = tuple(
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy}",
            role=role.name,
            policy_arn=managed_policy_arn(policy, parent),
            opts=pulumi.ResourceOptions(parent=role),
        )
        for policy in node_policies(ssm)
    )
    return NodeRole(role, attachments)


def node_launch_template(
    name: str,
    *,
    node_name: str,
    cluster_name: str,
    security_group_id: pulumi.Input[str],
    disk_gib: int,
    hop_limit: int,
    parent: pulumi.Resource,
    cpu_options: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    user_data: str | None = None,
) -> aws.ec2.LaunchTemplate:
    """Launch template for an EKS managed node group (no AMI: EKS picks the AL2023 AMI and bootstraps it).

    IMDSv2 is required, the root volume is an encrypted gp3 volume, and the EKS cluster security group
    is attached: a launch template that names security groups replaces the one EKS would add itself.
    ``user_data`` is a MIME multipart document; EKS merges its own nodeadm part into it.
    """
    instance_tags = {"Name": f"{cluster_name}-{node_name}"}
    return aws.ec2.LaunchTemplate(
        f"{name}-lt",
        description=f"EKS {node_name} nodes of {cluster_name}",
        update_default_version=True,
        cpu_options=dict(cpu_options) if cpu_options else None,
        user_data=base64.b64encode(user_data.encode()).decode() if user_data else None,
        metadata_options={
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": hop_limit,
        },
        block_device_mappings=[
            {
                "device_name": ROOT_DEVICE,
                "ebs": {
                    "volume_size": disk_gib,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        vpc_security_group_ids=[security_group_id],
        tag_specifications=[
            {"resource_type": kind, "tags": instance_tags} for kind in ("instance", "volume", "network-interface")
        ],
        tags={**instance_tags, **(tags or {})},
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class NodeGroupCluster:
    """The cluster facts a managed node group needs."""

    name: pulumi.Input[str]  # the EKS cluster's name as an output: the group waits for the control plane
    plain_name: str  # the configured name: tags and descriptions
    version: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]  # the EKS cluster SG, unless the group names its own
    prerequisites: Sequence[pulumi.Resource]  # the node add-ons
    ssm: bool = False  # nodeSsmAccess


@dataclass(frozen=True)
class NodeGroupSpec:
    """What differs between the core and the Kata groups."""

    node_name: str
    config: NodeGroupConfig
    hop_limit: int
    labels: Mapping[str, str]
    taint: Mapping[str, str] | None = None
    cpu_options: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None
    user_data: str | None = None
    security_group_id: pulumi.Input[str] | None = None  # the sandbox nodes' group; None: the cluster SG
    security_group: pulumi.Resource | None = None  # what the group waits for when ``security_group_id`` is set


def managed_node_group(
    name: str, cluster: NodeGroupCluster, spec: NodeGroupSpec, *, parent: pulumi.Resource
) -> tuple[NodeRole, aws.ec2.LaunchTemplate, aws.eks.NodeGroup]:
    """An AL2023 EKS managed node group with its own role and launch template.

    On-demand, one node replaced at a time, node auto-repair on; it waits for the node add-ons.
    """
    role = node_role(name, parent=parent, ssm=cluster.ssm)
    template = node_launch_template(
        name,
        node_name=spec.node_name,
        cluster_name=cluster.plain_name,
        security_group_id=spec.security_group_id or cluster.security_group_id,
        disk_gib=spec.config.disk_gib,
        hop_limit=spec.hop_limit,
        cpu_options=spec.cpu_options,
        tags=spec.tags,
        user_data=spec.user_data,
        parent=parent,
    )
    taint = spec.taint
    taints = [{**taint, "effect": EKS_TAINT_EFFECTS[taint["effect"]]}] if taint else None
    group = aws.eks.NodeGroup(
        f"{name}-nodes",
        cluster_name=cluster.name,
        version=cluster.version,
        node_role_arn=role.role.arn,
        subnet_ids=list(cluster.subnet_ids),
        ami_type=AMI_TYPE,
        capacity_type="ON_DEMAND",
        instance_types=list(spec.config.instance_types),
        scaling_config={
            "min_size": spec.config.min_size,
            "desired_size": spec.config.desired_size,
            "max_size": spec.config.max_size,
        },
        update_config={"max_unavailable": 1},
        launch_template={"id": template.id, "version": template.latest_version.apply(str)},
        labels=dict(spec.labels),
        taints=taints,
        node_repair_config={"enabled": True},
        tags={"Name": f"{cluster.plain_name}-{spec.node_name}"},
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[*role.ready, *cluster.prerequisites, *([spec.security_group] if spec.security_group else [])],
        ),
    )
    return role, template, group
