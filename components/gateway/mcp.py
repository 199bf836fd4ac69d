"""Tenants' MCP servers in the gateway: LiteLLM's ``mcp_servers`` registration of each and the grants that open each
server to its own tenant's team and key only. Plain data (the release values: components/gateway/values.py).

LiteLLM 1.93 (measured in realtests/test_litellm_mcp.py, docs/mcp.md): ``allow_all_keys`` defaults to false and
``available_on_public_internet`` to true; with ``general_settings.require_key_mcp_access_defined`` a key sees only the
servers of its own ``object_permission.mcp_servers``, within its team's. A refused tool call returns (and logs) the
caller's allowed servers with their tokens, so every server has its own token, is reachable from LiteLLM's pods
only, and no server is open to all keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config import AgentConfig, ConfigError, TenantConfig
from components.config.tenants import (
    HTTP_PATH,
    MCP_TRANSPORTS,
    TOOL_NAME,
    agent_name,
    tenant_name,
    tenant_namespace,
)
from components.contracts.gateway import mcp_server_name, mcp_token_env
from components.tenants.agent_service import agent_service
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.mcp import MCP_PORT_RANGE


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


_SERVICE_URL = re.compile(
    r"^http://(?P<agent>[^./:]+)\.(?P<namespace>[^./:]+)\.svc\.cluster\.local:(?P<port>[0-9]{1,5})(?P<path>/.*)$"
)


def check_shard_registration(tenant: str, name: str, entry: Any) -> None:
    """A shard's ``mcp_servers.<name>`` entry for ``tenant`` is accepted only when it is exactly what
    ``McpServer.registration`` writes for a server of that tenant: its agent's Service in a tenant namespace, a checked
    port, path, transport and tools, the token from the gateway's environment, closed. A shard writes data, never
    LiteLLM configuration (no stdio command, no other URL, no server open to all keys). Raises ValueError (what)."""
    if not isinstance(entry, dict):
        raise ValueError("is not a map")
    owner, _, agent = str(entry.get("description", "")).partition("/")
    url = _SERVICE_URL.match(str(entry.get("url", "")))
    try:
        tenant_name("tenant", tenant)
        agent_name("agent", agent)
        if owner != tenant or mcp_server_name(tenant, agent) != name:
            raise ValueError(f"is not the server of an agent of tenant {tenant!r} (description {owner}/{agent})")
        if url is None or url["agent"] != agent:
            raise ValueError(f"url is not the Service of agent {agent!r} (http://{agent}.<namespace>.svc...)")
        tenant_namespace("namespace", url["namespace"])
    except ConfigError as error:
        raise ValueError(error.reason) from None
    tools = entry.get("allowed_tools")
    checks = {
        "port": MCP_PORT_RANGE[0] <= int(url["port"]) <= MCP_PORT_RANGE[1],
        "path": bool(HTTP_PATH.match(url["path"])),
        "transport": entry.get("transport") in MCP_TRANSPORTS,
        "allowed_tools": tools is None
        or (isinstance(tools, list) and bool(tools) and all(isinstance(t, str) and TOOL_NAME.match(t) for t in tools)),
    }
    if not all(checks.values()):
        raise ValueError(f"has an invalid {', '.join(k for k, ok in checks.items() if not ok)}")
    expected = {
        "url": url.string,
        "transport": entry["transport"],
        "auth_type": "bearer_token",
        "auth_value": f"os.environ/{mcp_token_env(name)}",
        "allow_all_keys": False,
        "available_on_public_internet": False,
        "description": f"{tenant}/{agent}",
        **({"allowed_tools": tools} if tools is not None else {}),
    }
    if entry != expected:
        raise ValueError(
            f"differs from the registration the platform writes in {', '.join(_differing(entry, expected))}"
        )


def _differing(entry: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return sorted(k for k in {*entry, *expected} if entry.get(k, _differing) != expected.get(k, _differing))


def mcp_servers(tenants: Sequence[TenantConfig]) -> tuple[McpServer, ...]:
    return tuple(McpServer(t, a) for t in tenants for a in t.agents if a.mcp is not None)


def mcp_grant(tenant: TenantConfig) -> dict[str, Any]:
    """``object_permission`` for the tenant's team and key: its own servers, an empty list included (an empty team
    grant left out would leave a key's earlier grant uncapped)."""
    return {"mcp_servers": [s.name for s in mcp_servers([tenant])]}
