"""Karpenter: the controller on core nodes (EKS Pod Identity), its interruption queue and EventBridge
rules, the node role Karpenter launches Kata nodes with, and the Kata EC2NodeClass + NodePool
(nested virtualization, same label and taint as the Kata managed node group).

IAM, queue and rules follow the upstream CloudFormation template of the getting-started guide
(aws/karpenter-provider-aws, website/content/en/v1.14/getting-started/getting-started-with-karpenter/
cloudformation.yaml). Karpenter v1 creates the instance profile itself from ``EC2NodeClass.spec.role``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import ROOT_DEVICE, Cluster, node_role
from components.config import KarpenterConfig
from components.iam import pod_identity_role
from components.kata import KATA_IMDS_HOP_LIMIT
from components.labels import CORE_NODE_SELECTOR, KATA_NODE_SELECTOR, KATA_TAINT

NAMESPACE = "karpenter"
SERVICE_ACCOUNT = "karpenter"
CHART = "oci://public.ecr.aws/karpenter/karpenter"
CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
NODE_CLASS = "kata"
NODE_POOL = "kata"
DISCOVERY_TAG = "karpenter.sh/discovery"
# Per the getting-started guide (helm --set controller.resources...).
CONTROLLER_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
# With vpc-cni prefix delegation pods are not capped by ENI IPs; use the Kubernetes default instead of
# Karpenter's ENI-based estimate.
KATA_MAX_PODS = 110
QUEUE_RETENTION_SECONDS = 300
# EventBridge rules feeding the interruption queue: rule suffix -> (source, detail-type).
INTERRUPTION_EVENTS = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation-interruption": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


@dataclass(frozen=True)
class KarpenterArgs:
    config: KarpenterConfig
    cluster: Cluster
    region: str
    user_data: str | None = None  # MIME multipart node setup, the same as the managed Kata group's


class Karpenter(pulumi.ComponentResource):
    node_role_arn: pulumi.Output[str]
    node_role_name: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    controller_role_arn: pulumi.Output[str]
    release: k8s.helm.v3.Release
    node_class: k8s.apiextensions.CustomResource
    node_pool: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:karpenter:Karpenter", name, None, opts)
        cfg, cluster = args.config, args.cluster
        cluster_name = cluster.config.name  # plain name: tags, selector terms, IAM conditions
        child = pulumi.ResourceOptions(parent=self)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=cluster.provider)

        # --- node role: Karpenter builds the instance profile from it; the access entry lets nodes join
        nodes = node_role(name, parent=self)
        access_entry = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=cluster.name,
            principal_arn=nodes.role.arn,
            type="EC2_LINUX",
            opts=child,
        )
        # Nodes carry the EKS cluster security group; Karpenter finds it (and the private subnets,
        # tagged by the network component) through the discovery tag.
        sg_tag = aws.ec2.Tag(
            f"{name}-discovery-sg",
            resource_id=cluster.cluster_security_group_id,
            key=DISCOVERY_TAG,
            value=cluster_name,
            opts=child,
        )

        # --- interruption queue and the EventBridge rules feeding it
        queue = aws.sqs.Queue(
            f"{name}-interruption",
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            opts=child,
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=queue.url,
            policy=queue.arn.apply(_queue_policy),
            opts=pulumi.ResourceOptions(parent=queue),
        )
        targets = []
        for suffix, (source, detail_type) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{suffix}",
                description=f"Karpenter interruption handling for {cluster_name}: {detail_type}",
                event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
                opts=child,
            )
            targets.append(
                aws.cloudwatch.EventTarget(
                    f"{name}-{suffix}",
                    rule=rule.name,
                    target_id="KarpenterInterruptionQueueTarget",
                    arn=queue.arn,
                    opts=pulumi.ResourceOptions(parent=rule, depends_on=[queue_policy]),
                )
            )

        # --- controller role bound to karpenter/karpenter with EKS Pod Identity. The identity lives in its
        # own component so the Helm release can wait for the association (pods get credentials at admission).
        identity = pulumi.ComponentResource(
            "agent-platform:karpenter:ControllerIdentity", f"{name}-controller", None, child
        )
        caller = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self)).partition
        policy = pulumi.Output.all(partition, caller.account_id, queue.arn, nodes.role.arn).apply(
            lambda values: json.dumps(
                controller_policy(values[0], args.region, values[1], cluster_name, values[2], values[3]),
                separators=(",", ":"),
            )
        )
        controller_role = pod_identity_role(
            f"{name}-controller",
            cluster_name=cluster.name,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy=policy,
            parent=identity,
        )
        identity.register_outputs({"roleArn": controller_role.arn})

        # --- controller (CRDs from their own chart: Helm never upgrades a chart's crds/ directory)
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "agent-platform"}},
            opts=k8s_opts,
        )
        self.namespace = namespace  # NetworkPolicies wait for it (components/network_policies.py)
        crds = k8s.helm.v3.Release(
            f"{name}-crd",
            name="karpenter-crd",
            chart=CRD_CHART,
            version=cfg.version,
            namespace=NAMESPACE,
            opts=pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=[namespace]),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-controller",
            name="karpenter",
            chart=CHART,
            version=cfg.version,
            namespace=NAMESPACE,
            skip_crds=True,
            values={
                "settings": {
                    "clusterName": cluster.name,
                    "clusterEndpoint": cluster.endpoint,
                    "interruptionQueue": queue.name,
                },
                # The chart's defaults: service account "karpenter" (SERVICE_ACCOUNT), 2 replicas, linux nodes.
                "nodeSelector": dict(CORE_NODE_SELECTOR),
                # The region from the environment, not from instance metadata: its NetworkPolicy keeps the
                # controller off 169.254.169.254 (components/network_policies.py).
                "controller": {
                    "resources": CONTROLLER_RESOURCES,
                    "env": [{"name": "AWS_REGION", "value": args.region}],
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=cluster.provider,
                depends_on=[namespace, crds, identity, cluster.core_node_group, *targets],
            ),
        )

        # --- Kata capacity
        self.node_class = k8s.apiextensions.CustomResource(
            f"{name}-{NODE_CLASS}-nodeclass",
            api_version="karpenter.k8s.aws/v1",
            kind="EC2NodeClass",
            metadata={"name": NODE_CLASS},
            spec=node_class_spec(
                role=nodes.role.name,
                cluster_name=cluster_name,
                ami_alias=cfg.ami_alias,
                disk_gib=cluster.config.kata.disk_gib,
                user_data=args.user_data,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=cluster.provider,
                depends_on=[crds, self.release, access_entry, sg_tag, *nodes.ready],
            ),
        )
        self.node_pool = k8s.apiextensions.CustomResource(
            f"{name}-{NODE_POOL}-nodepool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": NODE_POOL},
            spec=node_pool_spec(cfg),
            opts=pulumi.ResourceOptions(
                parent=self, provider=cluster.provider, depends_on=[crds, self.release, self.node_class]
            ),
        )

        self.node_role_arn = nodes.role.arn
        self.node_role_name = nodes.role.name
        self.queue_name = queue.name
        self.controller_role_arn = controller_role.arn
        self.register_outputs(
            {
                "nodeRoleArn": self.node_role_arn,
                "queueName": self.queue_name,
                "controllerRoleArn": self.controller_role_arn,
            }
        )


def node_class_spec(
    *, role: pulumi.Input[str], cluster_name: str, ami_alias: str, disk_gib: int, user_data: str | None = None
) -> dict[str, Any]:
    discovery = [{"tags": {DISCOVERY_TAG: cluster_name}}]
    extra = {"userData": user_data} if user_data else {}  # Karpenter merges it with its own AL2023 part
    return {
        **extra,
        "role": role,
        "amiSelectorTerms": [{"alias": ami_alias}],
        "subnetSelectorTerms": discovery,
        "securityGroupSelectorTerms": discovery,
        # Karpenter (>= 1.13) keeps only instance types reporting nested virtualization and enables it.
        "cpuOptions": {"nestedVirtualization": "enabled"},
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": KATA_IMDS_HOP_LIMIT,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "rootVolume": True,
                "ebs": {
                    "volumeSize": f"{disk_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "kubelet": {"maxPods": KATA_MAX_PODS},
        "tags": {DISCOVERY_TAG: cluster_name, "Name": f"{cluster_name}-kata-karpenter"},
    }


def node_pool_spec(cfg: KarpenterConfig) -> dict[str, Any]:
    return {
        "template": {
            "metadata": {"labels": dict(KATA_NODE_SELECTOR)},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": NODE_CLASS},
                "taints": [dict(KATA_TAINT)],
                "requirements": [
                    {
                        "key": "karpenter.k8s.aws/instance-family",
                        "operator": "In",
                        "values": list(cfg.instance_families),
                    },
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(cfg.capacity_types)},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                ],
            },
        },
        "limits": {"cpu": str(cfg.cpu_limit), "memory": f"{cfg.memory_limit_gib}Gi"},
        "disruption": {
            "consolidationPolicy": cfg.consolidation_policy,
            "consolidateAfter": cfg.consolidate_after,
            "budgets": [{"nodes": cfg.disruption_budget}],
        },
    }


def _queue_policy(queue_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "EC2InterruptionPolicy",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                },
                {
                    "Sid": "DenyHTTP",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def controller_policy(
    partition: str, region: str, account: str, cluster: str, queue_arn: str, node_role_arn: str
) -> dict[str, Any]:
    """The controller permissions of the upstream template (node lifecycle, IAM and EKS integration,
    interruption, zonal shift, resource discovery), scoped to this cluster's tags like upstream."""
    ec2 = f"arn:{partition}:ec2:{region}"
    profiles = f"arn:{partition}:iam::{account}:instance-profile/*"
    cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"
    owned = f"aws:ResourceTag/kubernetes.io/cluster/{cluster}"
    requested = f"aws:RequestTag/kubernetes.io/cluster/{cluster}"
    created = [f"{ec2}:*:{kind}/*" for kind in ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")]  # fmt: skip
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AllowScopedEC2InstanceAccessActions",
            "Effect": "Allow",
            "Resource": [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
                f"{ec2}:*:placement-group/*",
            ],
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
        },
        {
            "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:launch-template/*",
            "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            "Condition": {
                "StringEquals": {owned: "owned"},
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedEC2InstanceActionsWithTags",
            "Effect": "Allow",
            "Resource": created,
            "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
            "Condition": {
                "StringEquals": {requested: "owned", "aws:RequestTag/eks:eks-cluster-name": cluster},
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceCreationTagging",
            "Effect": "Allow",
            "Resource": created,
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {
                    requested: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster,
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowScopedResourceTagging",
            "Effect": "Allow",
            "Resource": f"{ec2}:*:instance/*",
            "Action": "ec2:CreateTags",
            "Condition": {
                "StringEquals": {owned: "owned"},
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        },
        {
            "Sid": "AllowScopedDeletion",
            "Effect": "Allow",
            "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            "Condition": {
                "StringEquals": {owned: "owned"},
                "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            },
        },
        {
            "Sid": "AllowPassingInstanceRole",
            "Effect": "Allow",
            "Resource": node_role_arn,
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}},
        },
        {
            "Sid": "AllowScopedInstanceProfileCreationActions",
            "Effect": "Allow",
            "Resource": profiles,
            "Action": ["iam:CreateInstanceProfile"],
            "Condition": {
                "StringEquals": {
                    requested: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileTagActions",
            "Effect": "Allow",
            "Resource": profiles,
            "Action": ["iam:TagInstanceProfile"],
            "Condition": {
                "StringEquals": {
                    owned: "owned",
                    "aws:ResourceTag/topology.kubernetes.io/region": region,
                    requested: "owned",
                    "aws:RequestTag/eks:eks-cluster-name": cluster,
                    "aws:RequestTag/topology.kubernetes.io/region": region,
                },
                "StringLike": {
                    "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                    "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                },
            },
        },
        {
            "Sid": "AllowScopedInstanceProfileActions",
            "Effect": "Allow",
            "Resource": profiles,
            "Action": [
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
            ],
            "Condition": {
                "StringEquals": {owned: "owned", "aws:ResourceTag/topology.kubernetes.io/region": region},
                "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
            },
        },
        {
            "Sid": "AllowAPIServerEndpointDiscovery",
            "Effect": "Allow",
            "Resource": cluster_arn,
            "Action": "eks:DescribeCluster",
        },
        {
            "Sid": "AllowInterruptionQueueActions",
            "Effect": "Allow",
            "Resource": queue_arn,
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
        },
        {
            "Sid": "AllowZonalShiftStatusReadOnly",
            "Effect": "Allow",
            "Resource": "*",
            "Action": ["arc-zonal-shift:GetManagedResource"],
            "Condition": {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}},
        },
        {
            "Sid": "AllowRegionalReadActions",
            "Effect": "Allow",
            "Resource": "*",
            "Action": [
                "ec2:DescribeCapacityReservations",
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribePlacementGroups",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
            ],
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "AllowSSMReadActions",
            "Effect": "Allow",
            "Resource": f"arn:{partition}:ssm:{region}::parameter/aws/service/*",
            "Action": "ssm:GetParameter",
        },
        {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Resource": "*", "Action": "pricing:GetProducts"},
        {
            "Sid": "AllowUnscopedInstanceProfileListAction",
            "Effect": "Allow",
            "Resource": "*",
            "Action": "iam:ListInstanceProfiles",
        },
        {
            "Sid": "AllowInstanceProfileReadActions",
            "Effect": "Allow",
            "Resource": profiles,
            "Action": "iam:GetInstanceProfile",
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}
