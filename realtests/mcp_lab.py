"""Real MCP servers and real MCP clients for the LiteLLM lab (docs/mcp.md).

The ``mcp`` SDK (PyPI, pinned below) lives in its own venv under build/: LiteLLM 1.93 pins ``mcp<2`` in the
lab's venv, and the servers and the client are meant to be independent of the gateway's own copy. The servers
(``mcp_server.py``) and each client session (``mcp_client.py``) run as processes of that venv on 127.0.0.1; the
independent client is the TypeScript SDK from npm (``mcp_npm/``).

``gateway_mcp_registration`` is the one place that turns tenants' tool servers into what LiteLLM is configured
with (``mcp_servers`` entries, ``general_settings``, the tokens' environment) and what the tenants' key Jobs send
(team and key bodies with ``object_permission``): the program's rendered proxy_config and key Jobs replace it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtests import lab
from tests.conftest import program_result
from tests.localhost import free_port, wait_for_port

MCP_VERSION = "2.3.0"  # the mcp SDK on PyPI (servers and client); LiteLLM 1.93's own client is mcp 1.x
HERE = Path(__file__).resolve().parent
WORK = lab.ROOT / "build" / "mcp-lab"
PYTHON = WORK / "venv" / "bin" / "python"
NPM_DIR = WORK / "npm"


def ensure_venv() -> None:
    """build/mcp-lab/venv with mcp==MCP_VERSION (idempotent)."""
    probe = [str(PYTHON), "-c", f"import importlib.metadata as m; assert m.version('mcp') == '{MCP_VERSION}'"]
    if PYTHON.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    subprocess.run(["python3.11", "-m", "venv", str(WORK / "venv")], check=True)
    install = [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"mcp=={MCP_VERSION}"]
    subprocess.run(install, check=True, timeout=600, capture_output=True)


def ensure_npm_client() -> None:
    """build/mcp-lab/npm: mcp_npm/ (package.json and lock pin @modelcontextprotocol/sdk) installed with npm ci."""
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "client.mjs"):
        shutil.copyfile(HERE / "mcp_npm" / name, NPM_DIR / name)
    if not (NPM_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        install = ["npm", "ci", "--no-audit", "--no-fund"]
        done = subprocess.run(install, cwd=NPM_DIR, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr


@dataclass(frozen=True)
class ToolServer:
    """One MCP server as the gateway registers it. ``name`` is LiteLLM's server name: no ``-`` (its tool-name
    separator: tools are listed as ``<name>-<tool>``)."""

    name: str
    tenant: str | None  # the tenant whose team is granted it; None: nobody's (a shared server)
    transport: str  # "http" (streamable HTTP) or "sse"
    port: int
    token: str  # what the server expects as its bearer token (a Pulumi secret in the platform)
    allowed_tools: tuple[str, ...] | None = None
    allow_all_keys: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.transport == 'sse' else 'mcp'}"

    @property
    def token_env(self) -> str:
        """The gateway's environment variable holding the token: the ConfigMap only names it."""
        return f"MCP_TOKEN_{self.name.upper()}"


def lab_servers() -> list[ToolServer]:
    """Tenant A (acme): one streamable-HTTP server; tenant B (globex): one streamable-HTTP and one SSE server;
    one server nobody is granted, registered open to all keys only by the test that shows why not to. Fresh
    tokens and ports each session."""

    def token(name: str) -> str:
        return f"mcp-{name}-{secrets.token_hex(12)}"

    tools = ("echo", "whoami")  # "wipe" is left out
    return [
        ToolServer("acme_tools", "acme", "http", free_port(), token("acme"), tools),
        ToolServer("globex_tools", "globex", "http", free_port(), token("globex"), tools),
        ToolServer("globex_sse", "globex", "sse", free_port(), token("globexsse")),
        ToolServer("open_tools", None, "http", free_port(), token("open"), allow_all_keys=True),
    ]


@dataclass(frozen=True)
class Registration:
    mcp_servers: dict[str, dict[str, Any]]
    general_settings: dict[str, Any]
    env: dict[str, str]  # the gateway's environment (from a Secret in the cluster)
    teams: dict[str, dict[str, Any]]  # tenant -> /team/new and /team/update body
    keys: dict[str, dict[str, Any]]  # tenant -> /key/generate and /key/update body, without "key"


def gateway_mcp_registration(
    servers: list[ToolServer], team_specs: dict[str, dict[str, Any]], key_specs: dict[str, dict[str, Any]]
) -> Registration:
    """LiteLLM's ``mcp_servers`` entries and the tenants' team/key bodies granting each tenant its own servers.

    ``team_specs``/``key_specs`` are the tenants' TEAM_SPEC/KEY_SPEC of the rendered key Jobs (without MCP).
    The key carries its grant itself: with ``require_key_mcp_access_defined`` a key inherits nothing from its
    team, whose grant is the ceiling."""
    mcp_servers = {}
    for server in servers:
        entry: dict[str, Any] = {
            "url": server.url,
            "transport": server.transport,
            "auth_type": "bearer_token",
            "auth_value": f"os.environ/{server.token_env}",
            "allow_all_keys": server.allow_all_keys,
            "available_on_public_internet": False,
        }
        if server.allowed_tools is not None:
            entry["allowed_tools"] = list(server.allowed_tools)
        mcp_servers[server.name] = entry

    def granted(tenant: str) -> dict[str, Any]:
        return {"object_permission": {"mcp_servers": [s.name for s in servers if s.tenant == tenant]}}

    return Registration(
        mcp_servers=mcp_servers,
        general_settings={"require_key_mcp_access_defined": True},
        env={server.token_env: server.token for server in servers},
        teams={tenant: {**spec, **granted(tenant)} for tenant, spec in team_specs.items()},
        keys={tenant: {**spec, **granted(tenant)} for tenant, spec in key_specs.items()},
    )


def api_registration(server: ToolServer) -> dict[str, Any]:
    """The same server registered through LiteLLM's admin API (``POST /v1/mcp/server``, stored in its database)."""
    return {
        "server_name": server.name,
        "url": server.url,
        "transport": server.transport,
        "auth_type": "bearer_token",
        "credentials": {"auth_value": server.token},
        "allow_all_keys": server.allow_all_keys,
        "available_on_public_internet": False,
    }


class Servers:
    """The tool servers, all in one process of the mcp venv; every request's headers land in ``log``."""

    def __init__(self, servers: list[ToolServer]) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        self.log = WORK / "requests.jsonl"
        self.log.write_text("")
        listen = [{"name": s.name, "token": s.token, "transport": s.transport, "port": s.port} for s in servers]
        (WORK / "servers.json").write_text(json.dumps({"log": str(self.log), "servers": listen}))
        with open(WORK / "servers.log", "w") as out:
            self.proc = subprocess.Popen(
                [str(PYTHON), str(HERE / "mcp_server.py"), str(WORK / "servers.json")], stdout=out, stderr=out
            )
        for server in servers:
            wait_for_port(server.port, self.proc, 30)

    def requests(self) -> list[dict[str, Any]]:
        """Every request the servers received so far: server, method, path, authorized, headers."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        lab.stop(self.proc.pid)
        self.proc.wait(timeout=10)


def key_job_containers() -> dict[str, dict[str, Any]]:
    """tenant -> the container of the dev stack's rendered key Job."""
    jobs = program_result("dev").of_type("kubernetes:batch/v1:Job")
    prefix = "gateway-key-job-"
    return {
        job.name.removeprefix(prefix): job.inputs["spec"]["template"]["spec"]["containers"][0]
        for job in jobs
        if job.name.startswith(prefix)
    }


def job_env(container: dict[str, Any], name: str) -> Any:
    (value,) = [item["value"] for item in container["env"] if item["name"] == name]
    return value


@dataclass(frozen=True)
class Gateway:
    """The session's LiteLLM (realtests/conftest.py) and what it was configured with."""

    proxy: lab.Proxy
    servers: Servers
    tool_servers: list[ToolServer]
    registration: Registration
    jobs: dict[str, dict[str, Any]]  # tenant -> key Job container


def session(url: str, key: str | None, ops: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Any:
    """One MCP client session (``mcp_client.py``): the ops' results, a connection error, every response body."""
    request = {"url": url, "headers": ({"Authorization": f"Bearer {key}"} if key else {}) | (headers or {})}
    return _run([str(PYTHON), str(HERE / "mcp_client.py")], request | {"ops": ops})


def npm_session(url: str, key: str, ops: list[dict[str, Any]]) -> Any:
    """The same with the TypeScript SDK's client (``mcp_npm/client.mjs``): ops' results and a connection error."""
    request = {"url": url, "headers": {"Authorization": f"Bearer {key}"}, "ops": ops}
    return _run(["node", str(NPM_DIR / "client.mjs")], request)


def _run(command: list[str], request: dict[str, Any]) -> Any:
    done = subprocess.run(command, input=json.dumps(request), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def override_probe(
    servers: Servers, server: ToolServer, url: str, key: str, tool: str
) -> tuple[str, list[str], dict[str, Any]]:
    """For the tenant gateway (nginx) tests of the platform's mitigation: call ``tool`` through ``url`` (LiteLLM
    directly, or the tenant gateway in front of it) with a caller-chosen ``x-mcp-<server>-authorization``;
    returns that value, the Authorization values ``server`` received during the call and the call's result.
    Directly: the caller's value. Through a gateway that strips ``x-mcp-*`` request headers: only
    ``Bearer <server.token>``."""
    before = len(servers.requests())
    chosen = f"Bearer caller-chosen-{secrets.token_hex(6)}"
    call = [{"op": "call", "name": tool, "args": {"text": "override"}}]
    result = session(url, key, call, {f"x-mcp-{server.name}-authorization": chosen})
    received = [r for r in servers.requests()[before:] if r["server"] == server.name]
    return chosen, [value for r in received for name, value in r["headers"] if name == "authorization"], result
