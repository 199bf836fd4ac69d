"""Kata nodes from an EKS managed node group: 8th-gen Intel instances with EC2 nested virtualization
enabled in their launch template (no AWS CLI step), tainted so only sandboxes land there.

The Kata runtime itself (kata-deploy, RuntimeClasses) lives in components/runtime/kata_deploy.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cluster.node_group import NodeGroupCluster, NodeGroupSpec, managed_node_group
from components.config import NodeGroupConfig
from components.contracts.cluster import DISCOVERY_TAG
from components.contracts.labels import KATA_NODE_SELECTOR, KATA_TAINT

NESTED_VIRTUALIZATION = {"nested_virtualization": "enabled"}
# Hop limit 1: the IMDSv2 token response cannot cross the extra hop into a pod network namespace (or a
# Kata guest), so untrusted agents cannot read the node role's credentials even if a NetworkPolicy
# were missing. Nothing on Kata nodes outside the host network needs IMDS (Pod Identity serves pods).
KATA_IMDS_HOP_LIMIT = 1


@dataclass(frozen=True)
class KataNodesArgs:
    config: NodeGroupConfig
    cluster: NodeGroupCluster  # the few cluster facts a node group needs
    user_data: str | None = None  # MIME multipart node setup (the kata-fc devmapper pool when enabled)
    # The sandbox nodes' security group id and what to wait for (components/network/node_security.py); None keeps the
    # EKS cluster SG.
    security_group_id: pulumi.Input[str] | None = None
    security_group: pulumi.Resource | None = None


class KataNodes(pulumi.ComponentResource):
    node_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: KataNodesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:kata:KataNodes", name, None, opts)
        spec = NodeGroupSpec(
            "kata",
            args.config,
            hop_limit=KATA_IMDS_HOP_LIMIT,
            labels=KATA_NODE_SELECTOR,
            taint=KATA_TAINT,
            cpu_options=NESTED_VIRTUALIZATION,
            tags={DISCOVERY_TAG: args.cluster.plain_name},
            user_data=args.user_data,
            security_group_id=args.security_group_id,
            security_group=args.security_group,
        )
        role, _, _ = managed_node_group(name, args.cluster, spec, parent=self)
        self.node_role_arn = role.role.arn
        self.register_outputs({"nodeRoleArn": self.node_role_arn})
