"""NVIDIA's device plugin on the GPU nodes: it advertises ``nvidia.com/gpu`` so model servers can request GPUs.

The EKS-optimized AL2023 NVIDIA AMI ships the driver and the container toolkit (containerd's default runtime is
``nvidia`` there, so no RuntimeClass is needed) but not the plugin: "you must install the NVIDIA Kubernetes device
plugin" (EKS User Guide, ml-eks-k8s-device-plugin). The chart's default affinity selects nodes labelled
``nvidia.com/gpu.present=true`` (the GPU pool labels its nodes so: Node Feature Discovery is not installed) and its
tolerations include ``nvidia.com/gpu``. Details: docs/models.md#gpu-nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts.labels import GPU_NODE_SELECTOR
from components.contracts.namespaces import NVIDIA_NAMESPACE
from components.k8s.resources import Chart, chart_in_namespace

NAMESPACE = NVIDIA_NAMESPACE
# The plugin mounts the kubelet's device-plugins directory from the host: a privileged namespace.
CHART = Chart(
    release=NAMESPACE,
    chart="nvidia-device-plugin",
    repo="https://nvidia.github.io/k8s-device-plugin",
    pod_security={"enforce": "privileged"},
)


def device_plugin_values() -> dict[str, Any]:
    """Only what differs from the chart's defaults: pinned to the GPU pool's nodes on top of its affinity."""
    return {"nodeSelector": dict(GPU_NODE_SELECTOR)}


@dataclass(frozen=True)
class DevicePluginArgs:
    version: str  # chart version = the plugin's image tag (v<version>, the chart's default)
    depends_on: Sequence[pulumi.Resource] = ()


class NvidiaDevicePlugin(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: DevicePluginArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:runtime:NvidiaDevicePlugin", name, None, opts)
        self.namespace, self.release = chart_in_namespace(
            self, name, CHART, args.version, device_plugin_values(), args.depends_on
        )
        self.register_outputs({"namespace": NAMESPACE})
