"""In-cluster services one area calls in another, and who may call them: one declaration per service, from which its
Service object, the NetworkPolicy rules at both ends, the callers' proxy exclusions and its URL are built
(components/k8s/reach.py). A new service an agent or the gateway must reach is one more declaration here or in its
area's contract; tests/test_reachability.py checks every declared service in the rendered stacks: its callers reach
it, nobody else does, a caller that uses the egress proxy bypasses it for the service, and a load-balanced one waits
for the AWS Load Balancer Controller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.contracts.labels import SANDBOX_LABEL

VPC = "vpc"  # an ingress peer: any address of the VPC CIDR (what an internal NLB forwards from)


@dataclass(frozen=True)
class Pods:
    """Callers: the pods with ``labels`` in ``namespace`` (None: the service's own namespace; ``ANY_SANDBOX``: every
    namespace labelled a sandbox namespace)."""

    labels: Mapping[str, str]
    namespace: str | None = None


ANY_SANDBOX = f"<namespaces labelled {SANDBOX_LABEL}>"
SANDBOXES = Pods({SANDBOX_LABEL: "true"}, ANY_SANDBOX)  # every sandbox pod, of every tenant


@dataclass(frozen=True)
class Service:
    """A service: the pods that serve it (``selector`` in ``namespace``) on ``target_port`` (default ``port``), and the
    pods that may call it. ``nlb``: reached through an internal cross-zone NLB, which is how Kata pods reach anything
    (they cannot reach ClusterIPs): the pods then accept the VPC (the NLB's addresses), and ``loadBalancerSourceRanges``
    keeps the NLB to the VPC. Otherwise a ClusterIP Service (runc callers: core-node pods)."""

    name: str  # the Service object's name
    namespace: str
    selector: Mapping[str, str]
    port: int
    callers: tuple[Pods, ...]
    port_name: str = "http"
    target_port: int | None = None
    nlb: bool = False

    @property
    def pod_port(self) -> int:
        return self.target_port or self.port

    @property
    def cluster_host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def url(self, host: str | None = None) -> str:
        """``http://<host>:<port>``; without ``host``, the cluster DNS name (runc callers only, never Kata pods)."""
        return f"http://{host or self.cluster_host}:{self.port}"
