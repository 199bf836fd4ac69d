"""The platform services sandboxes call, each through its internal NLB: the one list the tenant NetworkPolicies, the
SandboxTemplates' managed policies and the sandbox nodes' security group are built from."""

from __future__ import annotations

from components.contracts.egress import PROXY
from components.contracts.gateway import TENANT_GATEWAY
from components.contracts.services import Service

SANDBOX_SERVICES: tuple[Service, ...] = (TENANT_GATEWAY, PROXY)
# The egress proxy exists in allowlist mode only; every other service is called directly, never through the proxy.
PROXIES: tuple[Service, ...] = (PROXY,)


def sandbox_services(allowlist: bool) -> tuple[Service, ...]:
    """What sandboxes call in this egress mode (open mode has no proxy)."""
    return tuple(s for s in SANDBOX_SERVICES if allowlist or s not in PROXIES)
