"""MCP tool servers (Model Context Protocol, streamable HTTP or SSE): the tenant's own image in a sandbox like any
agent's, called only by the model gateway (LiteLLM), which registers it for the tenant's team alone. Details:
docs/mcp.md.
"""

from __future__ import annotations

from typing import Any

from components.contracts.gateway import GATEWAY_PODS
from components.tenants.agent_types.base import AgentFiles, AgentType

MCP_DATA = "/data"  # writable: an emptyDir, or a volume with storageGiB
MCP_PORT = 8080  # agents[].mcp.port's default
MCP_PORT_RANGE = (1024, 65535)  # what agents[].mcp.port may be, and what the gateway's egress allows to MCP pods
# The bearer token the gateway sends (the program generates it, one per server): the server must refuse any other.
MCP_TOKEN_ENV = "MCP_AUTH_TOKEN"
MCP_UID = 65532  # the "nonroot" user of distroless and Chainguard images; the pod runs the image as this user


def mcp_files(f: AgentFiles) -> dict[str, str]:  # noqa: ARG001 - the image carries its own configuration
    return {}


def mcp_env(memory: str) -> list[dict[str, Any]]:  # noqa: ARG001 - nothing sized from memory
    return [{"name": "HOME", "value": MCP_DATA}]


MCP = AgentType(
    name="mcp",
    title="MCP server",
    image_key="",  # each server names its image (agents[].mcp.image), pinned by tag or digest
    uid=MCP_UID,
    data_path=MCP_DATA,
    token_env=MCP_TOKEN_ENV,
    ports=(("mcp", MCP_PORT),),
    entrypoint="",  # the image's own
    files=mcp_files,
    env=mcp_env,
    # None: exec probes need a tool inside the tenant's image, and kubelet's HTTP/TCP probes come from the node,
    # which the server's NetworkPolicy does not admit (only the gateway's pods). The gateway's health check
    # (/v1/mcp/server/health) reports a server that does not answer.
    probes={},
    tmp_medium="Memory",
    tmp_size="256Mi",
    callers=(GATEWAY_PODS,),
    service_port="mcp",
    mcp_server=True,
)
