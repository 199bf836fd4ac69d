"""What a sandbox may reach: the egress rules shared by the tenant NetworkPolicy and the SandboxTemplates' managed
policy (plain data, no Pulumi resources). Details: docs/cluster.md#sandbox-pods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.config import NetworkConfig
from components.contracts.networks import INSTANCE_METADATA
from components.contracts.ports import LITELLM_PORT, PROXY_PORT


@dataclass(frozen=True)
class SandboxEgress:
    """What a tenant's sandboxes may reach besides DNS and LiteLLM (config: egressMode and egress.cidrs)."""

    allowlist: bool  # True: only the egress proxy NLB and ``cidrs``; False: HTTPS anywhere public (open mode)
    cidrs: tuple[str, ...] = ()


OPEN_EGRESS = SandboxEgress(allowlist=False)


def sandbox_egress_rules(network: NetworkConfig, egress: SandboxEgress = OPEN_EGRESS) -> list[dict[str, Any]]:
    """Egress a sandbox needs, nothing more. Shared by the tenant NetworkPolicy and the SandboxTemplate's
    managed policy, so both ways of starting a sandbox get the same rules.

    - DNS only to the VPC resolver (/32, UDP and TCP 53): a sandbox cannot use another resolver to tunnel.
    - LiteLLM: TCP 4000 to the VPC CIDR, where the internal NLB's addresses live (their IPs are not known
      before the NLB exists and may change, so the rule names the CIDR and the port).
    - allowlist mode: the egress proxy, TCP 3128 to the VPC CIDR (its NLB, same reasoning), and the tenant's
      ``cidrs`` (any port); nothing reaches the internet except through the proxy, which checks the domain.
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
        {"to": [{"ipBlock": {"cidr": vpc}}], "ports": [{"protocol": "TCP", "port": LITELLM_PORT}]},
    ]
    if egress.allowlist:
        rules.append({"to": [{"ipBlock": {"cidr": vpc}}], "ports": [{"protocol": "TCP", "port": PROXY_PORT}]})
    else:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [INSTANCE_METADATA, vpc]}}],
                "ports": [{"protocol": "TCP", "port": 443}],
            }
        )
    if egress.cidrs:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.cidrs]})
    return rules
