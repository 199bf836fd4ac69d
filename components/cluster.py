"""EKS control plane (pulumi-eks), its managed add-ons, the core node group and the Kubernetes provider
every in-cluster resource uses.

Networking choice: every node carries exactly one security group. Core nodes carry the one EKS creates for
the cluster (``vpc_config.cluster_security_group_id``): it lets them reach the control plane and each other,
and it is the single SG tagged ``kubernetes.io/cluster/<name>`` that the AWS Load Balancer Controller expects
on target pod ENIs. Sandbox nodes (Kata, gVisor) carry their own, narrower group
(components/node_security.py). pulumi-eks' own SGs are skipped.
The control plane ENIs live in the private subnets only; load balancers find the public subnets by their
``kubernetes.io/role/elb`` tag.

Add-ons are first-class ``aws.eks.Addon`` resources (pulumi-eks creates none, EKS bootstraps no
self-managed copies): vpc-cni, kube-proxy and the Pod Identity agent before any node, CoreDNS and the
EBS CSI driver once the core nodes exist.

``Cluster.managed_node_group`` builds the core and the Kata node groups (components/kata.py);
``node_role`` also serves Karpenter's nodes (components/karpenter.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.config import ClusterConfig, NodeGroupConfig
from components.iam import assume_role_policy, pod_identity_trust_policy
from components.labels import CORE_NODE_SELECTOR, STORAGE_CLASS

CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
LOG_RETENTION_DAYS = 90
AMI_TYPE = "AL2023_x86_64_STANDARD"
ROOT_DEVICE = "/dev/xvda"  # root device of the EKS AL2023 AMIs
# Node roles: joining the cluster (and eks-auth:AssumeRoleForPodIdentity for the Pod Identity agent) and
# pulling images. The CNI's ENI/IP permissions go to the aws-node service account through Pod Identity
# (VPC_CNI_POLICY), so a pod or VM that reaches a node's credentials cannot rewire the VPC's ENIs; Session
# Manager access is opt-in (config nodeSsmAccess).
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly")
SSM_POLICY = "AmazonSSMManagedInstanceCore"
VPC_CNI_POLICY = "AmazonEKS_CNI_Policy"
VPC_CNI_SERVICE_ACCOUNT = "aws-node"  # kube-system
# Hop limit 1 on core nodes too: the IMDSv2 token response cannot cross into a pod's network namespace, so a
# compromised core pod (LiteLLM first) cannot read the node role's credentials. Why nothing breaks:
# - host-network pods (aws-node, kube-proxy, the Pod Identity agent) are on the node itself: 1 hop suffices;
# - AWS credentials of every core workload come from EKS Pod Identity (the agent on 169.254.170.23), not IMDS;
# - the region, the only other IMDS read, is given explicitly: Karpenter's AWS_REGION (components/karpenter.py;
#   its operator asks IMDS only when the SDK has no region), the LB controller's --aws-region and --aws-vpc-id
#   (chart values region/vpcId, components/gateway.py); the EBS CSI driver falls back from IMDS to the
#   Kubernetes API (node providerID and topology labels, its default metadata sources "imds,kubernetes");
#   LiteLLM names the Bedrock region per model (aws_region_name).
# EKS managed node groups launched without a launch template use hop limit 1 on AL2023 as well.
CORE_IMDS_HOP_LIMIT = 1
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
# vpc-cni: /28 prefixes per ENI slot so Kata nodes are not capped by ENI IPs; the network policy agent
# enforces the tenants' NetworkPolicies.
VPC_CNI_CONFIGURATION = {
    # strict: a new pod starts denied until its NetworkPolicies are programmed (standard mode lets it talk
    # freely meanwhile); a pod no policy selects stays denied, so every namespace has policies
    # (components/network_policies.py).
    "env": {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "NETWORK_POLICY_ENFORCING_MODE": "strict"},
    "enableNetworkPolicy": "true",
}
# Add-ons that must run before any node starts (networking, kube-proxy, Pod Identity credentials).
NODE_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
DEFAULT_STORAGE_CLASS = STORAGE_CLASS
# Kubernetes taint effect -> EKS API enum.
EKS_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


def _partition(parent: pulumi.Resource) -> pulumi.Output[str]:
    return aws.get_partition_output(opts=pulumi.InvokeOptions(parent=parent)).partition


def managed_policy_arn(policy: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """``AmazonEKSWorkerNodePolicy`` -> ``arn:<partition>:iam::aws:policy/AmazonEKSWorkerNodePolicy``."""
    return pulumi.Output.concat("arn:", _partition(parent), ":iam::aws:policy/", policy)


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
    policies = node_policies(ssm)
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
        for policy in policies
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
    kms_key_arn: pulumi.Output[str]
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
        partition = _partition(self)

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
        self.kms_key_arn = key.arn

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
            f"{name}-vpc-cni-role", assume_role_policy=pod_identity_trust_policy(self.name, self), opts=child
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
        core_role, _, self.core_node_group = self.managed_node_group(
            f"{name}-core",
            node_name="core",
            config=cfg.core,
            hop_limit=CORE_IMDS_HOP_LIMIT,
            labels=CORE_NODE_SELECTOR,
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
            f"{name}-ebs-csi-role", assume_role_policy=pod_identity_trust_policy(self.name, self), opts=child
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

        # --- default StorageClass: encrypted gp3 through the EBS CSI driver
        k8s.storage.v1.StorageClass(
            f"{name}-{DEFAULT_STORAGE_CLASS}",
            metadata={
                "name": DEFAULT_STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
            reclaim_policy="Delete",
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

    def managed_node_group(
        self,
        name: str,
        *,
        node_name: str,
        config: NodeGroupConfig,
        hop_limit: int,
        labels: Mapping[str, str],
        parent: pulumi.Resource,
        taint: Mapping[str, str] | None = None,
        cpu_options: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        user_data: str | None = None,
        security_group: pulumi.Resource | None = None,
        security_group_id: pulumi.Input[str] | None = None,
    ) -> tuple[NodeRole, aws.ec2.LaunchTemplate, aws.eks.NodeGroup]:
        """An AL2023 EKS managed node group of this cluster, with its own role and launch template.

        On-demand, one node replaced at a time, node auto-repair on; it waits for the node add-ons. Nodes carry
        the EKS cluster security group unless ``security_group_id`` (the sandbox nodes' group, whose component
        ``security_group`` the group waits for) is given.
        """
        role = node_role(name, parent=parent, ssm=self.config.node_ssm_access)
        template = node_launch_template(
            name,
            node_name=node_name,
            cluster_name=self.config.name,
            security_group_id=security_group_id or self.cluster_security_group_id,
            disk_gib=config.disk_gib,
            hop_limit=hop_limit,
            cpu_options=cpu_options,
            tags=tags,
            user_data=user_data,
            parent=parent,
        )
        taints = [{**taint, "effect": EKS_TAINT_EFFECTS[taint["effect"]]}] if taint else None
        group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=self.name,
            version=self.version,
            node_role_arn=role.role.arn,
            subnet_ids=self.private_subnet_ids,
            ami_type=AMI_TYPE,
            capacity_type="ON_DEMAND",
            instance_types=list(config.instance_types),
            scaling_config={
                "min_size": config.min_size,
                "desired_size": config.desired_size,
                "max_size": config.max_size,
            },
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels=dict(labels),
            taints=taints,
            node_repair_config={"enabled": True},
            tags={"Name": f"{self.config.name}-{node_name}"},
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[*role.ready, *self.node_prerequisites, *([security_group] if security_group else [])],
            ),
        )
        return role, template, group

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
