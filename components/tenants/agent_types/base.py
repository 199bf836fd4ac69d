"""What every agent type describes: its image's user and paths, the config files it writes, its environment and
probes (an :class:`AgentType`). Pulumi-free and config-free, so the configuration can read the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEED_PATH = "/etc/agent-seed"  # the ConfigMap, read-only
LITELLM_KEY_ENV = "LITELLM_API_KEY"


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


def exec_probes(check: Callable[[str], list[str]], live: str, ready: str) -> dict[str, dict[str, Any]]:
    # exec probes run inside the micro-VM through the Kata agent: no dependency on node-to-pod traffic,
    # which the deny-all ingress NetworkPolicy would otherwise have to allow.
    return {
        "startupProbe": _exec_probe(check(ready), period=10, failures=30),  # up to 5 minutes to boot
        "readinessProbe": _exec_probe(check(ready), period=10, failures=3),
        "livenessProbe": _exec_probe(check(live), period=30, failures=3, timeout=10),
    }
