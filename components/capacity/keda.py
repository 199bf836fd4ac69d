"""KEDA: scales the model servers on their queue (vLLM's waiting requests, read from Prometheus), to zero where a
model allows it.

KEDA's metrics server registers the cluster's external-metrics API (``v1beta1.external.metrics.k8s.io``), of which
there can be only one: the render checks fail when anything else the stack installs claims it
(tools/render_checks/installs.py). The operator, metrics server and webhooks run on core nodes; their pods and ports
are in components/contracts/capacity.py. Details: docs/models.md#scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts.labels import CORE_NODE_SELECTOR
from components.contracts.namespaces import KEDA_NAMESPACE
from components.k8s.resources import Chart, chart_in_namespace

NAMESPACE = KEDA_NAMESPACE
CHART = Chart(
    release=NAMESPACE, chart="keda", repo="https://kedacore.github.io/charts", pod_security={"enforce": "restricted"}
)


def keda_values() -> dict[str, Any]:
    """Only what differs from the chart's defaults: every KEDA pod on core nodes."""
    return {"nodeSelector": dict(CORE_NODE_SELECTOR)}


@dataclass(frozen=True)
class KedaArgs:
    version: str
    depends_on: Sequence[pulumi.Resource] = ()


class Keda(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:capacity:Keda", name, None, opts)
        # The CRDs (ScaledObject...) are chart templates (crds.install, on by default): upgraded with the release.
        self.namespace, self.release = chart_in_namespace(
            self, name, CHART, args.version, keda_values(), args.depends_on
        )
        self.register_outputs({"namespace": NAMESPACE})
