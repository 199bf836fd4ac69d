"""Tenants' MCP servers in the gateway: LiteLLM's ``mcp_servers`` registration of each and the grants that open each
server to its own tenant's team and key only. Plain data (the release values: components/gateway/values.py).

LiteLLM 1.93 (measured in realtests/test_litellm_mcp.py, docs/mcp.md): ``allow_all_keys`` defaults to false and
``available_on_public_internet`` to true; with ``general_settings.require_key_mcp_access_defined`` a key sees only the
servers of its own ``object_permission.mcp_servers``, within its team's. A refused tool call returns (and logs) the
caller's allowed servers with their tokens, so every server has its own token, is reachable from LiteLLM's pods
only, and no server is open to all keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config import AgentConfig, TenantConfig
from components.contracts.gateway import mcp_server_name, mcp_token_env
from components.tenants.agent_service import agent_service
from components.tenants.agent_types import AGENT_TYPES


@dataclass(frozen=True)
class McpServer:
    """One tenant's MCP server as the gateway registers it."""

    tenant: TenantConfig
    agent: AgentConfig

    @property
    def name(self) -> str:
        return mcp_server_name(self.tenant.name, self.agent.name)

    @property
    def token_env(self) -> str:
        return mcp_token_env(self.name)

    @property
    def url(self) -> str:
        """Its ClusterIP Service (LiteLLM runs on core nodes, runc: cluster DNS and ClusterIPs work there)."""
        assert self.agent.mcp is not None
        service = agent_service(self.tenant, self.agent, AGENT_TYPES[self.agent.type])
        return service.url() + self.agent.mcp.path

    def registration(self) -> dict[str, Any]:
        """Its ``mcp_servers.<name>`` entry: bearer token from the environment, never open to all keys nor to callers
        from public addresses."""
        assert self.agent.mcp is not None
        entry: dict[str, Any] = {
            "url": self.url,
            "transport": self.agent.mcp.transport,
            "auth_type": "bearer_token",
            "auth_value": f"os.environ/{self.token_env}",
            "allow_all_keys": False,
            "available_on_public_internet": False,
            "description": f"{self.tenant.name}/{self.agent.name}",
        }
        if self.agent.mcp.allowed_tools:
            entry["allowed_tools"] = list(self.agent.mcp.allowed_tools)
        return entry


def mcp_servers(tenants: Sequence[TenantConfig]) -> tuple[McpServer, ...]:
    return tuple(McpServer(t, a) for t in tenants for a in t.agents if a.mcp is not None)


def mcp_grant(tenant: TenantConfig) -> dict[str, Any]:
    """``object_permission`` for the tenant's team and key: its own servers, an empty list included (an empty team
    grant left out would leave a key's earlier grant uncapped)."""
    return {"mcp_servers": [s.name for s in mcp_servers([tenant])]}
