"""The agent images, and the agent-sandbox release that runs warm pools."""

from __future__ import annotations

from dataclasses import dataclass

from components.config.reader import Reader, parse_semver


@dataclass(frozen=True)
class ImagesConfig:
    hermes: str
    openclaw: str
    agent_sandbox_version: str

    @classmethod
    def from_reader(cls, r: Reader) -> ImagesConfig:
        parse_semver("agentSandboxVersion", r.str("agentSandboxVersion"))
        return cls(r.image("hermesImage"), r.image("openclawImage"), r.str("agentSandboxVersion"))
