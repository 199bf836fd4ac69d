"""The model gateway's MCP servers (LiteLLM ``proxy_config.mcp_servers`` in a Helm release's values) stay closed.

LiteLLM 1.93 (measured, docs/mcp.md): a server with ``allow_all_keys: true`` is in every key's grant, and every refused
tool call returns and logs the caller's granted servers with their upstream tokens, so an open server's token reaches
every tenant; ``available_on_public_internet`` defaults to true; a ``stdio`` server (or one with a ``command``) runs
inside LiteLLM's own pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import (
    Unknowns,
    applies_to,
    config_strings,
    dig,
    get,
    is_true,
    mapping,
    schema,
    string,
    string_list_property,
)
from .placement import kind_of, resolve

HELM_INSTALLS = frozenset({("helm.sh", "Release"), ("helm.sh", "Chart")})
LITELLM_CONFIG_VALUES = ("proxy_config",)  # where the litellm-helm chart takes LiteLLM's config


def is_helm_install(resource_type: str) -> bool:
    return kind_of(resource_type) in HELM_INSTALLS


def server_problems(entry: Mapping[str, Any]) -> list[str]:
    """What is wrong with one ``mcp_servers`` entry, as fixes."""
    problems = []
    if is_true(get(entry, "allow_all_keys")):
        problems.append("set allow_all_keys: false and grant the server to its tenant's team and key only")
    if get(entry, "available_on_public_internet") is not False:
        problems.append("set available_on_public_internet: false (LiteLLM's default is true)")
    if string(get(entry, "transport")) == "stdio" or get(entry, "command") is not None:
        problems.append("serve it over http or sse from its own sandbox (stdio runs inside LiteLLM's pod)")
    return problems


def mcp_servers_closed_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_helm_install(args.resource_type):
        return
    resource = resolve(args)
    unknowns = Unknowns()
    for key in config_strings(args.get_config(), "litellmConfigValues", LITELLM_CONFIG_VALUES):
        unknowns.run(_check_config, resource, key, report_violation)
    unknowns.finish()


def _check_config(resource: Any, key: str, report_violation: ReportViolation) -> None:
    servers = mapping(dig(resource.props, "values", key, "mcp_servers"))
    if not servers:
        return
    who = f"Helm release {string(get(resource.props, 'name')) or resource.name}"
    unknowns = Unknowns()
    for name in sorted(servers):
        try:
            entry = mapping(get(servers, name))
            problems = server_problems(entry) if entry is not None else []
        except UnknownValueError as error:  # unknown during preview: check the other servers first
            unknowns.record(error)
            continue
        if problems:
            report_violation(f"{who}: values.{key}.mcp_servers.{name}: {'; '.join(problems)}.")
    unknowns.finish()


mcp_servers_closed = ResourceValidationPolicy(
    name="mcp-servers-closed",
    description=(
        "MCP servers registered in the model gateway (LiteLLM mcp_servers) are not open to all keys, not served to "
        "public addresses, and never stdio servers."
    ),
    validate=mcp_servers_closed_validator,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=schema(
        {
            "litellmConfigValues": string_list_property(
                "Chart values keys that hold LiteLLM's proxy config (litellm-helm: proxy_config).",
                LITELLM_CONFIG_VALUES,
            )
        }
    ),
)
applies_to(mcp_servers_closed, is_helm_install)
