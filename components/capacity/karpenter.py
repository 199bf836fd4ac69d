"""Karpenter: the controller on core nodes, its interruption queue and EventBridge rules, the Kata node role, and
the Kata EC2NodeClass + NodePool (nested virtualization).

IAM, queue and rules follow the upstream getting-started CloudFormation template. Details: docs/cluster.md#karpenter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.helm.v3 import Release

from components.aws.iam import PodIdentity, account_policy
from components.capacity.karpenter_specs import (
    GPU_NODE_CLASS,
    GPU_NODE_POOL,
    NODE_CLASS,
    NODE_POOL,
    PLACEHOLDER,
    controller_policy,
    gpu_node_pool_spec,
    interruption_queue_policy,
    node_class_spec,
    node_pool_spec,
    placeholder_spec,
)
from components.cluster.node_group import node_role
from components.config import KarpenterConfig
from components.contracts.cluster import DISCOVERY_TAG
from components.contracts.labels import (
    CORE_NODE_SELECTOR,
    DEDICATED_TENANT_KEY,
    GVISOR_NODE_SELECTOR,
    GVISOR_TAINT,
    KATA_NODE_SELECTOR,
    KATA_TAINT,
    dedicated_taint,
)
from components.contracts.namespaces import KARPENTER_NAMESPACE
from components.k8s.resources import platform_namespace
from components.runtime import gvisor

NAMESPACE = KARPENTER_NAMESPACE
SERVICE_ACCOUNT = "karpenter"
CHART = "oci://public.ecr.aws/karpenter/karpenter"
CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
# Karpenter's own kinds: kind -> (apiVersion, suffix of the Pulumi resource name).
KINDS = {"EC2NodeClass": ("karpenter.k8s.aws/v1", "nodeclass"), "NodePool": ("karpenter.sh/v1", "nodepool")}
# Per the getting-started guide (helm --set controller.resources...).
CONTROLLER_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
QUEUE_RETENTION_SECONDS = 300
PLACEHOLDER_PRIORITY = -10  # below every workload: any sandbox preempts a placeholder
# EventBridge rules feeding the interruption queue: rule suffix -> (source, detail-type).
INTERRUPTION_EVENTS = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation-interruption": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


@dataclass(frozen=True)
class GpuPool:
    """The GPU NodePool of the self-hosted models (components/models/)."""

    families: tuple[str, ...]
    capacity_types: tuple[str, ...]
    disk_gib: int
    gpus: int  # the pool's limit: every model at its maximum, plus one rollout surge each


@dataclass(frozen=True)
class KarpenterArgs:
    config: KarpenterConfig
    region: str
    cluster_name: pulumi.Input[str]  # the EKS cluster's name as an output (waits for the control plane)
    cluster_plain_name: str  # the configured name: tags, selector terms, IAM conditions
    cluster_endpoint: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]  # tagged for discovery when no sandbox SG is given
    disk_gib: int  # the Kata nodes' root volume
    node_ssm_access: bool = False
    core_nodes: Sequence[pulumi.Resource] = ()  # the controller runs there
    user_data: str | None = None  # MIME multipart node setup, the same as the managed Kata group's
    gvisor: bool = False  # the gVisor tier's node pool
    # The sandbox nodes' security group id and what to wait for (components/network/node_security.py); None: the EKS
    # cluster SG, by tag.
    security_group_id: pulumi.Input[str] | None = None
    security_group: pulumi.Resource | None = None
    dedicated_tenants: tuple[str, ...] = ()  # tenants with dedicatedNodes: one tainted NodePool each
    gpu: GpuPool | None = None  # self-hosted models: the GPU pool


class Karpenter(pulumi.ComponentResource):
    node_role_arn: pulumi.Output[str]
    namespace: k8s.core.v1.Namespace  # NetworkPolicies wait for it (components/network/network_policies.py)

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:karpenter:Karpenter", name, None, opts)
        cfg = args.config
        cluster_name = args.cluster_plain_name  # plain name: tags, selector terms, IAM conditions
        child = pulumi.ResourceOptions(parent=self)

        # --- node role: Karpenter builds the instance profile from it; the access entry lets nodes join
        nodes = node_role(name, parent=self, ssm=args.node_ssm_access)
        access_entry = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=args.cluster_name,
            principal_arn=nodes.role.arn,
            type="EC2_LINUX",
            opts=child,
        )
        # Nodes carry the sandbox nodes' security group, selected by id; without one, the EKS cluster security
        # group, found (like the private subnets, tagged by the network component) through the discovery tag.
        sg_id = args.security_group_id
        sg_ready: pulumi.Resource = args.security_group or aws.ec2.Tag(
            f"{name}-discovery-sg",
            resource_id=args.cluster_security_group_id,
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
            policy=queue.arn.apply(interruption_queue_policy),
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
        scoped_policy = partial(controller_policy, region=args.region, cluster=cluster_name)
        identity = PodIdentity(
            f"{name}-controller",
            cluster_name=args.cluster_name,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy=account_policy(self, scoped_policy, queue.arn, nodes.role.arn),
            opts=child,
            type_token="agent-platform:karpenter:ControllerIdentity",  # the deployed token
        )

        # --- controller (CRDs from their own chart: Helm never upgrades a chart's crds/ directory)
        namespace = platform_namespace(name, NAMESPACE, {}, child)
        self.namespace = namespace

        def after(*resources: pulumi.Resource) -> pulumi.ResourceOptions:
            """The Kubernetes options, waiting for ``resources``."""
            return pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(resources)))

        def karpenter_object(kind: str, object_name: str, spec: Any, opts: pulumi.ResourceOptions) -> CustomResource:
            """An EC2NodeClass or NodePool, named ``<name>-<object_name>-nodeclass`` (or ``-nodepool``) in Pulumi."""
            api_version, suffix = KINDS[kind]
            return CustomResource(
                f"{name}-{object_name}-{suffix}",
                api_version=api_version,
                kind=kind,
                metadata={"name": object_name},
                spec=spec,
                opts=opts,
            )

        # Both charts at the configured version: the controller runs on the CRDs of its own release.
        chart = {"version": cfg.version, "namespace": NAMESPACE}
        crds = Release(f"{name}-crd", name="karpenter-crd", chart=CRD_CHART, opts=after(namespace), **chart)
        release = Release(
            f"{name}-controller",
            name="karpenter",
            chart=CHART,
            opts=after(namespace, crds, identity, *args.core_nodes, *targets),
            **chart,
            skip_crds=True,
            values={
                "settings": {
                    "clusterName": args.cluster_name,
                    "clusterEndpoint": args.cluster_endpoint,
                    "interruptionQueue": queue.name,
                },
                # The chart's defaults: service account "karpenter" (SERVICE_ACCOUNT), 2 replicas, linux nodes.
                "nodeSelector": dict(CORE_NODE_SELECTOR),
                # The region from config, not instance metadata: every node has IMDS hop limit 1
                # (components/cluster/eks.py) and the controller's NetworkPolicy keeps it off 169.254.169.254.
                "controller": {
                    "resources": CONTROLLER_RESOURCES,
                    "env": [{"name": "AWS_REGION", "value": args.region}],
                },
            },
        )

        # --- Kata capacity
        # Node classes launch nodes with the node role, which must be able to join first.
        class_opts = after(crds, release, access_entry, sg_ready, *nodes.ready)
        class_spec = partial(
            node_class_spec,
            role=nodes.role.name,
            cluster_name=cluster_name,
            ami_alias=cfg.ami_alias,
            disk_gib=args.disk_gib,
            security_group_id=sg_id,
        )
        node_class = karpenter_object("EC2NodeClass", NODE_CLASS, class_spec(user_data=args.user_data), class_opts)
        node_pool = karpenter_object("NodePool", NODE_POOL, node_pool_spec(cfg), after(crds, release, node_class))

        # Tenants that must not share a host: the same EC2NodeClass, a pool whose nodes carry the tenant's label
        # and taint on top of the Kata ones (each pool has the configured limits of its own).
        for tenant in args.dedicated_tenants:
            labels = {**KATA_NODE_SELECTOR, DEDICATED_TENANT_KEY: tenant}
            spec = node_pool_spec(cfg, labels=labels, taints=(KATA_TAINT, dedicated_taint(tenant)))
            karpenter_object("NodePool", f"{NODE_POOL}-{tenant}", spec, after(crds, release, node_class))

        if cfg.warm_nodes > 0:
            self._warm_floor(name, cfg, child, [namespace, node_pool])
        if args.gvisor:
            # The gVisor tier: its own class and pool, no nested virtualization, runsc installed at boot.
            runsc = gvisor.gvisor_userdata(cfg.gvisor_release, dict(cfg.gvisor_sha512))
            gvisor_spec = class_spec(user_data=runsc, nested_virtualization=False, pool=gvisor.NODE_POOL)
            gvisor_class = karpenter_object("EC2NodeClass", gvisor.NODE_CLASS, gvisor_spec, class_opts)
            spec = node_pool_spec(
                cfg,
                node_class=gvisor.NODE_CLASS,
                labels=GVISOR_NODE_SELECTOR,
                taint=GVISOR_TAINT,
                families=cfg.gvisor_families,
                arches=gvisor.architectures(cfg.gvisor_families),
            )
            karpenter_object("NodePool", gvisor.NODE_POOL, spec, after(crds, release, gvisor_class))
        if args.gpu is not None:
            # GPU nodes run the platform's model servers, not sandboxes: the cluster security group, like core nodes.
            gpu_spec = class_spec(
                nested_virtualization=False,
                pool=GPU_NODE_POOL,
                disk_gib=args.gpu.disk_gib,
                security_group_id=args.cluster_security_group_id,
            )
            gpu_class = karpenter_object("EC2NodeClass", GPU_NODE_CLASS, gpu_spec, class_opts)
            spec = gpu_node_pool_spec(cfg, args.gpu.families, args.gpu.capacity_types, args.gpu.gpus)
            karpenter_object("NodePool", GPU_NODE_POOL, spec, after(crds, release, gpu_class))

        self.node_role_arn = nodes.role.arn
        self.register_outputs({"nodeRoleArn": self.node_role_arn})

    def _warm_floor(
        self, name: str, cfg: KarpenterConfig, child: pulumi.ResourceOptions, after: list[pulumi.Resource]
    ) -> None:
        """``kataWarmNodes`` Kata nodes kept up by placeholder pods: Karpenter launches a node for each (they
        repel each other per host) and keeps it; a sandbox that needs the room preempts the placeholder."""
        priority = k8s.scheduling.v1.PriorityClass(
            f"{name}-placeholder-priority",
            metadata={"name": PLACEHOLDER},
            value=PLACEHOLDER_PRIORITY,
            preemption_policy="Never",
            description="Kata capacity placeholders: preempted by any sandbox.",
            opts=child,
        )
        k8s.apps.v1.Deployment(
            f"{name}-placeholder",
            metadata={"name": PLACEHOLDER, "namespace": NAMESPACE},
            spec=placeholder_spec(cfg),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[priority, *after])),
        )
