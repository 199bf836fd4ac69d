"""The lab (real LiteLLM, PostgreSQL, Redis, MCP servers on 127.0.0.1) is prepared once for the whole session.

``gateway`` is one LiteLLM for the key-Job and MCP tests (a LiteLLM start is the lab's slowest step): the dev
stack's rendered proxy_config with the chart's default ``general_settings`` and the MCP lab's registration.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from realtests import lab, mcp_lab
from tests.conftest import program_result

GATEWAY_PORT = 4110
FIGURES: dict[str, Any] = {}  # lab timings, written to build/litellm-offline/logs/mcp.json


@pytest.fixture(scope="session")
def postgres() -> Iterator[None]:
    if not lab.SHARED.exists():
        pytest.skip(f"{lab.SHARED} is absent (the LiteLLM lab setup)")
    for tool in ("redis-server", "busybox", "unshare", "setpriv", "node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs what make test-litellm needs)")
    was_running = lab.prepare()
    yield
    if not was_running:
        lab.stop_postgres()


@pytest.fixture(scope="session")
def gateway(postgres: None) -> Iterator[mcp_lab.Gateway]:
    dev = program_result("dev")
    config = copy.deepcopy(
        dev.named("kubernetes:helm.sh/v3:Release", "gateway-litellm").plain["values"]["proxy_config"]
    )
    jobs = mcp_lab.key_job_containers()
    tool_servers = mcp_lab.lab_servers()
    registration = mcp_lab.gateway_mcp_registration(
        [s for s in tool_servers if not s.allow_all_keys],  # the open one: only its own test registers it
        {tenant: json.loads(mcp_lab.job_env(job, "TEAM_SPEC")) for tenant, job in jobs.items()},
        {tenant: json.loads(mcp_lab.job_env(job, "KEY_SPEC")) for tenant, job in jobs.items()},
    )
    # The chart's default general_settings (no cache) plus the MCP settings.
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
