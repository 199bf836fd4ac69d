"""LiteLLM 1.93 as the tenants' MCP gateway, with real MCP servers and real MCP clients (docs/mcp.md).

Tenant A (acme) has one streamable-HTTP server, tenant B (globex) one streamable-HTTP and one SSE server, each
with its own bearer token, declared as ``mcp`` agents; the session's LiteLLM (conftest.py) runs the registration the
program renders for them (``allow_all_keys: false``, ``available_on_public_internet: false``,
``require_key_mcp_access_defined``), and the tenants' teams and keys are written by their rendered key Jobs, whose
bodies carry the grants. Agents call through the rendered tenant gateway (nginx) in front of it. The clients are the
``mcp`` SDK (Python) and the TypeScript SDK (npm); every response body they received is searched for tokens.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from realtests import lab, mcp_lab
from realtests.conftest import FIGURES
from tests.tenant_gateway_nginx import RunningGateway, tenant_gateway

REFUSED = "User not allowed to call this tool."
LEAKING_REFUSAL = "User not allowed to call this tool. Allowed MCP servers: [MCPServer("
TOOLS_B = {"globex_tools": ("echo", "whoami"), "globex_sse": ("echo", "whoami", "wipe")}  # globex_sse: no allowlist


@pytest.fixture(scope="module")
def tenant_gw(gateway: mcp_lab.Gateway) -> Iterator[RunningGateway]:
    """The rendered tenant gateway (nginx.conf of components/gateway/tenant_gateway.py, Debian's nginx) in front of
    the session's LiteLLM: what agents call (LITELLM_MCP_URL is its /mcp/)."""
    with tenant_gateway(f"127.0.0.1:{gateway.proxy.port}") as running:
        yield running


def call(name: str, text: str | None = None) -> dict[str, Any]:
    return {"op": "call", "name": name, "args": {"text": text} if text is not None else {}}


def fresh_key(tenant: str) -> str:
    return f"sk-{tenant}-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def lab_gw(gateway: mcp_lab.Gateway) -> Iterator[dict[str, Any]]:
    """The tenants registered by their key Jobs (MCP grants in TEAM_SPEC/KEY_SPEC), an admin-made key in A's team
    with no MCP grant, and the emptied team of ``emptied_team``. Yields the keys, the servers by name, the edge."""
    lab.psql('delete from "LiteLLM_VerificationToken"; delete from "LiteLLM_TeamTable";')
    keys = {}
    start = time.monotonic()
    for tenant in ("acme", "globex"):
        keys[tenant] = fresh_key(tenant)
        for run in ("created", "updated"):  # the second run takes the update path with the same grants
            rc, out = run_key_job(gateway, tenant, keys[tenant])
            assert rc == 0, out
            assert f"team tenant-{tenant} {run}" in out, out
    FIGURES["key_jobs_s"] = round(time.monotonic() - start, 1)
    no_grant = {**gateway.registration.keys["acme"], "key_alias": "acme-no-mcp", "key": fresh_key("acme")}
    del no_grant["object_permission"]
    code, body = lab.call(gateway.proxy.url, "/key/generate", no_grant)
    assert code == 200, body
    keys["no_grant"] = no_grant["key"]
    yield {"keys": keys, "servers": {s.name: s for s in gateway.tool_servers}, "edge": emptied_team(gateway)}
    FIGURES["mcp_tests_s"] = round(time.monotonic() - start, 1)


def emptied_team(gateway: mcp_lab.Gateway) -> dict[str, Any]:
    """A team granted acme_tools, a key granted it too (never used yet), then the team's grant emptied: for
    ``test_an_emptied_team_grant_is_no_ceiling``, which waits for LiteLLM's cached team to expire."""
    url = gateway.proxy.url
    team = {"team_id": "tenant-mcp-edge", "object_permission": {"mcp_servers": ["acme_tools"]}}
    assert lab.call(url, "/team/new", team)[0] == 200
    key = {"key": fresh_key("edge"), "key_alias": "edge", **team}
    assert lab.call(url, "/key/generate", key)[0] == 200
    assert lab.call(url, "/team/update", {**team, "object_permission": {"mcp_servers": []}})[0] == 200
    return {"key": key, "emptied": time.monotonic()}


def run_key_job(gateway: mcp_lab.Gateway, tenant: str, key: str) -> tuple[int, str]:
    """The tenant's rendered key Job, as rendered (its team and key bodies carry the MCP grants)."""
    container = gateway.jobs[tenant]
    secrets_ = {("litellm-masterkey", "masterkey"): lab.MASTER_KEY, ("litellm-tenant-keys", tenant): key}
    return lab.run_job_container(container, secrets_, gateway.proxy.url)


def everything(result: Any) -> str:
    """All a client was sent (op results, errors, every raw response body) as one text."""
    return json.dumps(result)


def tokens_in(text: str, gateway: mcp_lab.Gateway) -> set[str]:
    return {s.name for s in gateway.tool_servers if s.token in text}


def stored_grant(table: str, column: str, value: str) -> list[str]:
    """The ``mcp_servers`` LiteLLM stored for a key (``LiteLLM_VerificationToken.token``, the key's SHA-256) or a team,
    read from its database: a key never goes into a URL (LiteLLM's access log prints query strings)."""
    out = lab.psql(
        f'select p.mcp_servers from "{table}" t join "LiteLLM_ObjectPermissionTable" p '
        f"on p.object_permission_id = t.object_permission_id where t.{column} = '{value}'"
    )
    return sorted(out.strip("{}").split(",")) if out.strip("{}") else []


def test_the_rendered_grants_give_each_tenant_its_own_servers(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """After the key Jobs' second (update) run. LiteLLM stores a team's grant as written and a key's as server ids
    (it resolves names, aliases and ids against the team's grant: a stable hash for a config-defined server)."""
    own = {"acme": ["acme_tools"], "globex": ["globex_sse", "globex_tools"]}
    ids = rest_ids(gateway, lab_gw)
    for tenant, servers in own.items():
        for body in (gateway.registration.teams[tenant], gateway.registration.keys[tenant]):
            assert sorted(body["object_permission"]["mcp_servers"]) == servers
        assert stored_grant("LiteLLM_TeamTable", "team_id", f"tenant-{tenant}") == servers
        token = hashlib.sha256(lab_gw["keys"][tenant].encode()).hexdigest()
        assert stored_grant("LiteLLM_VerificationToken", "token", token) == sorted(ids[s] for s in servers)


def test_the_config_names_the_tokens_only(gateway: mcp_lab.Gateway) -> None:
    """The proxy config (a ConfigMap in the cluster) carries ``os.environ/`` references; LiteLLM resolves them."""
    config = (lab.LAB / "work" / f"config-{gateway.proxy.port}.yaml").read_text()
    assert "os.environ/MCP_TOKEN_ACME_TOOLS" in config
    assert not tokens_in(config, gateway)


def test_a_tenant_lists_and_calls_its_own_tools(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    url = gateway.proxy.url
    a = mcp_lab.session(url + "/mcp", lab_gw["keys"]["acme"], [{"op": "list"}, call("acme_tools-echo", "hi A")])
    assert a["error"] is None, a
    assert a["ops"] == [
        {"tools": ["acme_tools-echo", "acme_tools-whoami"]},  # <server>-<tool>; "wipe" is not in allowed_tools
        {"text": "acme_tools echoes: hi A", "is_error": False},
    ]
    b = mcp_lab.session(url + "/mcp", lab_gw["keys"]["globex"], [{"op": "list"}, call("globex_sse-whoami")])
    assert b["ops"][0] == {"tools": sorted(f"{s}-{t}" for s in ("globex_tools", "globex_sse") for t in TOOLS_B[s])}
    assert b["ops"][1] == {"text": "globex_sse", "is_error": False}  # through the SSE upstream
    # /mcp answers every POST with a redirect to /mcp/, built from the request's Host header.
    assert {(w["url"], w.get("location")) for w in a["wire"] if w["status"] == 307} == {(url + "/mcp", url + "/mcp/")}
    assert not tokens_in(everything(a) + everything(b), gateway)


@pytest.mark.parametrize("path", ["/mcp/acme_tools", "/acme_tools/mcp"])
def test_a_per_server_route_serves_that_server(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any], path: str) -> None:
    ops = [{"op": "list"}, call("echo", "short"), call("acme_tools-echo", "prefixed"), call("wipe")]
    result = mcp_lab.session(gateway.proxy.url + path, lab_gw["keys"]["acme"], ops)
    assert result["ops"][:3] == [
        {"tools": ["acme_tools-echo", "acme_tools-whoami"]},
        {"text": "acme_tools echoes: short", "is_error": False},
        {"text": "acme_tools echoes: prefixed", "is_error": False},
    ]
    refused = "Tool wipe is not allowed for server acme_tools. Contact proxy admin to allow this tool."
    assert result["ops"][3] == {"text": f"Error: {{'error': '{refused}'}}", "is_error": True}


def test_the_other_tenant_s_server_is_refused_and_only_the_caller_s_own_token_leaks(
    gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]
) -> None:
    """Design.md section 6 (a): the refusal lists the caller's allowed servers as objects, tokens included. A
    caller is granted only its own servers, so the only token it can learn is its own."""
    url, key = gateway.proxy.url, lab_gw["keys"]["acme"]
    through_all = mcp_lab.session(url + "/mcp", key, [call("globex_tools-echo", "x"), call("globex_sse-wipe")])
    for refusal in through_all["ops"]:
        assert refusal["is_error"], refusal
        assert refusal["text"].startswith("Error: " + LEAKING_REFUSAL), refusal
        assert f"authentication_token='{lab_gw['servers']['acme_tools'].token}'" in refusal["text"]
    through_b = mcp_lab.session(url + "/mcp/globex_tools", key, [{"op": "list"}, call("echo", "x")])
    assert through_b["ops"] == [{"tools": []}, {"text": "Error: " + REFUSED, "is_error": True}]
    assert tokens_in(everything(through_all), gateway) == {"acme_tools"}
    assert not tokens_in(everything(through_b), gateway)
    # The gateway log prints the same objects: its logs are secret-bearing.
    log = gateway.proxy.log.read_text()
    logged = [line for line in log.splitlines() if "HTTPException in MCP tool call: 403: " + LEAKING_REFUSAL in line]
    assert logged, "the refusal is no longer logged: update docs/mcp.md"
    assert tokens_in("\n".join(logged), gateway) == {"acme_tools"}
    assert not any(k in log for k in lab_gw["keys"].values())  # the callers' keys are not logged


def test_a_key_without_an_mcp_grant_sees_nothing(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """Its team has acme_tools; with require_key_mcp_access_defined the key inherits none of it."""
    url, key = gateway.proxy.url, lab_gw["keys"]["no_grant"]
    for path in ("/mcp", "/mcp/acme_tools"):
        result = mcp_lab.session(url + path, key, [{"op": "list"}, call("acme_tools-echo", "x")])
        assert result["ops"] == [{"tools": []}, {"text": "Error: " + REFUSED, "is_error": True}], path
    code, body = lab.call(url, "/mcp-rest/tools/list", key=key)
    assert (code, body["tools"]) == (200, [])
    assert lab.call(url, "/v1/models", key=key)[0] == 200  # still a working inference key


def test_no_key_or_a_wrong_key_is_refused_before_any_server(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    before = len(gateway.servers.requests())
    for key in (None, "sk-not-a-key"):
        result = mcp_lab.session(gateway.proxy.url + "/mcp", key, [{"op": "list"}])
        assert result["ops"] == [], result
        assert result["error"], result
        assert {w["status"] for w in result["wire"]} == {307, 401}, result["wire"]  # 307: /mcp -> /mcp/
    assert len(gateway.servers.requests()) == before


def rest_ids(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> dict[str, str]:
    """server name -> LiteLLM's server_id (a stable hash for config-defined servers), from each tenant's list."""
    ids = {}
    for tenant in ("acme", "globex"):
        code, body = lab.call(gateway.proxy.url, "/mcp-rest/tools/list", key=lab_gw["keys"][tenant])
        assert code == 200, body
        ids |= {tool["mcp_info"]["server_name"]: tool["mcp_info"]["server_id"] for tool in body["tools"]}
    return ids


def test_the_rest_routes_keep_to_the_caller_s_grant(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    url, key = gateway.proxy.url, lab_gw["keys"]["acme"]
    ids = rest_ids(gateway, lab_gw)
    assert set(ids) == {"acme_tools", "globex_tools", "globex_sse"}
    responses = {"list": lab.call(url, "/mcp-rest/tools/list", key=key)}
    assert {t["mcp_info"]["server_name"] for t in responses["list"][1]["tools"]} == {"acme_tools"}
    own = {"server_id": ids["acme_tools"], "name": "echo", "arguments": {"text": "rest"}}
    responses["own"] = lab.call(url, "/mcp-rest/tools/call", own, key=key)
    assert responses["own"][0] == 200
    assert responses["own"][1]["content"][0]["text"] == "acme_tools echoes: rest"
    for server in ("globex_tools", "globex_sse"):
        for name in ("echo", f"{server}-echo"):
            other = {"server_id": ids[server], "name": name, "arguments": {"text": "x"}}
            responses[f"{server}/{name}"] = code, body = lab.call(url, "/mcp-rest/tools/call", other, key=key)
            denied = f"The key is not allowed to access server {ids[server]}"
            assert (code, body["detail"]) == (403, {"error": "access_denied", "message": denied})
        code, body = responses[f"list {server}"] = lab.call(
            url, f"/mcp-rest/tools/list?server_id={ids[server]}", key=key
        )
        assert code == 200
        assert body["tools"] == []
        assert "access_denied" in body["message"]
    mismatch = {"server_id": ids["acme_tools"], "name": "globex_tools-echo", "arguments": {"text": "x"}}
    responses["mismatch"] = code, body = lab.call(url, "/mcp-rest/tools/call", mismatch, key=key)
    assert (code, body["detail"]["error"]) == (403, "tool_server_mismatch")
    for path in ("/v1/mcp/server", "/v1/mcp/tools", "/v1/mcp/server/health"):  # redacted listings
        responses[path] = lab.call(url, path, key=key)
    assert not tokens_in(json.dumps(responses), gateway)
    FIGURES["rest_statuses"] = {name: response[0] for name, response in responses.items()}


def test_an_independent_npm_client_gets_the_same_answers(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    ops = [{"op": "list"}, call("acme_tools-echo", "npm"), call("globex_tools-echo", "x")]
    result = mcp_lab.npm_session(gateway.proxy.url + "/mcp", lab_gw["keys"]["acme"], ops)
    assert result["error"] is None, result
    assert result["ops"][:2] == [
        {"tools": ["acme_tools-echo", "acme_tools-whoami"]},
        {"text": "acme_tools echoes: npm", "is_error": False},
    ]
    assert result["ops"][2]["is_error"]
    assert result["ops"][2]["text"].startswith("Error: " + LEAKING_REFUSAL)
    assert tokens_in(everything(result), gateway) == {"acme_tools"}


def test_each_server_received_only_its_own_token_and_never_a_caller_s_key(
    gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]
) -> None:
    """Every request the MCP servers got so far (the tests above, in file order, and LiteLLM's start-up)."""
    requests = gateway.servers.requests()
    by_server = {r["server"] for r in requests}
    assert {"acme_tools", "globex_tools", "globex_sse"} <= by_server
    callers = [*lab_gw["keys"].values(), lab.MASTER_KEY]
    for request in requests:
        server = lab_gw["servers"][request["server"]]
        auth = [value for name, value in request["headers"] if name == "authorization"]
        assert auth == [f"Bearer {server.token}"], request
        assert not any(k in json.dumps(request["headers"]) for k in callers), request
        assert tokens_in(json.dumps(request["headers"]), gateway) == {server.name}
    FIGURES["server_requests"] = len(requests)


def test_a_caller_sent_header_replaces_the_configured_token(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """Design.md section 6 (c): ``x-mcp-<server>-authorization`` from the caller is what the server receives.
    The platform's tenant gateway strips ``x-mcp-*``: its tests run ``override_probe`` through it."""
    url, key, acme = gateway.proxy.url, lab_gw["keys"]["acme"], lab_gw["servers"]["acme_tools"]
    chosen, received, result = mcp_lab.override_probe(gateway.servers, acme, url + "/mcp", key, "acme_tools-echo")
    assert received
    assert set(received) == {chosen}  # never the configured token on that call
    # The server refuses the caller's value; LiteLLM passes its 401 on, with the server's URL.
    (answer,) = result["ops"]
    assert answer["is_error"], answer
    assert f"401 Unauthorized' for url '{acme.url}'" in answer["text"]
    # It does not open another tenant's server: the grant is checked first, and nothing reaches B.
    before = len(gateway.servers.requests())
    headers = {"x-mcp-globex_tools-authorization": f"Bearer {lab_gw['servers']['globex_tools'].token}"}
    result = mcp_lab.session(url + "/mcp/globex_tools", key, [call("echo", "x")], headers)
    assert result["ops"] == [{"text": "Error: " + REFUSED, "is_error": True}]
    assert not [r for r in gateway.servers.requests()[before:] if r["server"] == "globex_tools"]


def test_a_tool_permission_alone_grants_its_server(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """Upstream #33397 on 1.93: a key with only ``mcp_tool_permissions`` (no ``mcp_servers``) reaches that server
    despite require_key_mcp_access_defined (limited to those tools); the team's grant still caps it."""
    url, base = gateway.proxy.url, gateway.registration.keys["acme"]
    body = {**base, "key_alias": "acme-tool-permission", "key": fresh_key("acme")}
    body["object_permission"] = {"mcp_tool_permissions": {"acme_tools": ["echo"]}}
    code, created = lab.call(url, "/key/generate", body)
    assert code == 200, created
    result = mcp_lab.session(
        url + "/mcp", body["key"], [{"op": "list"}, call("acme_tools-echo", "tp"), call("acme_tools-whoami")]
    )
    assert result["ops"][:2] == [{"tools": ["acme_tools-echo"]}, {"text": "acme_tools echoes: tp", "is_error": False}]
    assert result["ops"][2]["is_error"]
    assert "is not allowed for your key/team" in result["ops"][2]["text"]
    other = {**body, "key_alias": "acme-tool-permission-b", "key": fresh_key("acme")}
    other["object_permission"] = {"mcp_tool_permissions": {"globex_tools": ["echo"]}}
    code, refused = lab.call(url, "/key/generate", other)
    assert code == 403
    assert "Key requests MCP servers not allowed by team 'tenant-acme'" in json.dumps(refused)


def test_an_emptied_team_grant_is_no_ceiling(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """A team whose ``mcp_servers`` became [] (in the module fixture) no longer caps its keys: a key's earlier
    grant keeps working, so the key Job must write the key's grant with the team's (an empty one included). And
    the change reaches LiteLLM's key checks only when its cached team expires (60 s by default)."""
    url, edge = gateway.proxy.url, lab_gw["edge"]
    late = {**edge["key"], "key_alias": None}
    while (code := lab.call(url, "/key/generate", {**late, "key": fresh_key("edge")})[0]) == 200:
        assert time.monotonic() - edge["emptied"] < 120, "the emptied team never reached /key/generate"
        time.sleep(2)
    assert code == 403
    FIGURES["team_change_reached_key_generate_s"] = round(time.monotonic() - edge["emptied"])
    result = mcp_lab.session(url + "/mcp", edge["key"]["key"], [{"op": "list"}, call("acme_tools-whoami")])
    assert result["ops"] == [
        {"tools": ["acme_tools-echo", "acme_tools-whoami"]},
        {"text": "acme_tools", "is_error": False},
    ]
    cleared = {"key": edge["key"]["key"], "object_permission": {"mcp_servers": []}}
    assert lab.call(url, "/key/update", cleared)[0] == 200
    code, info = lab.call(url, f"/key/info?key={edge['key']['key']}")
    assert info["info"]["object_permission"]["mcp_servers"] == []


def test_a_server_open_to_all_keys_leaks_its_token_to_every_key(
    gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]
) -> None:
    """Design.md section 6 (b), why the platform refuses ``allow_all_keys``: the open server is in every key's
    allowed list, so every key's refusal text carries its token. Registered through the admin API here (the
    config's ``allow_all_keys: true`` behaves the same), removed afterwards."""
    url, keys, open_tools = gateway.proxy.url, lab_gw["keys"], lab_gw["servers"]["open_tools"]
    code, created = lab.call(url, "/v1/mcp/server", mcp_lab.api_registration(open_tools))
    assert code in (200, 201), created
    assert open_tools.token not in json.dumps(created)  # the API's own answer is redacted
    try:
        seen = {}
        for who in ("acme", "globex", "no_grant"):
            refused = call("acme_tools-echo" if who == "globex" else "globex_tools-echo", "x")
            result = mcp_lab.session(url + "/mcp", keys[who], [{"op": "list"}, refused])
            assert result["ops"][1]["text"].startswith("Error: " + LEAKING_REFUSAL), result["ops"][1]
            assert {"open_tools-echo", "open_tools-whoami", "open_tools-wipe"} <= set(result["ops"][0]["tools"])
            seen[who] = tokens_in(everything(result), gateway)
            assert "open_tools" in seen[who], who
        own = {"acme": {"acme_tools"}, "globex": {"globex_tools", "globex_sse"}, "no_grant": set()}
        assert seen == {who: {"open_tools", *servers} for who, servers in own.items()}
    finally:
        assert lab.call(url, f"/v1/mcp/server/{created['server_id']}", method="DELETE")[0] == 202
    after = mcp_lab.session(url + "/mcp", keys["no_grant"], [{"op": "list"}])
    assert after["ops"] == [{"tools": []}]


def test_a_server_name_with_the_tool_separator_is_refused(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """Tools are named ``<server>-<tool>``: LiteLLM refuses ``-`` in a server name (the config loader's
    ``validate_mcp_server_name`` raises; the admin API answers 400)."""
    url = gateway.proxy.url
    hyphenated = replace(lab_gw["servers"]["open_tools"], name="open-tools", allow_all_keys=False)
    code, created = lab.call(url, "/v1/mcp/server", mcp_lab.api_registration(hyphenated))
    if code in (200, 201):
        lab.call(url, f"/v1/mcp/server/{created['server_id']}", method="DELETE")
    assert code == 400, created


def rpc(url: str, key: str, method: str, session: str | None = None, rid: int | None = 1) -> tuple[int, str, str]:
    """One raw JSON-RPC POST to LiteLLM's MCP endpoint: status, the Mcp-Session-Id answered, the body."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "lab", "version": "1"}}
    body = {"jsonrpc": "2.0", "method": method, **({"id": rid} if rid is not None else {})}
    body |= {"params": params} if method == "initialize" else {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    headers |= {"Accept": "application/json, text/event-stream"} | ({"Mcp-Session-Id": session} if session else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("mcp-session-id", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, "", error.read().decode()


def test_a_session_id_is_bound_to_its_caller(gateway: mcp_lab.Gateway, lab_gw: dict[str, Any]) -> None:
    """B's key with A's ``Mcp-Session-Id`` (raw JSON-RPC, as a client would replay it) is refused."""
    url, keys = gateway.proxy.url + "/mcp/", lab_gw["keys"]
    code, session, _ = rpc(url, keys["acme"], "initialize")
    assert code == 200, code
    assert session
    assert rpc(url, keys["acme"], "notifications/initialized", session, rid=None)[0] == 202
    code, _, own = rpc(url, keys["acme"], "tools/list", session, rid=2)
    assert code == 200, own
    assert "acme_tools-echo" in own
    code, _, stolen = rpc(url, keys["globex"], "tools/list", session, rid=2)
    assert code == 403, stolen
    assert "acme_tools" not in stolen
    assert f"session '{session}' owner mismatch" in gateway.proxy.log.read_text()


@pytest.mark.parametrize("path", ["/mcp", "/mcp/"])
def test_agents_reach_their_tools_through_the_tenant_gateway(
    gateway: mcp_lab.Gateway, lab_gw: dict[str, Any], tenant_gw: RunningGateway, path: str
) -> None:
    """What an agent does with LITELLM_MCP_URL: lists and calls its tenant's tools through nginx, is refused the
    other tenant's, and never sees LiteLLM's redirect (nginx sends /mcp to /mcp/ itself)."""
    url, keys = tenant_gw.url + path, lab_gw["keys"]
    a = mcp_lab.session(
        url, keys["acme"], [{"op": "list"}, call("acme_tools-echo", "via nginx"), call("globex_sse-wipe")]
    )
    assert a["error"] is None, a
    assert a["ops"][:2] == [
        {"tools": ["acme_tools-echo", "acme_tools-whoami"]},
        {"text": "acme_tools echoes: via nginx", "is_error": False},
    ]
    assert a["ops"][2]["is_error"]
    assert a["ops"][2]["text"].startswith("Error: " + LEAKING_REFUSAL)
    assert not [w for w in a["wire"] if w["status"] == 307], a["wire"]
    assert tokens_in(everything(a), gateway) == {"acme_tools"}  # the caller's own server only (LiteLLM's refusal)
    b = mcp_lab.session(url, keys["globex"], [{"op": "list"}])
    assert b["ops"][0] == {"tools": sorted(f"{s}-{t}" for s in ("globex_tools", "globex_sse") for t in TOOLS_B[s])}
    none = mcp_lab.session(url, keys["no_grant"], [{"op": "list"}])
    assert none["ops"] == [{"tools": []}]
    per_server = mcp_lab.session(tenant_gw.url + "/mcp/acme_tools", keys["acme"], [{"op": "list"}])
    assert per_server["ops"] == [], per_server  # no other MCP route is forwarded
    assert {w["status"] for w in per_server["wire"]} == {403}, per_server["wire"]


def test_the_tenant_gateway_drops_a_caller_sent_server_authorization(
    gateway: mcp_lab.Gateway, lab_gw: dict[str, Any], tenant_gw: RunningGateway
) -> None:
    """The answer to ``x-mcp-<server>-authorization`` (test_a_caller_sent_header_replaces_the_configured_token): through
    the tenant gateway the server receives its configured token only, and the call works."""
    acme = lab_gw["servers"]["acme_tools"]
    chosen, received, result = mcp_lab.override_probe(
        gateway.servers, acme, tenant_gw.url + "/mcp/", lab_gw["keys"]["acme"], "acme_tools-echo"
    )
    assert received
    assert set(received) == {f"Bearer {acme.token}"}
    assert chosen not in json.dumps(gateway.servers.requests())
    assert result["ops"] == [{"text": "acme_tools echoes: override", "is_error": False}]
