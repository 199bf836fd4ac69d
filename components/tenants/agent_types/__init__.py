"""The agent types a tenant can run: the registry, one module per type (hermes.py, openclaw.py, mcp.py). Everything else that
knows a type derives from it (image config, egress defaults, reserved environment, limits, a called type's Service and
NetworkPolicy). Adding a type: its module, one line below, its image key in Pulumi.yaml and its row in docs/cluster.md
(tests/test_agent_types.py). Details: docs/cluster.md#sandbox-pods.
"""

from __future__ import annotations

from components.tenants.agent_types.base import LITELLM_KEY_ENV, MCP_URL_ENV, NODE_PROXY_ENV, PROXY_ENV, AgentType
from components.tenants.agent_types.hermes import HERMES
from components.tenants.agent_types.mcp import MCP
from components.tenants.agent_types.openclaw import OPENCLAW

AGENT_TYPES: dict[str, AgentType] = {t.name: t for t in (HERMES, OPENCLAW, MCP)}


def platform_env() -> frozenset[str]:
    """Every variable the platform sets in an agent container of any type: what tenantSecrets may not set (a later env
    entry overrides an earlier one, so a secretEnv of the same name would replace the platform's value)."""
    return frozenset(
        {
            LITELLM_KEY_ENV,
            MCP_URL_ENV,
            *PROXY_ENV,
            *NODE_PROXY_ENV,
            *(name for t in AGENT_TYPES.values() for name in t.env_names),
        }
    )
