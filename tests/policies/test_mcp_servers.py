"""Rule ``mcp-servers-closed`` (policies/agent_policies/mcp.py): the gateway's MCP servers are never open to all keys,
never served to public addresses, never stdio (the stacks' rendered releases pass: make preview-all runs the pack)."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.mcp import mcp_servers_closed

from tests.policy_cases import UNKNOWN, run_resource_policy

RELEASE = "kubernetes:helm.sh/v3:Release"
CLOSED = {"url": "http://t.tenant-a.svc.cluster.local:8080/mcp", "transport": "http", "auth_type": "bearer_token"}
CLOSED |= {"allow_all_keys": False, "available_on_public_internet": False}


def release(*servers: dict[str, Any], key: str = "proxy_config") -> dict[str, Any]:
    registered = {f"s{i}": server for i, server in enumerate(servers)}
    return {"name": "litellm", "values": {key: {"mcp_servers": registered}}}


@pytest.mark.parametrize(
    ("server", "fix"),
    [
        ({"allow_all_keys": True}, "set allow_all_keys: false"),
        ({"allow_all_keys": "True"}, "set allow_all_keys: false"),
        ({"available_on_public_internet": True}, "set available_on_public_internet: false"),
        ({"available_on_public_internet": None}, "set available_on_public_internet: false"),
        ({"transport": "stdio"}, "stdio runs inside LiteLLM's pod"),
        ({"command": "npx", "args": ["some-server"]}, "stdio runs inside LiteLLM's pod"),
    ],
)
def test_an_open_or_in_pod_server_is_refused(server: dict[str, Any], fix: str) -> None:
    entry = {k: v for k, v in {**CLOSED, **server}.items() if v is not None}
    outcome = run_resource_policy(mcp_servers_closed, RELEASE, release(CLOSED, entry))
    (message,) = outcome.messages
    assert message.startswith("Helm release litellm: values.proxy_config.mcp_servers.s1: ")
    assert fix in message


def test_closed_servers_pass_and_unknowns_do_not_hide_a_known_violation() -> None:
    assert run_resource_policy(mcp_servers_closed, RELEASE, release(CLOSED, CLOSED)).messages == []
    outcome = run_resource_policy(mcp_servers_closed, RELEASE, release(UNKNOWN, {**CLOSED, "allow_all_keys": True}))
    assert len(outcome.messages) == 1
    assert outcome.unknown is not None  # reported as an advisory note by the SDK


def test_other_config_keys_are_checked_when_configured() -> None:
    props = release({**CLOSED, "allow_all_keys": True}, key="config")
    assert run_resource_policy(mcp_servers_closed, RELEASE, props).messages == []
    configured = run_resource_policy(mcp_servers_closed, RELEASE, props, {"litellmConfigValues": ["config"]})
    assert len(configured.messages) == 1
