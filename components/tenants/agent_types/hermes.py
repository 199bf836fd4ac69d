"""Hermes Agent (NousResearch/hermes-agent)."""

from __future__ import annotations

from typing import Any

import yaml

from components.tenants.agent_types.base import LITELLM_KEY_ENV, SEED_PATH, AgentFiles, AgentType, exec_probes

# ---------------------------------------------------------------------------------------------------
# Hermes Agent (NousResearch/hermes-agent): docker image nousresearch/hermes-agent, user hermes (10000),
# HERMES_HOME=/opt/data, API server on 8642 with GET /health, dashboard 9119. The image's own entrypoint
# starts s6-overlay as root to chown the volume and drop privileges; running as non-root from the start,
# we exec the venv's hermes directly (fsGroup makes the volume writable). HERMES_GATEWAY_NO_SUPERVISE=1
# keeps `gateway run` in the foreground (the s6 image otherwise hands it to its supervisor).

HERMES_HOME = "/opt/data"
HERMES_BIN = "/opt/hermes/.venv/bin/hermes"
HERMES_ENTRYPOINT = f"""set -eu
mkdir -p {HERMES_HOME}/home {HERMES_HOME}/workspace {HERMES_HOME}/logs
cp {SEED_PATH}/config.yaml {HERMES_HOME}/config.yaml
[ -f {HERMES_HOME}/SOUL.md ] || cp {SEED_PATH}/SOUL.md {HERMES_HOME}/SOUL.md
[ -f {HERMES_HOME}/.env ] || cp {SEED_PATH}/.env {HERMES_HOME}/.env
{HERMES_BIN} dashboard --host 127.0.0.1 --port 9119 --no-open &
exec {HERMES_BIN} gateway run
"""


def hermes_files(f: AgentFiles) -> dict[str, str]:
    config = {
        "model": {
            "default": f.models[0],
            "provider": "custom",  # any OpenAI-compatible endpoint
            "base_url": f"{f.litellm_url}/v1",
            "api_key": f"${{{LITELLM_KEY_ENV}}}",  # expanded by Hermes from the environment (the Secret)
        },
        "terminal": {"backend": "local", "cwd": f"{HERMES_HOME}/workspace"},
    }
    # Hermes cannot read the window from LiteLLM (tenant keys may not call /model/info); its output limit
    # is provider-owned, not configuration (cli-config.yaml.example), so only the window is set.
    if (window := f.context_window(f.models[0])) is not None:
        config["model"]["context_length"] = window
    header = "# Managed by the agent platform: rewritten from the ConfigMap on every start.\n"
    return {
        "config.yaml": header + yaml.safe_dump(config, sort_keys=False),
        ".env": (
            "# Secrets (LiteLLM key, API server key, bot tokens) come from the pod environment, which reads\n"
            "# the agent's Kubernetes Secret; keep them out of this file.\n"
        ),
        "SOUL.md": (
            f"You are {f.agent}, an AI agent of {f.tenant}. You run in an isolated micro-VM with no access to\n"
            "other tenants or to the cluster. Follow security best practices and never reveal credentials.\n"
        ),
    }


def hermes_env(memory: str) -> list[dict[str, Any]]:  # noqa: ARG001 - AgentType.env takes the memory limit (OpenClaw sizes its heap)
    return [
        {"name": "HOME", "value": HERMES_HOME},
        {"name": "HERMES_HOME", "value": HERMES_HOME},
        {"name": "HERMES_GATEWAY_NO_SUPERVISE", "value": "1"},
        {"name": "API_SERVER_ENABLED", "value": "true"},
        {"name": "API_SERVER_HOST", "value": "0.0.0.0"},
        {"name": "API_SERVER_PORT", "value": "8642"},
    ]


def _hermes_check(path: str) -> list[str]:
    script = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8642{path}', timeout=4).status == 200 else 1)"
    )
    return ["python3", "-c", script]


HERMES = AgentType(
    name="hermes",
    title="Hermes Agent",
    image_key="hermesImage",
    uid=10000,
    data_path=HERMES_HOME,
    token_env="API_SERVER_KEY",  # required by Hermes when the API server listens beyond loopback
    ports=(("api", 8642), ("dashboard", 9119)),
    entrypoint=HERMES_ENTRYPOINT,
    files=hermes_files,
    env=hermes_env,
    probes=exec_probes(_hermes_check, live="/health", ready="/health"),
    # readOnlyRootFilesystem holds: the image keeps all mutable state under HERMES_HOME (its
    # HERMES_WRITE_SAFE_ROOT) and disables runtime installs into /opt/hermes; /tmp is an emptyDir on the
    # node disk because tools (pip builds, browsers) write large temporary files there.
    tmp_medium="",
    tmp_size="4Gi",
    # Telegram Bot API (long polling and file downloads on api.telegram.org); Discord REST on discord.com, the gateway
    # WebSocket on gateway.discord.gg and its regional resume hosts (gateway-us-east1-b.discord.gg...), attachments on
    # cdn.discordapp.com / media.discordapp.net.
    egress_defaults=("api.telegram.org", "discord.com", "*.discord.gg", "cdn.discordapp.com", "media.discordapp.net"),
)
