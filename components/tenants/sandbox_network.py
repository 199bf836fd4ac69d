"""What a sandbox may reach: the egress rules shared by the tenant NetworkPolicy and the SandboxTemplates' managed
policy (plain data, no Pulumi resources). Details: docs/cluster.md#sandbox-pods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.config import NetworkConfig
from components.contracts.networks import INSTANCE_METADATA
from components.contracts.sandboxes import sandbox_services
from components.contracts.services import Service
from components.k8s.reach import egress


@dataclass(frozen=True)
class SandboxEgress:
    """What a tenant's sandboxes may reach besides DNS (config: egressMode and egress.cidrs): the platform services
    they call, each through its internal NLB, and in open mode the public internet on 443."""

    allowlist: bool  # True: the egress proxy NLB and ``cidrs`` only; False: HTTPS anywhere public (open mode)
    cidrs: tuple[str, ...] = ()

    @property
    def services(self) -> tuple[Service, ...]:
        """The platform services sandboxes call (components/contracts/sandboxes.py) in this egress mode."""
        return sandbox_services(self.allowlist)


OPEN_EGRESS = SandboxEgress(allowlist=False)


def sandbox_egress_rules(network: NetworkConfig, sandbox: SandboxEgress = OPEN_EGRESS) -> list[dict[str, Any]]:
    """Egress a sandbox needs, nothing more. Shared by the tenant NetworkPolicy and the SandboxTemplate's
    managed policy, so both ways of starting a sandbox get the same rules.

    - DNS only to the VPC resolver (/32, UDP and TCP 53): a sandbox cannot use another resolver to tunnel.
    - each platform service it calls (components/k8s/reach.py): its NLB listener port on the VPC CIDR, where the
      internal NLB's addresses live (not known before the NLB exists and may change): the tenant gateway, and in
      allowlist mode the egress proxy; with the tenant's ``cidrs`` (any port), nothing reaches the internet except
      through the proxy, which checks the domain.
    - open mode (the transition switch): TCP 443 anywhere except the instance metadata address and the VPC
      CIDR itself. Excluding the VPC keeps sandboxes away from everything private that answers on 443 (the EKS
      API endpoint ENIs, other tenants' pods, internal load balancers, interface VPC endpoints).
    """
    vpc = network.cidr
    rules: list[dict[str, Any]] = [
        {
            "to": [{"ipBlock": {"cidr": f"{network.resolver_ip}/32"}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        *(egress(service, vpc) for service in sandbox.services),
    ]
    if not sandbox.allowlist:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [INSTANCE_METADATA, vpc]}}],
                "ports": [{"protocol": "TCP", "port": 443}],
            }
        )
    if sandbox.cidrs:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in sandbox.cidrs]})
    return rules
