"""Policy configuration as the CLI reconciles it: the pack's defaults, then the user's ``--policy-pack-config`` entries
(a level or an object), each policy's properties validated against its config schema."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from tools.analyzer.wire import ENFORCEMENT_LEVELS, LEVEL_NAMES


def reconcile_config(  # noqa: C901 - the CLI's config reconciliation rules, one by one
    policies_info: Iterable[analyzer_pb2.PolicyInfo], config: Mapping[str, Any]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Reconcile the user config with the pack's policies like the CLI does.

    Returns ``{policy: (enforcement level, properties)}`` for every policy. Raises
    ValueError for an invalid enforcement level, an unknown policy name, or properties
    that do not match the policy's config schema.
    """
    policies = {p.name: p for p in policies_info}
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    schemas: dict[str, dict[str, Any]] = {}
    for name, policy in policies.items():
        properties: dict[str, Any] = {}
        if policy.HasField("configSchema"):
            schema = json_format.MessageToDict(policy.configSchema)
            schema_properties = schema.get("properties", {})
            for key, spec in schema_properties.items():
                if isinstance(spec, Mapping) and "default" in spec:
                    properties[key] = spec["default"]
            schemas[name] = {"type": "object"}
            if schema_properties:
                schemas[name]["properties"] = schema_properties
            if schema.get("required"):
                schemas[name]["required"] = schema["required"]
        result[name] = (LEVEL_NAMES[policy.enforcementLevel], properties)

    user = {key: _parse_config_entry(key, value) for key, value in config.items()}
    all_level = user.pop("all", (None, {}))[0]
    if all_level is not None:
        result = {name: (all_level, props) for name, (_, props) in result.items()}
    for name, (level, properties) in user.items():
        if name not in result:
            known = ", ".join(sorted(result))
            raise ValueError(f"policy {name!r} is not in the pack (policies: {known})")
        current_level, current = result[name]
        result[name] = (level or current_level, {**current, **properties})

    validator_class = jsonschema.Draft7Validator
    for name, schema in schemas.items():
        errors = sorted(validator_class(schema).iter_errors(result[name][1]), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors)
            raise ValueError(f"invalid configuration for policy {name!r}: {problems}")
    return result


def _parse_config_entry(name: str, value: Any) -> tuple[str | None, dict[str, Any]]:
    """One entry of a --policy-pack-config file: a level string or an object."""
    if isinstance(value, str):
        return _check_level(name, value), {}
    if isinstance(value, Mapping):
        properties = dict(value)
        level = properties.pop("enforcementLevel", None)
        if level is not None and not isinstance(level, str):
            raise ValueError(f"policy {name!r}: enforcementLevel must be a string, got {level!r}")
        return (_check_level(name, level) if level is not None else None), properties
    raise ValueError(f"policy {name!r}: {value!r} is not a valid value; use a string or an object")


def _check_level(name: str, level: str) -> str:
    if level not in ENFORCEMENT_LEVELS:
        raise ValueError(
            f"policy {name!r}: {level!r} is not a valid enforcement level ({', '.join(ENFORCEMENT_LEVELS)})"
        )
    return level


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a --policy-pack-config JSON file (empty file: no config)."""
    text = Path(path).read_text()
    return json.loads(text) if text.strip() else {}
