"""EKS control plane (pulumi-eks), its managed add-ons, the core node group and the Kubernetes provider
every in-cluster resource uses.

Core nodes carry only the EKS cluster security group (sandbox nodes: components/network/node_security.py); add-ons are
first-class ``aws.eks.Addon`` resources. Details: docs/network.md, docs/cluster.md#control-plane-and-add-ons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.aws.iam import pod_identity_trust_policy
from components.cluster import node_group
from components.cluster.node_group import NodeGroupCluster, NodeGroupSpec, managed_node_group, managed_policy_arn
from components.config import ClusterConfig
from components.contracts.cluster import STORAGE_CLASS
from components.contracts.labels import CORE_NODE_SELECTOR
from components.contracts.namespaces import CLOUDWATCH_ADDON, CLOUDWATCH_NAMESPACE

CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
LOG_RETENTION_DAYS = 90
VPC_CNI_POLICY = "AmazonEKS_CNI_Policy"
ADDON_NAMESPACE = "kube-system"  # where the vpc-cni and aws-ebs-csi-driver add-ons run their service accounts
VPC_CNI_SERVICE_ACCOUNT = "aws-node"
# Hop limit 1 on core nodes too: the IMDSv2 token response cannot cross into a pod's network namespace, so a
# compromised core pod (LiteLLM first) cannot read the node role's credentials. Why nothing breaks:
# - host-network pods (aws-node, kube-proxy, the Pod Identity agent) are on the node itself: 1 hop suffices;
# - AWS credentials of every core workload come from EKS Pod Identity (the agent on 169.254.170.23), not IMDS;
# - the region, the only other IMDS read, is given explicitly: Karpenter's AWS_REGION (components/capacity/karpenter.py;
#   its operator asks IMDS only when the SDK has no region), the LB controller's --aws-region and --aws-vpc-id
#   (chart values region/vpcId, components/gateway/litellm.py); the EBS CSI driver falls back from IMDS to the
#   Kubernetes API (node providerID and topology labels, its default metadata sources "imds,kubernetes");
#   LiteLLM names the Bedrock region per model (aws_region_name).
# EKS managed node groups launched without a launch template use hop limit 1 on AL2023 as well.
CORE_IMDS_HOP_LIMIT = 1
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
# The CloudWatch observability add-on (opt-in, cloudWatchObservability): its agent's service account and the managed
# policies the EKS User Guide names for it (workloads-add-ons-available-eks, amazon-cloudwatch-observability); Pod
# Identity is supported from add-on v3.1.0 (CloudWatch User Guide, Container-Insights-setup-EKS-addon).
CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-agent"
CLOUDWATCH_POLICIES = ("CloudWatchAgentServerPolicy", "AWSXrayWriteOnlyAccess")
# vpc-cni: /28 prefixes per ENI slot so Kata nodes are not capped by ENI IPs; the network policy agent
# enforces the tenants' NetworkPolicies.
VPC_CNI_CONFIGURATION = {
    # strict: a new pod starts denied until its NetworkPolicies are programmed (standard mode lets it talk
    # freely meanwhile); a pod no policy selects stays denied, so every namespace has policies
    # (components/network/network_policies.py).
    "env": {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "NETWORK_POLICY_ENFORCING_MODE": "strict"},
    "enableNetworkPolicy": "true",
}
# Add-ons that must run before any node starts (networking, kube-proxy, Pod Identity credentials).
NODE_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
DEFAULT_STORAGE_CLASS = STORAGE_CLASS


@dataclass(frozen=True)
class ClusterArgs:
    config: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    protect: bool = False


class Cluster(pulumi.ComponentResource):
    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    version: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]  # secret
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]  # issuer without https://
    cluster_security_group_id: pulumi.Output[str]  # the EKS-created SG, carried by every node
    node_security_group_id: pulumi.Output[str]  # same SG (pulumi-eks' extra node SG is not created)
    private_subnet_ids: list[pulumi.Input[str]]
    core_node_role_arn: pulumi.Output[str]
    core_node_group: aws.eks.NodeGroup
    addons: dict[str, aws.eks.Addon]
    node_prerequisites: list[pulumi.Resource]  # add-ons every node group must wait for
    provider: k8s.Provider
    config: ClusterConfig

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:cluster:Cluster", name, None, opts)
        cfg = self.config = args.config
        child = pulumi.ResourceOptions(parent=self)
        partition = node_group.partition(self)

        # --- secrets encryption key. EKS authorizes the control plane with a KMS grant it creates at cluster
        # creation (the deployer needs kms:CreateGrant and kms:DescribeKey), so the service role pulumi-eks
        # creates needs no key policy of its own.
        key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"EKS secrets envelope encryption for {cfg.name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.kms.Alias(
            f"{name}-secrets-key",
            name=f"alias/{cfg.name}-eks-secrets",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=key),
        )
        # Created ahead of the cluster so the control plane logs do not stay forever.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/eks/{cfg.name}/cluster",
            retention_in_days=LOG_RETENTION_DAYS,
            opts=child,
        )

        # --- control plane
        public = bool(cfg.public_access_cidrs)
        cluster = eks.Cluster(
            f"{name}-eks",
            name=cfg.name,
            version=cfg.kubernetes_version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            skip_default_security_groups=True,
            create_oidc_provider=True,
            authentication_mode=eks.AuthenticationMode.API,
            encryption_config_key_arn=key.arn,
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            endpoint_private_access=True,
            endpoint_public_access=public,
            public_access_cidrs=list(cfg.public_access_cidrs) if public else None,
            kubernetes_service_ip_address_range=cfg.service_cidr,
            # No self-managed aws-node/kube-proxy/coredns: the managed add-ons below are the only ones.
            bootstrap_self_managed_addons=False,
            use_default_vpc_cni=True,
            kube_proxy_addon_options={"enabled": False},
            coredns_addon_options={"enabled": False},
            deletion_protection=args.protect,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=[log_group]),
        )
        eks_cluster = cluster.eks_cluster
        self.name = eks_cluster.name
        self.endpoint = eks_cluster.endpoint
        self.version = eks_cluster.version
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_provider_url = cluster.oidc_issuer
        self.cluster_security_group_id = eks_cluster.vpc_config.cluster_security_group_id
        self.node_security_group_id = self.cluster_security_group_id
        self.private_subnet_ids = args.private_subnet_ids

        # --- access entries: cluster admins (the Pulumi deployer is bootstrapped by pulumi-eks)
        for arn in cfg.admin_role_arns:
            role_name = arn.rsplit("/", 1)[-1]
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{role_name}",
                cluster_name=self.name,
                principal_arn=arn,
                type="STANDARD",
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{role_name}",
                cluster_name=self.name,
                principal_arn=entry.principal_arn,
                policy_arn=pulumi.Output.concat(
                    "arn:", partition, ":eks::aws:cluster-access-policy/", CLUSTER_ADMIN_POLICY
                ),
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=entry),
            )

        # --- add-ons needed before nodes. The VPC CNI (aws-node, host network) gets its IAM policy through
        # Pod Identity, served by the Pod Identity agent (host network too) on the same node: the agent add-on
        # comes first, and the role with its policy before the add-on.
        cni_role = aws.iam.Role(
            f"{name}-vpc-cni-role",
            assume_role_policy=pod_identity_trust_policy(self.name, ADDON_NAMESPACE, VPC_CNI_SERVICE_ACCOUNT, self),
            opts=child,
        )
        cni_policy = aws.iam.RolePolicyAttachment(
            f"{name}-{VPC_CNI_POLICY}",
            role=cni_role.name,
            policy_arn=managed_policy_arn(VPC_CNI_POLICY, self),
            opts=pulumi.ResourceOptions(parent=cni_role),
        )
        self.addons = {}
        for addon in ("eks-pod-identity-agent", "kube-proxy"):
            self.addons[addon] = self._addon(name, addon, cfg, None)
        self.addons["vpc-cni"] = self._addon(
            name,
            "vpc-cni",
            cfg,
            VPC_CNI_CONFIGURATION,
            [self.addons["eks-pod-identity-agent"], cni_policy],
            pod_identity=[{"role_arn": cni_role.arn, "service_account": VPC_CNI_SERVICE_ACCOUNT}],
        )
        self.node_prerequisites = [self.addons[a] for a in NODE_ADDONS]

        # --- core node group (controllers, LiteLLM, monitoring): no taint, core label
        core_role, _, self.core_node_group = managed_node_group(
            f"{name}-core",
            self.node_group_cluster(),
            NodeGroupSpec("core", cfg.core, hop_limit=CORE_IMDS_HOP_LIMIT, labels=CORE_NODE_SELECTOR),
            parent=self,
        )
        self.core_node_role_arn = core_role.role.arn
        # Kubernetes resources wait for the core nodes (like pulumi-eks' own provider did): Helm releases
        # with pods, webhooks and controllers need somewhere to run.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.core_node_group]),
        )

        # --- add-ons whose pods need nodes
        ebs_csi_role = aws.iam.Role(
            f"{name}-ebs-csi-role",
            assume_role_policy=pod_identity_trust_policy(self.name, ADDON_NAMESPACE, EBS_CSI_SERVICE_ACCOUNT, self),
            opts=child,
        )
        ebs_csi_policy = aws.iam.RolePolicyAttachment(
            f"{name}-AmazonEBSCSIDriverPolicy",
            role=ebs_csi_role.name,
            policy_arn=managed_policy_arn("service-role/AmazonEBSCSIDriverPolicy", self),
            opts=pulumi.ResourceOptions(parent=ebs_csi_role),
        )
        after_nodes = [self.core_node_group]
        self.addons["coredns"] = self._addon(name, "coredns", cfg, None, after_nodes)
        self.addons["aws-ebs-csi-driver"] = self._addon(
            name,
            "aws-ebs-csi-driver",
            cfg,
            None,
            [*after_nodes, ebs_csi_policy],
            pod_identity=[{"role_arn": ebs_csi_role.arn, "service_account": EBS_CSI_SERVICE_ACCOUNT}],
        )

        if cfg.cloudwatch_observability:
            self.addons[CLOUDWATCH_ADDON] = self._cloudwatch_addon(name, cfg, after_nodes)

        # --- default StorageClass: encrypted gp3 through the EBS CSI driver
        k8s.storage.v1.StorageClass(
            f"{name}-{DEFAULT_STORAGE_CLASS}",
            metadata={
                "name": DEFAULT_STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
            # Where the stack protects data, a volume outlives its claim (and a deleted namespace): an operator
            # deletes it deliberately (docs/tenants.md). The policy is copied into each PV when it is provisioned.
            reclaim_policy="Retain" if args.protect else "Delete",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )

        self.register_outputs(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "clusterSecurityGroupId": self.cluster_security_group_id,
                "coreNodeRoleArn": self.core_node_role_arn,
            }
        )

    def node_group_cluster(self) -> NodeGroupCluster:
        """The facts a managed node group of this cluster needs (components/cluster/node_group.py)."""
        return NodeGroupCluster(
            name=self.name,
            plain_name=self.config.name,
            version=self.version,
            subnet_ids=self.private_subnet_ids,
            security_group_id=self.cluster_security_group_id,
            prerequisites=self.node_prerequisites,
            ssm=self.config.node_ssm_access,
        )

    def _cloudwatch_addon(self, name: str, cfg: ClusterConfig, after: Sequence[pulumi.Resource]) -> aws.eks.Addon:
        """Container Insights: the CloudWatch agent and Fluent Bit on every node, with their role through Pod
        Identity (no node role permissions)."""
        role = aws.iam.Role(
            f"{name}-cloudwatch-role",
            assume_role_policy=pod_identity_trust_policy(
                self.name, CLOUDWATCH_NAMESPACE, CLOUDWATCH_SERVICE_ACCOUNT, self
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}",
                role=role.name,
                policy_arn=managed_policy_arn(policy, self),
                opts=pulumi.ResourceOptions(parent=role),
            )
            for policy in CLOUDWATCH_POLICIES
        ]
        return self._addon(
            name,
            CLOUDWATCH_ADDON,
            cfg,
            None,
            [*after, *attachments],
            pod_identity=[{"role_arn": role.arn, "service_account": CLOUDWATCH_SERVICE_ACCOUNT}],
        )

    def _addon(
        self,
        name: str,
        addon: str,
        cfg: ClusterConfig,
        configuration: Mapping[str, object] | None,
        depends_on: Sequence[pulumi.Resource] = (),
        pod_identity: list[dict[str, pulumi.Input[str]]] | None = None,
    ) -> aws.eks.Addon:
        """A managed add-on at the default version EKS publishes for the configured Kubernetes version."""
        version = aws.eks.get_addon_version_output(
            addon_name=addon,
            kubernetes_version=cfg.kubernetes_version,
            most_recent=False,
            opts=pulumi.InvokeOptions(parent=self),
        ).version
        return aws.eks.Addon(
            f"{name}-{addon}",
            cluster_name=self.name,
            addon_name=addon,
            addon_version=version,
            configuration_values=json.dumps(configuration, sort_keys=True) if configuration else None,
            pod_identity_associations=pod_identity,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
