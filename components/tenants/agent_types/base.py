"""What every agent type describes (an :class:`AgentType`): its image and the config key that sets it, its user and
paths, the config files it writes, its environment and probes, the domains it needs, who may call it and how many a
tenant may run. Pulumi-free and config-free, so the configuration reads the registry: the image keys, the egress
defaults, the environment tenants may not set and the per-tenant limits all come from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.contracts.services import Pods

SEED_PATH = "/etc/agent-seed"  # the ConfigMap, read-only
LITELLM_KEY_ENV = "LITELLM_API_KEY"
# The egress proxy settings every sandbox gets in allowlist mode (its tenant's Secret), in both spellings: Python
# (httpx, requests, aiohttp with trust_env), curl and pip read either; Node's NODE_USE_ENV_PROXY and undici's
# EnvHttpProxyAgent read both too. NODE_USE_ENV_PROXY=1 makes Node >= 24 honour them in node:http/https and fetch.
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
NODE_PROXY_ENV = {"NODE_USE_ENV_PROXY": "1"}


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
    name: str  # the config's tenants[].agents[].type
    title: str  # how docs name it
    image_key: str  # the config key of its image (Pulumi.yaml holds the default)
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
    # Domains it needs in allowlist mode (its chat platforms; docs/egress.md cites the sources); "*.example.com"
    # means example.com and every subdomain. Tenants may drop them (typeDefaults: false).
    egress_defaults: tuple[str, ...] = ()
    # Who may open connections to it (components/contracts/services.py); nobody by default: agents only connect out.
    # A type with callers gets a ClusterIP Service on ``service_port`` (a name in ``ports``) and a NetworkPolicy
    # admitting exactly them.
    callers: tuple[Pods, ...] = ()
    service_port: str = ""
    max_per_tenant: int | None = None  # how many one tenant may run (None: no limit)

    @property
    def env_names(self) -> frozenset[str]:
        """Every variable the platform sets in its container: its plain environment and its generated token."""
        return frozenset({*(e["name"] for e in self.env("1Gi")), self.token_env})

    def __post_init__(self) -> None:
        if bool(self.callers) != bool(self.service_port) or (
            self.service_port and self.service_port not in dict(self.ports)
        ):
            raise ValueError(f"agent type {self.name}: callers need a service_port among its ports, and vice versa")


def _exec_probe(command: Sequence[str], period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "exec": {"command": list(command)},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def exec_probes(check: Callable[[str], list[str]], live: str, ready: str) -> dict[str, dict[str, Any]]:
    # exec probes run inside the micro-VM through the Kata agent: no dependency on node-to-pod traffic,
    # which the deny-all ingress NetworkPolicy would otherwise have to allow.
    return {
        "startupProbe": _exec_probe(check(ready), period=10, failures=30),  # up to 5 minutes to boot
        "readinessProbe": _exec_probe(check(ready), period=10, failures=3),
        "livenessProbe": _exec_probe(check(live), period=30, failures=3, timeout=10),
    }
