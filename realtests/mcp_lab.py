"""Real MCP servers and real MCP clients for the LiteLLM lab (docs/mcp.md).

The ``mcp`` SDK (PyPI, pinned below) lives in its own venv under build/: LiteLLM 1.93 pins ``mcp<2`` in the
lab's venv, and the servers and the client are meant to be independent of the gateway's own copy. The servers
(``mcp_server.py``) and each client session (``mcp_client.py``) run as processes of that venv on 127.0.0.1; the
independent client is the TypeScript SDK from npm (``mcp_npm/``).

The gateway is configured with what the program renders (``rendered_registration``): the dev stack's tenants with the
lab's servers declared as ``mcp`` agents (``lab_tenants``), run through the real program; LiteLLM gets the rendered
``mcp_servers`` and ``general_settings``, each server's token in the variable the rendered values name, and the
tenants' key Jobs run as rendered (their team and key bodies carry the MCP grants). The one change: a server's
in-cluster host becomes 127.0.0.1, where the lab's server listens (there is no cluster DNS here).
"""

from __future__ import annotations

import copy
import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.contracts.gateway import MCP_TOKENS_SECRET, mcp_server_name
from realtests import lab
from tests.conftest import program_result
from tests.localhost import free_port, wait_for_port
from tools.program import ProgramResult

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
    agent: str  # its agents[] name in the tenant's config (LiteLLM's name is <tenant>_<agent>)
    transport: str  # "http" (streamable HTTP) or "sse"
    port: int
    token: str  # what the server expects as its bearer token (a Pulumi secret in the platform)
    allowed_tools: tuple[str, ...] | None = None
    allow_all_keys: bool = False

    @property
    def path(self) -> str:
        return "/sse" if self.transport == "sse" else "/mcp"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

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
        ToolServer("acme_tools", "acme", "tools", "http", free_port(), token("acme"), tools),
        ToolServer("globex_tools", "globex", "tools", "http", free_port(), token("globex"), tools),
        ToolServer("globex_sse", "globex", "sse", "sse", free_port(), token("globexsse")),
        ToolServer("open_tools", None, "open", "http", free_port(), token("open"), allow_all_keys=True),
    ]


@dataclass(frozen=True)
class Registration:
    """What the program rendered for the gateway (``rendered_registration``)."""

    mcp_servers: dict[str, dict[str, Any]]
    general_settings: dict[str, Any]
    env: dict[str, str]  # the gateway's environment (from a Secret in the cluster)
    teams: dict[str, dict[str, Any]]  # tenant -> /team/new and /team/update body (the key Job's TEAM_SPEC)
    keys: dict[str, dict[str, Any]]  # tenant -> /key/generate and /key/update body, without "key" (KEY_SPEC)


LAB_IMAGE = "example.com/lab/mcp-server:2.3.0"  # the lab runs the server as a process; the image is not pulled


def lab_tenants(servers: list[ToolServer]) -> list[dict[str, Any]]:
    """The dev stack's tenants (Pulumi.dev.yaml) with the lab's servers as their ``mcp`` agents, as a stack file
    declares them; a shared server (no tenant) is not the program's: the program refuses one open to all keys."""
    config = yaml.safe_load((lab.ROOT / "Pulumi.dev.yaml").read_text())["config"]
    tenants = config["agent-platform:tenants"]
    for tenant in tenants:
        tenant["agents"] = [a for a in tenant["agents"] if a["type"] != "mcp"]
        for server in (s for s in servers if s.tenant == tenant["name"]):
            assert mcp_server_name(server.tenant, server.agent) == server.name, server
            mcp: dict[str, Any] = {"image": LAB_IMAGE, "port": server.port, "path": server.path}
            mcp |= {"transport": server.transport}
            if server.allowed_tools:
                mcp["allowedTools"] = list(server.allowed_tools)
            tenant["agents"].append({"name": server.agent, "type": "mcp", "cpu": "250m", "memory": "256Mi", "mcp": mcp})
    return tenants


def lab_program(servers: list[ToolServer]) -> ProgramResult:
    """The real program for the dev stack with the lab's tenants."""
    return program_result("dev", {"agent-platform:tenants": lab_tenants(servers)})


def rendered_registration(result: ProgramResult, servers: list[ToolServer]) -> Registration:
    """What the program rendered for the servers: LiteLLM's ``mcp_servers`` (hosts rewritten to 127.0.0.1) and
    ``general_settings``, the tokens' environment as the rendered release reads it from its Secret, and the tenants'
    team and key bodies from their rendered key Jobs."""
    values = copy.deepcopy(result.named("kubernetes:helm.sh/v3:Release", "gateway-litellm").plain["values"])
    config = values["proxy_config"]
    mcp_servers = config["mcp_servers"]
    by_name = {s.name: s for s in servers}
    for name, entry in mcp_servers.items():
        host = entry["url"].split("//", 1)[1].split(":", 1)[0]
        assert host.endswith(".svc.cluster.local"), entry["url"]
        entry["url"] = entry["url"].replace(f"//{host}:", "//127.0.0.1:", 1)
        assert entry["url"] == by_name[name].url, (entry["url"], by_name[name])
    env = {
        item["name"]: by_name[item["valueFrom"]["secretKeyRef"]["key"]].token
        for item in values["extraEnvVars"]
        if item.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == MCP_TOKENS_SECRET
    }
    jobs = key_job_containers(result)
    return Registration(
        mcp_servers=mcp_servers,
        # The session's LiteLLM runs without the shared cache: the rendered settings but coordination_redis.
        general_settings={k: v for k, v in config["general_settings"].items() if k != "coordination_redis"},
        env=env,
        teams={tenant: json.loads(job_env(job, "TEAM_SPEC")) for tenant, job in jobs.items()},
        keys={tenant: json.loads(job_env(job, "KEY_SPEC")) for tenant, job in jobs.items()},
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


def key_job_containers(result: ProgramResult) -> dict[str, dict[str, Any]]:
    """tenant -> the container of the rendered key Job."""
    jobs = result.of_type("kubernetes:batch/v1:Job")
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
