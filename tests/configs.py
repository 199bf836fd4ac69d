"""Typed config built from a few values (the rest are Pulumi.yaml defaults), for config tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config import ConfigError, PlatformConfig, project_schema
from components.config.versions import CATALOG_FILE, VERSION_KEYS

SECRETS = {"grafanaAdminPassword": "pw"}
MODELS = [{"name": "claude", "modelId": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}]


def parse_config(**values: Any) -> PlatformConfig:
    """``PlatformConfig`` of the dev stack from namespace-less keys, with the required secrets and a model."""
    return PlatformConfig.from_dict("dev", "us-east-1", {**SECRETS, "bedrockModels": MODELS, **values})


def config_error(**values: Any) -> str:
    """The one-line ``ConfigError`` message ``parse_config(**values)`` fails with."""
    with pytest.raises(ConfigError) as info:
        parse_config(**values)
    return str(info.value)


def default(key: str) -> Any:
    """The Pulumi.yaml default of ``agent-platform:<key>`` (image pins move; the tests follow them)."""
    return project_schema()[key]["default"]


def other_vendored(key: str) -> str:
    """A version of chart key ``key`` other than its default that ../shared vendors for every chart it sets (the
    calling test is skipped when the catalog is absent or vendors no other)."""
    charts = json.loads(CATALOG_FILE.read_text())["charts"] if CATALOG_FILE.is_file() else None
    if charts is None:
        pytest.skip(f"{CATALOG_FILE} not found")
    vendored = [set((charts.get(ref) or {}).get("vendored") or {}) for ref in VERSION_KEYS[key]]
    others = sorted(set.intersection(*vendored) - {str(default(key))})
    if not others:
        pytest.skip(f"../shared vendors no other {key} than the default")
    return others[-1]
