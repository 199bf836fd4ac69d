"""Tenant configuration keys are declared once (components/config/tenants.py, ``TENANT_KEY_SETS``): the parser reads
exactly those, every declared key lands in its dataclass, and docs/cluster.md#tenant-keys is their table (written by
tools/docs_tables.py)."""

from __future__ import annotations

import dataclasses

from components.config import (
    AgentConfig,
    AgentSchedule,
    EgressRules,
    McpServerConfig,
    TenantConfig,
    TenantLitellmConfig,
    TenantQuota,
)
from components.config.tenants import TENANT_KEY_SETS
from tests.configs import config_error, parse_config
from tools.docs_tables import CLUSTER_DOCS, ROW, SECTION, tenant_key_rows, with_tenant_keys

OBJECTS = {
    "tenants[]": TenantConfig,
    "tenants[].agents[]": AgentConfig,
    "tenants[].agents[].schedule": AgentSchedule,
    "tenants[].quota": TenantQuota,
    "tenants[].litellm": TenantLitellmConfig,
    "tenants[].egress": EgressRules,
    "tenants[].agents[].mcp": McpServerConfig,
}
MCP_AGENT = {"name": "m", "type": "mcp", "mcp": {"image": "example.com/tools:1.0"}}

SCHEDULE = {"start": "0 8 * * 1-5", "end": "0 19 * * 1-5"}


def test_the_docs_table_is_the_declarations() -> None:
    text = CLUSTER_DOCS.read_text()
    section = text.split(SECTION, 1)[1]
    rows = [line for line in section.splitlines() if line.startswith(ROW)]
    assert rows == tenant_key_rows(), (
        "docs/cluster.md#tenant-keys differs from the declarations: python -m tools.docs_tables"
    )
    assert with_tenant_keys(text) == text


def test_every_declared_key_is_a_field_and_every_field_a_key() -> None:
    for where, keys in TENANT_KEY_SETS:
        fields = {f.name for f in dataclasses.fields(OBJECTS[where])}
        assert fields == {k.attr for k in keys}, where


def test_an_undeclared_key_is_refused_with_the_nearest_declared_one() -> None:
    for where, keys in TENANT_KEY_SETS:
        agents = [{"name": "a", "type": "hermes", "schedule": dict(SCHEDULE)}, dict(MCP_AGENT, mcp={"image": "x:1"})]
        tenant: dict = {"name": "t", "agents": agents}
        section = {
            "tenants[]": tenant,
            "tenants[].agents[]": tenant["agents"][0],
            "tenants[].agents[].schedule": tenant["agents"][0]["schedule"],
            "tenants[].agents[].mcp": tenant["agents"][1]["mcp"],
        }
        place = section.get(where) or tenant.setdefault(where.split(".")[1], {})
        place[f"{keys[-1].name}x"] = 1
        assert f"unknown key; did you mean {keys[-1].name!r}?" in config_error(tenants=[tenant]), where


def test_defaults_are_the_declared_ones() -> None:
    agents = [{"name": "a", "type": "hermes"}, MCP_AGENT, {"name": "b", "type": "hermes", "schedule": SCHEDULE}]
    (tenant,) = parse_config(tenants=[{"name": "t", "agents": agents}]).tenants
    parsed = {
        "tenants[].agents[].mcp": tenant.agents[1].mcp,
        "tenants[]": tenant,
        "tenants[].agents[]": tenant.agents[0],
        "tenants[].agents[].schedule": tenant.agents[2].schedule,
        "tenants[].quota": tenant.quota,
        "tenants[].litellm": tenant.litellm,
        "tenants[].egress": tenant.egress,
    }
    for where, keys in TENANT_KEY_SETS:
        for key in keys:
            if isinstance(key.default, (str, int, float, bool)):
                assert getattr(parsed[where], key.attr) == key.default, f"{where}.{key.name}"
            elif key.default == []:
                assert getattr(parsed[where], key.attr) == (), f"{where}.{key.name}"
