"""Agent schedules: KEDA (chart 2.20.2, vendored) on core nodes, and a ScaledObject with a cron trigger per scheduled
agent, which scales its Deployment to 1 inside the window and to 0 outside it.

Pulumi leaves a scheduled Deployment's ``spec.replicas`` to KEDA (the program does not set it), so neither ``pulumi
up`` nor the nightly drift check fights the scaler. Details: docs/tenants.md#schedules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import AgentSchedule
from components.contracts.labels import CORE_NODE_SELECTOR
from components.contracts.scaling import NAMESPACE
from components.k8s.resources import child_options, platform_namespace

CHART = "keda"
REPO = "https://kedacore.github.io/charts"
API_VERSION = "keda.sh/v1alpha1"


def keda_values() -> dict[str, Any]:
    return {"nodeSelector": dict(CORE_NODE_SELECTOR)}


@dataclass(frozen=True)
class KedaArgs:
    version: str
    depends_on: Sequence[pulumi.Resource] = ()  # the core node group


class Keda(pulumi.ComponentResource):
    """The KEDA operator, metrics API server and admission webhooks with their CRDs."""

    release: k8s.helm.v3.Release
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:capacity:Keda", name, None, opts)
        k8s_opts = child_options(self)
        self.namespace = platform_namespace(
            name, NAMESPACE, {"enforce": "restricted", "enforce-version": "latest"}, k8s_opts(*args.depends_on)
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="keda",
            namespace=NAMESPACE,
            chart=CHART,
            repository_opts={"repo": REPO},
            version=args.version,
            values=keda_values(),
            timeout=600,
            opts=k8s_opts(self.namespace),
        )
        self.register_outputs({"namespace": NAMESPACE})


def scaled_object_spec(deployment: str, schedule: AgentSchedule) -> dict[str, Any]:
    """One replica inside the window, none outside (KEDA cron scaler: ``timezone``, ``start``, ``end``,
    ``desiredReplicas``; keda.sh/docs/scalers/cron)."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": 0,
        "maxReplicaCount": 1,
        "triggers": [
            {
                "type": "cron",
                "metadata": {
                    "timezone": schedule.timezone,
                    "start": schedule.start,
                    "end": schedule.end,
                    "desiredReplicas": "1",
                },
            }
        ],
    }


def scaled_object(
    name: str, metadata: Mapping[str, Any], deployment: str, schedule: AgentSchedule, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=API_VERSION,
        kind="ScaledObject",
        metadata=dict(metadata),
        spec=scaled_object_spec(deployment, schedule),
        opts=opts,
    )
