"""The agent types a tenant can run, one module each (hermes.py, openclaw.py); components/tenants/agent_pod.py
turns a type into a sandbox pod template. Entrypoints seed the config files (kata-clh runs no initContainers) and
secrets stay out of ConfigMaps. Details: docs/cluster.md#sandbox-pods.
"""

from __future__ import annotations

from components.tenants.agent_types.base import AgentType
from components.tenants.agent_types.hermes import HERMES
from components.tenants.agent_types.openclaw import OPENCLAW

AGENT_TYPES: dict[str, AgentType] = {t.name: t for t in (HERMES, OPENCLAW)}
