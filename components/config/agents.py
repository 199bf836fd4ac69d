"""The agent images (one config key per agent type, from the registry in components/tenants/agent_types/), and the
agent-sandbox release that runs warm pools."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.config.reader import Reader, parse_semver
from components.tenants.agent_types import AGENT_TYPES


@dataclass(frozen=True)
class ImagesConfig:
    agents: Mapping[str, str]  # agent type -> its image (the type's image_key; types without one: each agent's own)
    agent_sandbox_version: str

    @classmethod
    def from_reader(cls, r: Reader) -> ImagesConfig:
        parse_semver("agentSandboxVersion", r.str("agentSandboxVersion"))
        agents = {name: r.image(t.image_key) for name, t in AGENT_TYPES.items() if t.image_key}
        return cls(agents, r.str("agentSandboxVersion"))
