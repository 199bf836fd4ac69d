"""AWS Fargate facts the configuration checks and the docs quote: pod sizes, the memory Fargate adds, prices, quotas.

Sources (docs/fargate.md cites them in full): EKS user guide, fargate-pod-configuration.html "Pod CPU and memory"
(sizes, +256 MB for kubelet, kube-proxy and containerd, rounding up to the nearest combination, 20 GiB ephemeral
storage by default, at most 175 GiB); aws.amazon.com/fargate/pricing (us-east-1, Linux/x86, per second with a
one-minute minimum); EKS service quotas (Fargate profiles per cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.k8s.quantity import quantity_value

GIB = 2**30
# Added to every pod's memory before rounding: Kubernetes components in the pod's VM (kubelet, kube-proxy, containerd).
FARGATE_MEMORY_OVERHEAD_MIB = 256
# vCPU -> the memory sizes (GB) Fargate offers with it.
FARGATE_SIZES: tuple[tuple[float, tuple[int | float, ...]], ...] = (
    (0.25, (0.5, 1, 2)),
    (0.5, tuple(range(1, 5))),
    (1, tuple(range(2, 9))),
    (2, tuple(range(4, 17))),
    (4, tuple(range(8, 31))),
    (8, tuple(range(16, 61, 4))),
    (16, tuple(range(32, 121, 8))),
)
# us-east-1, Linux/x86 (EKS on Fargate has no Arm): USD per vCPU-hour and per GB-hour.
PRICE_VCPU_HOUR = 0.04048
PRICE_GB_HOUR = 0.004445
PROFILES_PER_CLUSTER_QUOTA = 10  # default service quota "Fargate profiles per cluster" (adjustable)


@dataclass(frozen=True)
class FargateSize:
    vcpu: float
    memory_gb: float

    @property
    def hourly_usd(self) -> float:
        return self.vcpu * PRICE_VCPU_HOUR + self.memory_gb * PRICE_GB_HOUR

    def __str__(self) -> str:
        return f"{self.vcpu:g} vCPU / {self.memory_gb:g} GB"


def fargate_size(cpu: str, memory: str) -> FargateSize | None:
    """The size Fargate bills for a pod requesting ``cpu`` and ``memory`` (requests = limits): the smallest
    combination with at least that CPU and the memory plus 256 MiB; None when it is beyond the largest."""
    cores = quantity_value(cpu)
    needed = quantity_value(memory) + FARGATE_MEMORY_OVERHEAD_MIB * 2**20
    for vcpu, sizes in FARGATE_SIZES:
        if vcpu + 1e-9 < cores:
            continue
        for gb in sizes:
            if gb * GIB + 1e-3 >= needed:
                return FargateSize(vcpu, gb)
    return None
