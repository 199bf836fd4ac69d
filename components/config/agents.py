"""The agent images (one config key per agent type, from the registry in components/tenants/agent_types/), the
agent-sandbox release that runs warm pools and the KEDA chart that runs schedules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from components.config.reader import Reader, parse_semver
from components.tenants.agent_types import AGENT_TYPES


@dataclass(frozen=True)
class ImagesConfig:
    agents: Mapping[str, str]  # agent type -> its image (the type's image_key; types without one: each agent's own)
    agent_sandbox_version: str
    keda_version: str  # the scaler of agent schedules

    @classmethod
    def from_reader(cls, r: Reader) -> ImagesConfig:
        parse_semver("agentSandboxVersion", r.str("agentSandboxVersion"))
        parse_semver("kedaVersion", r.str("kedaVersion"))
        agents = {name: r.image(t.image_key) for name, t in AGENT_TYPES.items() if t.image_key}
        return cls(agents, r.str("agentSandboxVersion"), r.str("kedaVersion").lstrip("v"))
