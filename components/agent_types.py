"""Agent types: what the platform knows about each agent image, how it writes its config files, and its pod template.

Entrypoints seed the config files (kata-clh runs no initContainers) and secrets stay out of ConfigMaps;
components/agents.py turns the types into per-agent resources. Details: docs/cluster.md#sandbox-pods.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.config import ImagesConfig, NetworkConfig, TenantConfig, quantity_value
from components.podspec import (
    Container,
    SandboxPod,
    sandbox_pod_template,
    secret_env,
    volume_mount,
)

SEED_PATH = "/etc/agent-seed"  # the ConfigMap, read-only
LITELLM_KEY_ENV = "LITELLM_API_KEY"
SERVICE_ACCOUNT = "sandbox"
# Both spellings: Python (httpx, requests, aiohttp with trust_env), curl and pip read either; Node's
# NODE_USE_ENV_PROXY and undici's EnvHttpProxyAgent read both too.
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


@dataclass(frozen=True)
class AgentFiles:
    """What an agent type needs to write its config files."""

    tenant: str
    agent: str
    litellm_url: str  # http://<nlb>:4000
    models: tuple[str, ...]  # LiteLLM model names the tenant may use, first is the default
    # model name -> (context window, max output tokens), from bedrockModels; None where not configured
    limits: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def context_window(self, model: str) -> int | None:
        return self.limits.get(model, (None, None))[0]

    def max_output_tokens(self, model: str) -> int | None:
        return self.limits.get(model, (None, None))[1]


@dataclass(frozen=True)
class AgentType:
    name: str
    uid: int  # the image's runtime user (also its group)
    data_path: str  # persistent state: PVC when storageGiB > 0, else emptyDir
    token_env: str  # generated API server / gateway token
    ports: tuple[tuple[str, int], ...]
    entrypoint: str  # /bin/sh -c script: seed files, then exec the agent
    files: Callable[[AgentFiles], dict[str, str]]
    env: Callable[[str], list[dict[str, Any]]]  # memory limit -> plain environment
    probes: Mapping[str, Mapping[str, Any]]
    tmp_medium: str  # "" (node disk) or "Memory" (tmpfs)
    tmp_size: str


def _exec_probe(command: Sequence[str], period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "exec": {"command": list(command)},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _probes(check: Callable[[str], list[str]], live: str, ready: str) -> dict[str, dict[str, Any]]:
    # exec probes run inside the micro-VM through the Kata agent: no dependency on node-to-pod traffic,
    # which the deny-all ingress NetworkPolicy would otherwise have to allow.
    return {
        "startupProbe": _exec_probe(check(ready), period=10, failures=30),  # up to 5 minutes to boot
        "readinessProbe": _exec_probe(check(ready), period=10, failures=3),
        "livenessProbe": _exec_probe(check(live), period=30, failures=3, timeout=10),
    }


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
    uid=10000,
    data_path=HERMES_HOME,
    token_env="API_SERVER_KEY",  # required by Hermes when the API server listens beyond loopback
    ports=(("api", 8642), ("dashboard", 9119)),
    entrypoint=HERMES_ENTRYPOINT,
    files=hermes_files,
    env=hermes_env,
    probes=_probes(_hermes_check, live="/health", ready="/health"),
    # readOnlyRootFilesystem holds: the image keeps all mutable state under HERMES_HOME (its
    # HERMES_WRITE_SAFE_ROOT) and disables runtime installs into /opt/hermes; /tmp is an emptyDir on the
    # node disk because tools (pip builds, browsers) write large temporary files there.
    tmp_medium="",
    tmp_size="4Gi",
)


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
    # The image's `node` user. checkov CKV_K8S_40 prefers UIDs >= 10000 to avoid clashing with host users;
    # inside a Kata micro-VM the UID belongs to the guest kernel, not the node.
    uid=1000,
    data_path=OPENCLAW_HOME,
    token_env="OPENCLAW_GATEWAY_TOKEN",
    ports=(("gateway", 18789),),
    entrypoint=OPENCLAW_ENTRYPOINT,
    files=openclaw_files,
    env=openclaw_env,
    probes=_probes(_openclaw_check, live="/healthz", ready="/readyz"),
    tmp_medium="Memory",
    tmp_size="256Mi",
)

AGENT_TYPES: dict[str, AgentType] = {t.name: t for t in (HERMES, OPENCLAW)}


# ---------------------------------------------------------------------------------------------------
# Pod templates


def agent_image(images: ImagesConfig, agent_type: str) -> str:
    """The configured image. checkov CKV_K8S_43 asks for a digest: the stack config may give one
    (``repo:tag@sha256:...``); the defaults pin release tags."""
    return {"hermes": images.hermes, "openclaw": images.openclaw}[agent_type]


def agent_pod_template(
    *,
    tenant: TenantConfig,
    agent_name: str,
    image: str,
    network: NetworkConfig,
    workload: str,
    data: str,
    secret_names: Sequence[str],
    proxy_secret: str | None = None,
) -> dict[str, Any]:
    """The pod template of one agent. ``data`` is "pvc", "emptyDir" or "claimTemplate" (the agent-sandbox
    controller adds a volume named "data" from the SandboxTemplate's volumeClaimTemplates itself).
    ``proxy_secret`` names the tenant's egress proxy Secret (allowlist mode)."""
    agent = next(a for a in tenant.agents if a.name == agent_name)
    kind = AGENT_TYPES[agent.type]
    volumes: list[dict[str, Any]] = [
        {"name": "seed", "configMap": {"name": f"{agent.name}-config", "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"sizeLimit": kind.tmp_size, **({"medium": "Memory"} if kind.tmp_medium else {})}},
    ]
    if data == "pvc":
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{agent.name}-data"}})
    elif data == "emptyDir":
        volumes.append({"name": "data", "emptyDir": {}})
    elif data != "claimTemplate":
        raise ValueError(f"data must be pvc, emptyDir or claimTemplate, got {data!r}")
    # Secrets arrive as environment variables (checkov CKV_K8S_35 prefers files): both agents read their
    # LiteLLM key, token and bot tokens from the environment (${VAR} in their config files).
    container = Container(
        name=agent.type,
        image=image,
        command=("/bin/sh", "-c", kind.entrypoint),
        env=(
            *kind.env(agent.memory),
            *secret_env(secret_names, f"{agent.name}-secrets"),
            *(proxy_env(proxy_secret) if proxy_secret else ()),
        ),
        ports=kind.ports,
        volume_mounts=(
            volume_mount("data", kind.data_path),
            volume_mount("seed", SEED_PATH, read_only=True),
            volume_mount("tmp", "/tmp"),
        ),
        startup_probe=kind.probes["startupProbe"],
        readiness_probe=kind.probes["readinessProbe"],
        liveness_probe=kind.probes["livenessProbe"],
        working_dir=kind.data_path,
    )
    pod = SandboxPod(
        tenant=tenant.name,
        namespace=tenant.namespace,
        app=agent.type,
        agent=agent.name,
        workload=workload,
        runtime_class=agent.runtime_class,
        uid=kind.uid,
        cpu=agent.cpu,
        memory=agent.memory,
        service_account=SERVICE_ACCOUNT,
        container=container,
        volumes=tuple(volumes),
        vm_cpus=agent.vm_cpus,
        vm_memory_mib=agent.vm_memory_mib,
        dedicated_nodes=tenant.dedicated_nodes,
    )
    return sandbox_pod_template(pod, network)


def proxy_env(secret: str) -> list[dict[str, Any]]:
    """The egress proxy settings, from the tenant's Secret (the URL carries the tenant's proxy password).
    NODE_USE_ENV_PROXY=1 makes Node >= 24 (OpenClaw, and any npx tool an agent runs) honour them in
    node:http/https and fetch; Python's httpx/requests/aiohttp(trust_env) read them natively."""
    return [*secret_env(PROXY_ENV, secret), {"name": "NODE_USE_ENV_PROXY", "value": "1"}]


def proxy_secret_data(proxy_url: str, litellm_url: str) -> dict[str, str]:
    """HTTPS_PROXY/HTTP_PROXY/NO_PROXY (both spellings) for one tenant: everything goes through the proxy
    except loopback and the LiteLLM NLB, which the NetworkPolicy lets the pods reach directly."""
    host = urlsplit(litellm_url).hostname or ""
    bypass = ",".join(dict.fromkeys(("localhost", "127.0.0.1", "::1", *([host] if host else []))))
    values = {"HTTPS_PROXY": proxy_url, "HTTP_PROXY": proxy_url, "NO_PROXY": bypass}
    return {**values, **{k.lower(): v for k, v in values.items()}}
