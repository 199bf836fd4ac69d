"""Karpenter's specs as pure functions (no Pulumi): the EC2NodeClass and NodePool of the Kata (and gVisor)
capacity, the warm-capacity placeholder, the controller's IAM policy and the interruption queue's policy.
components/capacity/karpenter.py creates the resources; tests check these shapes against upstream.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi

from components.capacity.kata_node_group import KATA_IMDS_HOP_LIMIT
from components.cluster.node_group import ROOT_DEVICE
from components.config import KarpenterConfig
from components.contracts.cluster import DISCOVERY_TAG
from components.contracts.labels import (
    CAPACITY_PLACEHOLDER_LABEL,
    GPU_NODE_SELECTOR,
    GPU_NODE_VALUE,
    GPU_PRESENT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT,
    KATA_NODE_SELECTOR,
    KATA_TAINT,
    KATA_TOLERATION,
)
from components.k8s.podspec import container_security_context, selecting

CONTROLLER_POLICY = (
    Path(__file__).resolve().parents[1] / "aws" / "iam_policies" / "karpenter-controller-iam-policy.json"
)
NODE_CLASS = "kata"
NODE_POOL = "kata"
GPU_NODE_CLASS = "gpu"
GPU_NODE_POOL = GPU_NODE_VALUE  # karpenter.sh/nodepool on its nodes (contracts/labels.py GPU_NODE_VALUES)
# The GPU pool's nodes: labelled for the model servers' nodeSelector and for NVIDIA's device plugin, whose default
# affinity needs nvidia.com/gpu.present=true (or labels only Node Feature Discovery sets); tainted so that only
# model servers (and node DaemonSets) land there.
GPU_NODE_LABELS = {**GPU_NODE_SELECTOR, GPU_PRESENT_LABEL: "true"}
# A model server takes minutes to come back (node, image, weights): GPU nodes are consolidated only once empty.
GPU_DISRUPTION = {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m", "budgets": [{"nodes": "1"}]}
# With vpc-cni prefix delegation pods are not capped by ENI IPs; use the Kubernetes default instead of
# Karpenter's ENI-based estimate.
KATA_MAX_PODS = 110
PLACEHOLDER = "kata-capacity-placeholder"
PLACEHOLDER_UID = 65535  # the pause image's nobody


def placeholder_spec(cfg: KarpenterConfig) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": PLACEHOLDER, CAPACITY_PLACEHOLDER_LABEL: "true"}
    resources = {"cpu": "1", "memory": "1Gi"}  # the warm room each node keeps for the first sandbox
    pod = {
        "priorityClassName": PLACEHOLDER,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "nodeSelector": dict(KATA_NODE_SELECTOR),
        "tolerations": [dict(KATA_TOLERATION)],
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": dict(labels)}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        },
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "pause",
                "image": cfg.pause_image,
                "resources": {"requests": dict(resources), "limits": {"memory": resources["memory"]}},
                "securityContext": container_security_context(PLACEHOLDER_UID, read_only_root=True),
            }
        ],
    }
    return {"replicas": cfg.warm_nodes, **selecting(labels, pod)}


def node_class_spec(
    *,
    role: pulumi.Input[str],
    cluster_name: str,
    ami_alias: str,
    disk_gib: int,
    user_data: str | None = None,
    nested_virtualization: bool = True,
    pool: str = NODE_POOL,
    security_group_id: pulumi.Input[str] | None = None,
) -> dict[str, Any]:
    discovery = [{"tags": {DISCOVERY_TAG: cluster_name}}]
    security_groups = [{"id": security_group_id}] if security_group_id is not None else discovery
    extra: dict[str, Any] = {"userData": user_data} if user_data else {}  # merged with Karpenter's AL2023 part
    if nested_virtualization:
        # Karpenter (>= 1.13) keeps only instance types reporting nested virtualization and enables it.
        extra["cpuOptions"] = {"nestedVirtualization": "enabled"}
    return {
        **extra,
        "role": role,
        "amiSelectorTerms": [{"alias": ami_alias}],
        "subnetSelectorTerms": discovery,
        "securityGroupSelectorTerms": security_groups,
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
        "tags": {DISCOVERY_TAG: cluster_name, "Name": f"{cluster_name}-{pool}-karpenter"},
    }


def node_pool_spec(
    cfg: KarpenterConfig,
    *,
    node_class: str = NODE_CLASS,
    labels: Mapping[str, str] = KATA_NODE_SELECTOR,
    taint: Mapping[str, str] = KATA_TAINT,
    taints: Sequence[Mapping[str, str]] | None = None,  # several taints (a dedicated pool); overrides ``taint``
    families: Sequence[str] | None = None,
    arches: Sequence[str] = ("amd64",),
    capacity_types: Sequence[str] | None = None,
    requirements: Sequence[Mapping[str, Any]] = (),
    limits: Mapping[str, str] | None = None,
    disruption: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A NodePool: the Kata pool by default (nested-virtualization families, amd64, the configured limits and
    disruption)."""
    return {
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
                "taints": [dict(t) for t in (taints or (taint,))],
                "requirements": [
                    {
                        "key": "karpenter.k8s.aws/instance-family",
                        "operator": "In",
                        "values": list(families or cfg.instance_families),
                    },
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": list(capacity_types or cfg.capacity_types),
                    },
                    {"key": "kubernetes.io/arch", "operator": "In", "values": list(arches)},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    *(dict(r) for r in requirements),
                ],
            },
        },
        "limits": dict(limits) if limits else {"cpu": str(cfg.cpu_limit), "memory": f"{cfg.memory_limit_gib}Gi"},
        "disruption": dict(disruption)
        if disruption
        else {
            "consolidationPolicy": cfg.consolidation_policy,
            "consolidateAfter": cfg.consolidate_after,
            "budgets": [{"nodes": cfg.disruption_budget}],
        },
    }


def gpu_node_pool_spec(
    cfg: KarpenterConfig, families: Sequence[str], capacity_types: Sequence[str], gpus: int
) -> dict[str, Any]:
    """The GPU pool: NVIDIA instances of ``families`` (one EC2NodeClass with the AL2023 alias: Karpenter picks the
    AMI's nvidia variant for instance types with GPUs), at most ``gpus`` GPUs in all."""
    return node_pool_spec(
        cfg,
        node_class=GPU_NODE_CLASS,
        labels=GPU_NODE_LABELS,
        taint=GPU_TAINT,
        families=families,
        capacity_types=capacity_types,
        requirements=[{"key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In", "values": ["nvidia"]}],
        limits={GPU_RESOURCE: str(gpus)},
        disruption=GPU_DISRUPTION,
    )


def interruption_queue_policy(queue_arn: str) -> str:
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
    partition: str, account: str, queue_arn: str, node_role_arn: str, *, region: str, cluster: str
) -> str:
    """The controller permissions of the upstream getting-started template (node lifecycle, IAM and EKS
    integration, interruption, zonal shift, resource discovery), scoped to this cluster's tags like upstream.
    Kept as JSON (components/aws/iam_policies/) with ``${...}`` placeholders, like the LB controller's policy; returned
    compact, the document the role has. Positional arguments as ``iam.account_policy`` passes them."""
    template = string.Template(CONTROLLER_POLICY.read_text())
    document = json.loads(
        template.substitute(
            Partition=partition,
            Region=region,
            AccountId=account,
            ClusterName=cluster,
            QueueArn=queue_arn,
            NodeRoleArn=node_role_arn,
        )
    )
    return json.dumps(document, separators=(",", ":"))
