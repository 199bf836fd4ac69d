"""The self-hosted model servers: one vLLM Deployment per model on the GPU pool, behind the gateway only.

Per model: a ServiceAccount (with a Pod Identity role reading its S3 weights, when they are in S3), the Deployment
(replicas owned by KEDA), a ClusterIP Service LiteLLM routes to, a disruption budget and a KEDA ScaledObject; for all
of them a PodMonitor and the queue alert. The NetworkPolicies (components/network/network_policies.py) let only
LiteLLM and Prometheus reach them. Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aws.iam import PodIdentity, account_policy
from components.config import ModelsConfig
from components.contracts.labels import PART_OF
from components.contracts.models import server, server_labels, server_name
from components.k8s.reach import service_metadata
from components.k8s.resources import child_options, platform_namespace
from components.models import vllm

# Pulumi waits this long for a model server's rollout: a GPU node, a multi-GB image and the weights first.
ROLLOUT_TIMEOUT = "40m"


@dataclass(frozen=True)
class ModelServersArgs:
    config: ModelsConfig
    cluster_name: pulumi.Input[str]
    region: str
    keda: pulumi.Resource  # the KEDA release (ScaledObject CRD)
    monitoring: pulumi.Resource  # kube-prometheus-stack (PodMonitor and PrometheusRule CRDs)
    depends_on: Sequence[pulumi.Resource] = ()  # the GPU pool and the device plugin


class ModelServers(pulumi.ComponentResource):
    namespace: k8s.core.v1.Namespace
    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(self, name: str, args: ModelServersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:models:ModelServers", name, None, opts)
        cfg = args.config
        k8s_opts = child_options(self)
        self.namespace = platform_namespace(name, vllm.NAMESPACE, {"enforce": "restricted"}, k8s_opts())
        images = vllm.ServerImages(cfg.vllm_image, cfg.aws_cli_image, args.region)
        self.deployments = {}
        for model in cfg.self_hosted:
            object_name = server_name(model.name)
            meta = {
                "name": object_name,
                "namespace": vllm.NAMESPACE,
                "labels": {**PART_OF, **server_labels(model.name)},
            }
            account = k8s.core.v1.ServiceAccount(
                f"{name}-{model.name}-sa", metadata=meta, opts=k8s_opts(self.namespace)
            )
            ready: list[pulumi.Resource] = [account, *args.depends_on]
            if model.s3 is not None:
                bucket, prefix = model.s3
                ready.append(
                    PodIdentity(
                        f"{name}-{model.name}-weights",
                        cluster_name=args.cluster_name,
                        namespace=vllm.NAMESPACE,
                        service_account=object_name,
                        policy=account_policy(self, partial(_weights_policy, bucket=bucket, prefix=prefix)),
                        opts=pulumi.ResourceOptions(parent=self),
                        type_token="agent-platform:models:WeightsIdentity",
                    )
                )
            self.deployments[model.name] = k8s.apps.v1.Deployment(
                f"{name}-{model.name}",
                metadata=meta,
                spec=vllm.deployment_spec(model, images, object_name),
                opts=pulumi.ResourceOptions.merge(
                    k8s_opts(*ready),
                    pulumi.ResourceOptions(
                        ignore_changes=["spec.replicas"],  # KEDA's (the spec sets none: see deployment_spec)
                        custom_timeouts=pulumi.CustomTimeouts(create=ROLLOUT_TIMEOUT, update=ROLLOUT_TIMEOUT),
                    ),
                ),
            )
            k8s.core.v1.Service(
                f"{name}-{model.name}-svc",
                metadata=service_metadata(server(model.name), meta["labels"]),
                spec=vllm.service_spec(model),
                opts=k8s_opts(self.namespace),
            )
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-{model.name}-pdb",
                metadata=meta,
                spec=vllm.disruption_budget_spec(model),
                opts=k8s_opts(self.namespace),
            )
            self._custom(
                name,
                f"{model.name}-scaler",
                "keda.sh/v1alpha1",
                "ScaledObject",
                meta,
                vllm.scaled_object_spec(model),
                args.keda,
            )
        monitoring_meta = {"name": "model-servers", "namespace": vllm.NAMESPACE, "labels": dict(PART_OF)}
        for suffix, kind, spec in (
            ("monitor", "PodMonitor", vllm.pod_monitor_spec()),
            ("rules", "PrometheusRule", vllm.prometheus_rule_spec(cfg.self_hosted)),
        ):
            self._custom(name, suffix, "monitoring.coreos.com/v1", kind, monitoring_meta, spec, args.monitoring)
        self.register_outputs({"namespace": vllm.NAMESPACE, "models": list(cfg.names)})

    def _custom(
        self,
        name: str,
        suffix: str,
        api_version: str,
        kind: str,
        metadata: dict[str, Any],
        spec: dict[str, Any],
        installed_by: pulumi.Resource,
    ) -> k8s.apiextensions.CustomResource:
        """A custom resource whose CRD ``installed_by`` brings."""
        return k8s.apiextensions.CustomResource(
            f"{name}-{suffix}",
            api_version=api_version,
            kind=kind,
            metadata=metadata,
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, installed_by]),
        )


def _weights_policy(partition: str, _account: str, *, bucket: str, prefix: str) -> str:
    return vllm.weights_policy(partition, bucket, prefix)
