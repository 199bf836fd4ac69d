"""An agent's sandbox pod template: its type (agent_types/) in the one sandbox pod builder (components/k8s/podspec.py),
with the tenant's secrets and egress proxy settings. Details: docs/cluster.md#sandbox-pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.config import AgentConfig, ImagesConfig, NetworkConfig, TenantConfig
from components.k8s.podspec import Container, SandboxPod, plain_env, sandbox_pod_template, secret_env, volume_mount
from components.k8s.reach import no_proxy
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.base import NODE_PROXY_ENV, PROXY_ENV, SEED_PATH

SERVICE_ACCOUNT = "sandbox"


def agent_image(images: ImagesConfig, agent: AgentConfig) -> str:
    """The configured image (an MCP server's: its own). checkov CKV_K8S_43 asks for a digest: the stack config may
    give one (``repo:tag@sha256:...``); the defaults pin release tags."""
    return agent.mcp.image if agent.mcp is not None else images.agents[agent.type]


def agent_ports(agent: AgentConfig) -> tuple[tuple[str, int], ...]:
    """The type's ports; an MCP server's one port is its configured one."""
    kind = AGENT_TYPES[agent.type]
    return ((kind.service_port, agent.mcp.port),) if agent.mcp is not None else kind.ports


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
    seeded = not kind.mcp_server  # an MCP server's image carries its own configuration
    volumes: list[dict[str, Any]] = [
        *([{"name": "seed", "configMap": {"name": f"{agent.name}-config", "defaultMode": 0o444}}] if seeded else []),
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
        command=("/bin/sh", "-c", kind.entrypoint) if kind.entrypoint else (),
        args=agent.mcp.args if agent.mcp is not None else (),
        env=(
            *kind.env(agent.memory),
            *secret_env(secret_names, f"{agent.name}-secrets"),
            *(proxy_env(proxy_secret) if proxy_secret else ()),
        ),
        ports=agent_ports(agent),
        volume_mounts=(
            volume_mount("data", kind.data_path),
            *((volume_mount("seed", SEED_PATH, read_only=True),) if seeded else ()),
            volume_mount("tmp", "/tmp"),
        ),
        startup_probe=kind.probes.get("startupProbe"),
        readiness_probe=kind.probes.get("readinessProbe"),
        liveness_probe=kind.probes.get("livenessProbe"),
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
    """The egress proxy settings, from the tenant's Secret (the URL carries the tenant's proxy password), and Node's
    switch to honour them (agent_types/base.py)."""
    return [*secret_env(PROXY_ENV, secret), *plain_env(NODE_PROXY_ENV)]


def proxy_secret_data(proxy_url: str, direct: Sequence[str]) -> dict[str, str]:
    """HTTPS_PROXY/HTTP_PROXY/NO_PROXY (both spellings) for one tenant: everything goes through the proxy except
    loopback and the ``direct`` URLs, the platform services the NetworkPolicy lets the pods call (the tenant
    gateway's NLB)."""
    values = {"HTTPS_PROXY": proxy_url, "HTTP_PROXY": proxy_url, "NO_PROXY": no_proxy(direct)}
    return {**values, **{k.lower(): v for k, v in values.items()}}
