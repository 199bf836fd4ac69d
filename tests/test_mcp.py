"""MCP servers as a tenant workload (issue 29, docs/mcp.md): the sandbox each server runs in, its token, and the
registration the gateway renders for it, from the dev stack (acme: kb-tools, streamable HTTP with a tool allowlist;
globex: crm-tools, SSE). The behaviour of that registration in the real LiteLLM is realtests/test_litellm_mcp.py's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.contracts import gateway as gwc
from components.gateway import keys
from components.gateway.mcp import mcp_servers
from components.gateway.values import with_mcp
from components.tenants.tenant import TenantArgs
from tests.configs import config_error, parse_config
from tests.conftest import program_result
from tests.tokens import DEPLOYMENT, NETPOL, SERVICE
from tools.program import ProgramResult

MASK = "[secret]"
SECRET, PASSWORD = "kubernetes:core/v1:Secret", "random:index/randomPassword:RandomPassword"
SERVERS = {"acme_kb_tools": ("tenant-acme", "kb-tools", 8080), "globex_crm_tools": ("tenant-globex", "crm-tools", 9000)}


@pytest.fixture(scope="module")
def dev() -> ProgramResult:
    return program_result("dev")


def litellm_values(dev: ProgramResult, plain: bool = False) -> dict[str, Any]:
    release = dev.named("kubernetes:helm.sh/v3:Release", "gateway-litellm")
    return (release.plain if plain else release.inputs)["values"]


def named(dev: ProgramResult, type_: str, namespace: str, name: str) -> Any:
    (found,) = [
        r
        for r in dev.of_type(type_)
        if r.inputs["metadata"].get("namespace") == namespace and r.inputs["metadata"]["name"] == name
    ]
    return found


def test_each_server_is_registered_closed_and_with_its_own_token(dev: ProgramResult) -> None:
    values = litellm_values(dev)
    registered = values["proxy_config"]["mcp_servers"]
    assert set(registered) == set(SERVERS)
    for name, (namespace, agent, port) in SERVERS.items():
        entry = registered[name]
        path = "/mcp" if name == "acme_kb_tools" else "/sse"
        assert entry["url"] == f"http://{agent}.{namespace}.svc.cluster.local:{port}{path}"
        assert entry["allow_all_keys"] is False
        assert entry["available_on_public_internet"] is False
        assert entry["auth_type"] == "bearer_token"
        assert entry["auth_value"] == f"os.environ/MCP_TOKEN_{name.upper()}"  # the ConfigMap names it only
        assert {
            "name": f"MCP_TOKEN_{name.upper()}",
            "valueFrom": {"secretKeyRef": {"name": gwc.MCP_TOKENS_SECRET, "key": name}},
        } in values["extraEnvVars"]
    assert registered["acme_kb_tools"]["transport"] == "http"
    assert registered["acme_kb_tools"]["allowed_tools"] == ["search_docs", "get_ticket"]
    assert registered["globex_crm_tools"]["transport"] == "sse"
    assert "allowed_tools" not in registered["globex_crm_tools"]  # none listed: every tool
    assert values["proxy_config"]["general_settings"]["require_key_mcp_access_defined"] is True
    assert values["proxy_config"]["general_settings"]["coordination_redis"]  # the cache's settings kept


def test_the_gateway_and_the_server_share_a_token_no_one_else_has(dev: ProgramResult) -> None:
    tokens = dev.named("kubernetes:core/v1:Secret", "gateway-mcp-tokens")
    assert tokens.inputs["stringData"] == dict.fromkeys(SERVERS, MASK)
    plain = tokens.plain["stringData"]
    # One generated token per server (the mock engine gives every RandomPassword the same value).
    generated = {r.name for r in dev.of_type("random:index/randomPassword:RandomPassword") if "-mcp-token-" in r.name}
    assert generated == {"gateway-mcp-token-acme-kb-tools", "gateway-mcp-token-globex-crm-tools"}
    for name, (namespace, agent, _) in SERVERS.items():
        secret = named(dev, "kubernetes:core/v1:Secret", namespace, f"{agent}-secrets")
        assert secret.inputs["stringData"] == {"MCP_AUTH_TOKEN": MASK}  # no LiteLLM key: it calls no model
        assert secret.plain["stringData"]["MCP_AUTH_TOKEN"] == plain[name]
        # Only in Secrets: not in the release values, a ConfigMap, a pod template (the mock engine gives every
        # RandomPassword one value, so other Secrets and generated passwords are left out of the search).
        others = [r.plain for r in dev.registrations if r.type not in (SECRET, PASSWORD)]
        assert plain[name] not in json.dumps(others, default=str)
    assert plain[name] not in json.dumps(dev.outputs, default=str)
    assert not [r for r in dev.of_type("random:index/randomPassword:RandomPassword") if r.name.endswith("tools-token")]


def test_a_server_runs_in_a_sandbox_with_the_image_s_entrypoint(dev: ProgramResult) -> None:
    deployment = named(dev, DEPLOYMENT, "tenant-acme", "kb-tools")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert deployment.inputs["spec"]["template"]["metadata"]["labels"]["agent-platform.io/sandbox"] == "true"
    assert pod["runtimeClassName"] == "kata-clh"
    assert pod["automountServiceAccountToken"] is False
    assert pod["dnsPolicy"] == "None"
    (container,) = pod["containers"]
    assert "command" not in container  # the tenant's image runs its own entrypoint
    assert container["image"].startswith("111122223333.dkr.ecr.us-east-1.amazonaws.com/acme/mcp-tools:1.4.0@sha256:")
    assert container["ports"] == [{"name": "mcp", "containerPort": 8080, "protocol": "TCP"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"] for e in container["env"]}
    assert "MCP_AUTH_TOKEN" in env
    assert not env & {"LITELLM_API_KEY", "LITELLM_MCP_URL"}
    assert {v["name"] for v in pod["volumes"]} == {"data", "tmp"}  # no seed ConfigMap
    assert not [r for r in dev.of_type("kubernetes:core/v1:ConfigMap") if r.name == "acme-kb-tools-config"]


def test_a_server_admits_only_the_gateway_on_its_port(dev: ProgramResult) -> None:
    service = named(dev, SERVICE, "tenant-globex", "crm-tools")
    assert service.inputs["spec"]["ports"] == [{"name": "mcp", "port": 9000, "targetPort": "mcp"}]
    assert "type" not in service.inputs["spec"]  # ClusterIP: LiteLLM runs on core nodes (runc)
    policy = named(dev, NETPOL, "tenant-globex", "crm-tools-callers")
    assert policy.inputs["spec"]["ingress"] == [
        {
            "from": [
                {
                    "podSelector": {"matchLabels": gwc.SELECTOR},
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gwc.NAMESPACE}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9000}],
        }
    ]


def test_the_tenant_s_agents_get_the_gateway_mcp_url(dev: ProgramResult) -> None:
    for namespace, agent in (("tenant-acme", "hermes"), ("tenant-globex", "openclaw")):
        secret = named(dev, "kubernetes:core/v1:Secret", namespace, f"{agent}-secrets")
        url = secret.plain["stringData"]["LITELLM_MCP_URL"]
        assert url.endswith(":4000/mcp/"), url  # the tenant gateway's NLB; /mcp/ avoids LiteLLM's 307
        (container,) = named(dev, DEPLOYMENT, namespace, agent).inputs["spec"]["template"]["spec"]["containers"]
        assert {
            "name": "LITELLM_MCP_URL",
            "valueFrom": {"secretKeyRef": {"name": f"{agent}-secrets", "key": "LITELLM_MCP_URL"}},
        } in container["env"]


def test_a_tenant_without_servers_grants_none_and_gets_no_url() -> None:
    cfg = parse_config(tenants=[{"name": "solo", "agents": [{"name": "hermes", "type": "hermes"}]}])
    (tenant,) = cfg.tenants
    models = cfg.tenant_models(tenant)
    for spec in (
        keys.team_spec(tenant, models),
        keys.key_spec(tenant, models),
    ):  # written empty, never left out: an empty team
        assert spec["object_permission"] == {"mcp_servers": []}  # grant left out would cap no key
    values = with_mcp({"proxy_config": {}}, {s.name: s.registration() for s in mcp_servers(cfg.tenants)})
    assert values["proxy_config"] == {"general_settings": {"require_key_mcp_access_defined": True}}
    assert values["extraEnvVars"] == []
    args = TenantArgs.for_tenant(tenant, cfg, litellm_url="http://nlb:4000", litellm_key="sk-solo")
    assert args.mcp_url is None  # no LITELLM_MCP_URL in its agents' Secrets


def server(**mcp: Any) -> dict[str, Any]:
    return {"name": "tools", "type": "mcp", "mcp": {"image": "example.com/tools:1.0", **mcp}}


@pytest.mark.parametrize(
    ("agents", "expected"),
    [
        ([{"name": "tools", "type": "mcp"}], "agents[0].mcp: is required for type mcp"),
        ([{"name": "h", "type": "hermes", "mcp": {"image": "x:1"}}], "agents[0].mcp: is only for type mcp"),
        ([server(transport="stdio")], "agents[0].mcp.transport: 'stdio' is not one of http, sse"),
        ([server(image="example.com/tools:latest")], "agents[0].mcp.image: 'example.com/tools:latest' must pin"),
        ([server(image="example.com/tools")], "must pin a tag or digest"),
        ([server(port=80)], "agents[0].mcp.port: must be between 1024 and 65535"),
        ([server(path="mcp")], "agents[0].mcp.path"),
        ([server(allowedTools=["a", "a"])], "duplicate tool 'a'"),
        ([server(allowedTools=["bad tool"])], "allowedTools[0]"),
        ([{**server(), "warmPool": 1}], "agents[0].warmPool: an MCP server runs no warm pool"),
        ([server(secretEnv=["X"])], "agents[0].mcp.secretEnv: unknown key"),
    ],
)
def test_a_bad_server_declaration_fails_with_one_line(agents: list[dict[str, Any]], expected: str) -> None:
    assert expected in config_error(tenants=[{"name": "t", "agents": agents}])


def test_no_server_on_a_fargate_tenant() -> None:
    """Only its NetworkPolicy keeps a server to LiteLLM's pods, and Fargate pods get none (docs/fargate.md)."""
    message = config_error(tenants=[{"name": "f", "isolation": "fargate", "agents": [server()]}])
    assert "agents[0].type: 'mcp' is called by other services: its ingress NetworkPolicy is not enforced" in message


def test_two_servers_with_one_gateway_name_are_refused() -> None:
    """LiteLLM refuses '-' in server names: tenant a-b's c and tenant a's b-c would both be a_b_c."""
    tenants = [
        {"name": "a-b", "agents": [{**server(), "name": "c"}]},
        {"name": "a", "agents": [{**server(), "name": "b-c"}]},
    ]
    assert "duplicate MCP server name" in config_error(tenants=tenants)
