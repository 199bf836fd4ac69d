"""CrossGuard policies for the agent sandbox platform.

``policies/__main__.py`` builds the PolicyPack from :func:`all_policies`. Each rule module holds one
policy with its metadata (name, description, config schema); the validators are plain module-level
functions so tests can call them directly.
"""

from __future__ import annotations

from pulumi_policy import Policy

from .dns import kata_dns
from .egress import sandbox_egress_allowlist
from .host_access import sandbox_no_host_access
from .kata import kata_clh_no_init_containers
from .network import nlb_cross_zone
from .node_capacity import kata_node_capacity
from .nodes import nested_virtualization_nodes
from .runtime_class import sandbox_runtime_class
from .sandbox_namespaces import sandbox_namespace_runtime_class

POLICY_PACK_NAME = "agent-platform-policies"

POLICIES: tuple[Policy, ...] = (
    sandbox_runtime_class,
    sandbox_namespace_runtime_class,
    kata_dns,
    nlb_cross_zone,
    kata_clh_no_init_containers,
    sandbox_no_host_access,
    nested_virtualization_nodes,
    kata_node_capacity,
    sandbox_egress_allowlist,
)


def all_policies() -> list[Policy]:
    """The pack's policies, run by the unmodified pulumi-policy SDK."""
    return list(POLICIES)


__all__ = ["POLICIES", "POLICY_PACK_NAME", "all_policies"]
