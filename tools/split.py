"""The platform/shard split under the mock engine: each side's stack references answered from the other side's offline
run, so ``make preview STACK=tenants/dev-a`` previews a shard against the platform stack it names, and the platform
stack ``dev-shards`` sees its shards' egress entries. docs/shards.md#offline-preview.

A shard reads the platform's real program outputs (the platform program runs first, in the same process); the
platform reads what its shards export, computed from their stack files with the functions the shard program exports
them with (passwords are placeholders, secret), since a shard's run needs the platform's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import TenantConfig
from components.config.reader import safe_load
from components.config.shards import PLATFORM_STACK_KEY, SHARD_PROJECT  # noqa: F401 (re-exported)
from components.egress.proxy import allowlists
from components.egress.squid import allowlists_text, htpasswd_line, htpasswd_text
from components.tenants.gateway_access import MCP_SERVERS, MCP_TOKENS, mcp_text, shard_mcp_entries
from components.tenants.shard import EGRESS_ALLOWLISTS, EGRESS_USERS
from tools.program import PLACEHOLDER, ROOT, ProgramResult, load_stack, stack_config
from tools.run_cache import cached_run

SHARDS = ROOT / "tenants"
PLATFORM_PROJECT = "agent-platform"


def project_name(root: Path) -> str:
    return str(safe_load((root / "Pulumi.yaml").read_text())["name"])


def split_stack(path: str) -> tuple[Path, str]:
    """``tenants/dev-a`` -> (the tenants project folder, ``dev-a``); ``dev`` -> (the platform project, ``dev``)."""
    folder, _, stack = path.rpartition("/")
    return (ROOT / folder if folder else ROOT), stack


def shard_stacks() -> list[str]:
    """Every shard stack with a stack file in tenants/."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in SHARDS.glob("Pulumi.*.yaml"))


def _stack_of(qualified: str, project: str) -> str:
    org_project, _, stack = qualified.rpartition("/")
    if org_project.rpartition("/")[2] != project:
        raise KeyError(f"{qualified}: offline, only stacks of project {project} in this repository are known")
    return stack


def shard_outputs(qualified: str, platform_stack: str) -> dict[str, Any]:
    """A shard's egress and MCP outputs as its program exports them, from its stack file (parsed against the
    platform's settings); the htpasswd lines hash a placeholder password, the MCP tokens are the placeholder."""
    stack = _stack_of(qualified, SHARD_PROJECT)
    written = safe_load((SHARDS / f"Pulumi.{stack}.yaml").read_text())["config"]
    owned = {
        key: written[key]
        for key in ("agent-platform:tenants", "agent-platform:tenantSecrets", "agent-platform:knownTenants")
        if key in written
    }
    owned.setdefault("agent-platform:knownTenants", [t["name"] for t in owned.get("agent-platform:tenants", [])])
    return shard_exports(load_stack(platform_stack, owned).tenants)


def shard_exports(tenants: Sequence[TenantConfig]) -> dict[str, Any]:
    """What a shard of ``tenants`` exports for the platform (a stack reference's answer), built with the functions
    the shard program exports them with; the htpasswd lines hash a placeholder password, the MCP tokens are the
    placeholder."""
    servers = shard_mcp_entries(tenants)
    return {
        "outputs": {
            EGRESS_ALLOWLISTS: allowlists_text(allowlists(tenants)),
            EGRESS_USERS: htpasswd_text({t.name: htpasswd_line(t.name, PLACEHOLDER) for t in tenants}),
            MCP_SERVERS: mcp_text(servers),
            MCP_TOKENS: mcp_text({t: {s: PLACEHOLDER for s in entries} for t, entries in servers.items()}),
        },
        "secretOutputNames": [EGRESS_USERS, MCP_TOKENS],
    }


_PLATFORM_RUNS: dict[str, ProgramResult] = {}


def platform_run(stack: str) -> ProgramResult:
    """The platform program's run for ``stack``: once per process, and from the run cache when the same sources made
    it before (tools/run_cache.py), as a real shard reads the platform's deployed outputs without running it."""
    if stack not in _PLATFORM_RUNS:
        _PLATFORM_RUNS[stack] = cached_run(stack)
    return _PLATFORM_RUNS[stack]


def platform_of(root: Path, stack: str, overrides: dict[str, Any] | None = None) -> ProgramResult | None:
    """For a shard stack, the run of the platform stack it names; None for a platform stack."""
    if project_name(root) != SHARD_PROJECT:
        return None
    values, _ = stack_config(stack, overrides, root)
    return platform_run(_stack_of(values.get(PLATFORM_STACK_KEY, ""), PLATFORM_PROJECT))


def platform_outputs(result: ProgramResult) -> dict[str, Any]:
    """A platform run's outputs as a stack reference reads them (secret values stay masked)."""
    return {"outputs": dict(result.outputs), "secretOutputNames": sorted(result.secret_outputs)}


def references(root: Path, stack: str, overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The stack references a run of ``stack`` in ``root`` makes, answered offline."""
    values, _ = stack_config(stack, overrides, root)
    platform = platform_of(root, stack, overrides)
    if platform is not None:
        return {values[PLATFORM_STACK_KEY]: platform_outputs(platform)}
    shards = safe_load(values.get("agent-platform:tenantShards", "[]"))
    return {qualified: shard_outputs(qualified, stack) for qualified in shards}


def policy_config(refs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """For a shard: the pack's facts from the other side of the split (the service CIDR) from the contract it reads;
    None (the pack's defaults) for a platform stack."""
    for ref in refs.values():
        contract = ref["outputs"].get("tenantContract")
        if isinstance(contract, dict):
            return {"kata-dns": {"serviceCidrs": [contract["settings"]["serviceCidr"]]}}
    return None
