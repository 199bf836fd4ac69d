"""Kata nodes from an EKS managed node group: 8th-gen Intel instances with EC2 nested virtualization
enabled in their launch template (no AWS CLI step), tainted so only sandboxes land there.

The Kata runtime itself (kata-deploy, RuntimeClasses) lives in components/kata_runtime.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster import AMI_TYPE, Cluster, node_launch_template, node_role
from components.config import NodeGroupConfig
from components.labels import KATA_NODE_SELECTOR, KATA_TAINT

NESTED_VIRTUALIZATION = {"nested_virtualization": "enabled"}
# Hop limit 1: the IMDSv2 token response cannot cross the extra hop into a pod network namespace (or a
# Kata guest), so untrusted agents cannot read the node role's credentials even if a NetworkPolicy
# were missing. Nothing on Kata nodes outside the host network needs IMDS (Pod Identity serves pods).
KATA_IMDS_HOP_LIMIT = 1
# Kubernetes taint effect -> EKS API enum.
_EKS_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


@dataclass(frozen=True)
class KataNodesArgs:
    config: NodeGroupConfig
    cluster: Cluster
    cluster_name: str  # plain name from config, for tags
    user_data: str | None = None  # MIME multipart node setup (the kata-fc devmapper pool when enabled)


class KataNodes(pulumi.ComponentResource):
    node_role_arn: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    node_group: aws.eks.NodeGroup

    def __init__(self, name: str, args: KataNodesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:kata:KataNodes", name, None, opts)
        cfg, cluster = args.config, args.cluster
        role = node_role(name, parent=self)
        template = node_launch_template(
            name,
            node_name="kata",
            cluster_name=args.cluster_name,
            security_group_id=cluster.cluster_security_group_id,
            disk_gib=cfg.disk_gib,
            hop_limit=KATA_IMDS_HOP_LIMIT,
            cpu_options=NESTED_VIRTUALIZATION,
            tags={"karpenter.sh/discovery": args.cluster_name},
            user_data=args.user_data,
            parent=self,
        )
        self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=cluster.name,
            version=cluster.version,
            node_role_arn=role.role.arn,
            subnet_ids=cluster.private_subnet_ids,
            ami_type=AMI_TYPE,
            capacity_type="ON_DEMAND",
            instance_types=list(cfg.instance_types),
            scaling_config={"min_size": cfg.min_size, "desired_size": cfg.desired_size, "max_size": cfg.max_size},
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels=dict(KATA_NODE_SELECTOR),
            taints=[
                {
                    "key": KATA_TAINT["key"],
                    "value": KATA_TAINT["value"],
                    "effect": _EKS_TAINT_EFFECTS[KATA_TAINT["effect"]],
                }
            ],
            node_repair_config={"enabled": True},
            tags={"Name": f"{args.cluster_name}-kata"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*role.ready, *cluster.node_prerequisites]),
        )
        self.node_role_arn = role.role.arn
        self.launch_template_id = template.id
        self.register_outputs({"nodeRoleArn": self.node_role_arn, "launchTemplateId": self.launch_template_id})
