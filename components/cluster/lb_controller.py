"""The AWS Load Balancer Controller (eks-charts) on core nodes, with its published IAM policy through EKS Pod
Identity. Cluster infrastructure: the gateway's and the egress proxy's NLB Services wait for it, because its
webhook must be up before a LoadBalancer Service is admitted.

Its resources keep the names (and, through aliases, the URNs) they had when the gateway installed it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.aws.iam import PodIdentity
from components.contracts.labels import CORE_NODE_SELECTOR

CHART = "aws-load-balancer-controller"
REPO = "https://aws.github.io/eks-charts"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"
POLICY = Path(__file__).resolve().parents[1] / "aws" / "iam_policies" / "aws-load-balancer-controller-iam-policy.json"
# The deployed token of its Pod Identity (created by the gateway before).
POD_IDENTITY_TYPE = "agent-platform:gateway:PodIdentity"


def controller_policy() -> str:
    """The controller's published IAM policy (docs/install/iam_policy.json of the pinned release)."""
    return json.dumps(json.loads(POLICY.read_text()))


@dataclass(frozen=True)
class LoadBalancerControllerArgs:
    version: str
    cluster_name: pulumi.Input[str]
    region: str  # given explicitly: nodes keep IMDS out of pods' reach (hop limit 1)
    vpc_id: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the core node group
    moved_from: pulumi.Input[str] | None = None  # URN of the component that created these resources before


class LoadBalancerController(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:cluster:LoadBalancerController", name, None, opts)
        aliases = [pulumi.Alias(parent=args.moved_from)] if args.moved_from is not None else None
        identity = PodIdentity(
            name,
            cluster_name=args.cluster_name,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy=controller_policy(),
            opts=pulumi.ResourceOptions(parent=self, aliases=aliases),
            type_token=POD_IDENTITY_TYPE,
        )
        opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), aliases=aliases)
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata={"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}, opts=opts
        )
        self.release = k8s.helm.v3.Release(
            name,
            name="aws-load-balancer-controller",
            namespace=NAMESPACE,
            chart=CHART,
            repository_opts={"repo": REPO},
            version=args.version,
            values={
                "clusterName": args.cluster_name,
                "region": args.region,
                "vpcId": args.vpc_id,
                "serviceAccount": {"create": False, "name": SERVICE_ACCOUNT},
                "nodeSelector": dict(CORE_NODE_SELECTOR),
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[service_account, identity])),
        )
        self.register_outputs({})
