"""OpenClaw (openclaw/openclaw)."""

from __future__ import annotations

import json
from typing import Any

from components.k8s.quantity import quantity_value
from components.tenants.agent_types.base import LITELLM_KEY_ENV, SEED_PATH, AgentFiles, AgentType, exec_probes

# ---------------------------------------------------------------------------------------------------
# OpenClaw (openclaw/openclaw): image ghcr.io/openclaw/openclaw, user node (1000), state in
# /home/node/.openclaw (openclaw.json), gateway on 18789, `--bind lan` to listen beyond loopback, token from
# OPENCLAW_GATEWAY_TOKEN, /healthz and /readyz. Upstream's Kubernetes manifest (scripts/k8s) runs it with
# readOnlyRootFilesystem and a sticky /tmp prepared by an init container; without init containers /tmp
# is a memory-backed emptyDir, whose tmpfs root has the usual 1777 mode the temp-root guard checks.

OPENCLAW_HOME = "/home/node/.openclaw"
OPENCLAW_ENTRYPOINT = f"""set -eu
mkdir -p {OPENCLAW_HOME}/workspace
cp {SEED_PATH}/openclaw.json {OPENCLAW_HOME}/openclaw.json
[ -f {OPENCLAW_HOME}/workspace/AGENTS.md ] || cp {SEED_PATH}/AGENTS.md {OPENCLAW_HOME}/workspace/AGENTS.md
exec node /app/dist/index.js gateway run --bind lan
"""


def openclaw_model(f: AgentFiles, model: str) -> dict[str, Any]:
    """``models.providers.litellm.models[]``: the window and output limit override OpenClaw's defaults."""
    entry: dict[str, Any] = {"id": model, "name": model}
    if (window := f.context_window(model)) is not None:
        entry["contextWindow"] = window
    if (output := f.max_output_tokens(model)) is not None:
        entry["maxTokens"] = output
    return entry


def openclaw_files(f: AgentFiles) -> dict[str, str]:
    config = {
        "gateway": {"mode": "local", "bind": "lan", "port": 18789, "auth": {"mode": "token"}},
        "agents": {"defaults": {"workspace": "~/.openclaw/workspace", "model": {"primary": f"litellm/{f.models[0]}"}}},
        "models": {
            "mode": "merge",
            "providers": {
                "litellm": {
                    "baseUrl": f"{f.litellm_url}/v1",
                    "apiKey": f"${{{LITELLM_KEY_ENV}}}",
                    "api": "openai-completions",
                    "models": [openclaw_model(f, m) for m in f.models],
                    # The NLB resolves to VPC addresses, which OpenClaw refuses without this opt-in.
                    "request": {"allowPrivateNetwork": True},
                }
            },
        },
    }
    return {
        "openclaw.json": json.dumps(config, indent=2) + "\n",
        "AGENTS.md": f"# {f.agent}\n\nYou are {f.agent}, an AI assistant of {f.tenant}, running in an isolated micro-VM.\n",
    }


def openclaw_env(memory: str) -> list[dict[str, Any]]:
    # V8 sizes its heap from the host, not the cgroup: pin it to 75% of the memory limit (upstream advice).
    heap_mib = int(quantity_value(memory) / 2**20 * 0.75)
    return [
        {"name": "HOME", "value": "/home/node"},
        {"name": "OPENCLAW_CONFIG_DIR", "value": OPENCLAW_HOME},
        {"name": "NODE_ENV", "value": "production"},
        {"name": "NODE_OPTIONS", "value": f"--max-old-space-size={heap_mib}"},
    ]


def _openclaw_check(path: str) -> list[str]:
    script = (
        f"require('http').get('http://127.0.0.1:18789{path}', r => process.exit(r.statusCode < 400 ? 0 : 1))"
        ".on('error', () => process.exit(1))"
    )
    return ["node", "-e", script]


OPENCLAW = AgentType(
    name="openclaw",
    title="OpenClaw",
    image_key="openclawImage",
    # The image's `node` user. checkov CKV_K8S_40 prefers UIDs >= 10000 to avoid clashing with host users;
    # inside a Kata micro-VM the UID belongs to the guest kernel, not the node.
    uid=1000,
    data_path=OPENCLAW_HOME,
    token_env="OPENCLAW_GATEWAY_TOKEN",
    ports=(("gateway", 18789),),
    entrypoint=OPENCLAW_ENTRYPOINT,
    files=openclaw_files,
    env=openclaw_env,
    probes=exec_probes(_openclaw_check, live="/healthz", ready="/readyz"),
    tmp_medium="Memory",
    tmp_size="256Mi",
    # Slack Web API on slack.com (apps.connections.open, chat.postMessage...), the Socket Mode WebSocket on
    # wss-primary.slack.com / wss-backup.slack.com and files on files.slack.com.
    egress_defaults=("slack.com", "*.slack.com"),
)
