"""The reserved agent environment (issue 14): ``RESERVED_AGENT_ENV`` covers exactly what the program sets in agent
containers, derived here from the pod templates it builds, so a tenant's ``secretEnv`` can never replace one
(a later env entry wins in Kubernetes: ``NODE_OPTIONS`` from a Secret would replace the platform's heap cap)."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import EXTRA_RESERVED_AGENT_ENV, PLATFORM_AGENT_ENV, RESERVED_AGENT_ENV
from components.tenants.agent_pod import agent_pod_template
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.base import LITELLM_KEY_ENV, MCP_URL_ENV
from tests.configs import config_error, parse_config
from tools.program import ProgramResult

SANDBOX_WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate",
)


def env_names(pod_template: dict[str, Any]) -> set[str]:
    return {e["name"] for c in pod_template["spec"]["containers"] for e in c.get("env", [])}


def template_env(agent_type: str, proxy: bool) -> set[str]:
    """Env names of one agent type's pod template, with the platform's own secrets (no tenant secretEnv)."""
    kind = AGENT_TYPES[agent_type]
    agent = {"name": "a", "type": agent_type, **({"mcp": {"image": "example/tools:1"}} if kind.mcp_server else {})}
    cfg = parse_config(tenants=[{"name": "t", "agents": [agent]}], egressMode="allowlist" if proxy else "open")
    (tenant,) = cfg.tenants
    # What the tenant's builder puts in an agent's Secret: the gateway's key and MCP URL (none for an MCP server).
    gateway = () if kind.mcp_server else (LITELLM_KEY_ENV, MCP_URL_ENV)
    template = agent_pod_template(
        tenant=tenant,
        agent_name="a",
        image="example/agent:1",
        network=cfg.network,
        workload="deployment",
        data="emptyDir",
        secret_names=(*gateway, kind.token_env),
        proxy_secret="egress-proxy" if proxy else None,
    )
    return env_names(template)


def test_reserved_list_is_exactly_what_the_pod_templates_set() -> None:
    derived = {name for t in AGENT_TYPES for proxy in (False, True) for name in template_env(t, proxy)}
    assert derived == PLATFORM_AGENT_ENV, (
        f"missing: {sorted(derived - PLATFORM_AGENT_ENV)}, stale: {sorted(PLATFORM_AGENT_ENV - derived)}"
    )
    assert RESERVED_AGENT_ENV == PLATFORM_AGENT_ENV | EXTRA_RESERVED_AGENT_ENV


def program_agent_env(result: ProgramResult) -> set[str]:
    """Env names of every agent workload the real program declares, minus the tenants' own secretEnv."""
    names: set[str] = set()
    for r in result.registrations:
        if r.type in SANDBOX_WORKLOADS:
            spec = r.inputs["spec"]
            names |= env_names(spec["template"] if "template" in spec else spec["podTemplate"])
    return names


def test_the_real_program_sets_nothing_outside_the_reserved_list(each_stack: ProgramResult) -> None:
    secret_env = {"TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"}  # the stacks' tenant secrets
    names = program_agent_env(each_stack)
    assert names, "no agent workload found"
    assert names - secret_env <= PLATFORM_AGENT_ENV, sorted(names - secret_env - PLATFORM_AGENT_ENV)


@pytest.mark.parametrize(
    "env",
    sorted(name for name in RESERVED_AGENT_ENV if name.isupper())
    + ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "KUBERNETES_SERVICE_HOST", "AWS_CONTAINER_CREDENTIALS_FULL_URI"],
)
def test_secret_env_may_not_name_a_reserved_variable(env: str) -> None:
    message = config_error(
        tenants=[{"name": "t", "agents": [{"name": "a", "type": "openclaw", "secretEnv": ["OK_TOKEN", env]}]}]
    )
    why = "is set by the platform" if env in PLATFORM_AGENT_ENV else "is reserved"
    assert message.startswith(f"agent-platform:tenants[0].agents[0].secretEnv[1]: {env} {why} "), message
    assert message.endswith("cannot come from tenantSecrets"), message
