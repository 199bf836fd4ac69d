"""EKS control plane (pulumi-eks) and the Kubernetes provider every in-cluster resource uses.

SKELETON: issue 3 completes it (KMS secrets encryption, access entries, add-ons, logs, core node
group, gp3 StorageClass). The public attributes below are the interface other components use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.config import ClusterConfig


@dataclass(frozen=True)
class ClusterArgs:
    config: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    public_subnet_ids: list[pulumi.Input[str]]
    protect: bool = False


class Cluster(pulumi.ComponentResource):
    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]  # secret
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:cluster:Cluster", name, None, opts)
        cfg = args.config
        cluster = eks.Cluster(
            f"{name}-eks",
            name=cfg.name,
            version=cfg.kubernetes_version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            public_subnet_ids=args.public_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            create_oidc_provider=True,
            authentication_mode=eks.AuthenticationMode.API,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.name = cluster.eks_cluster.name
        self.endpoint = cluster.eks_cluster.endpoint
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_provider_url = cluster.oidc_provider_url
        self.cluster_security_group_id = cluster.cluster_security_group_id
        self.node_security_group_id = cluster.node_security_group_id
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.name, "endpoint": self.endpoint})
