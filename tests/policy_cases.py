"""Builders and runners for the policy pack tests (tests/policies/).

Validators are called the way the SDK calls them: properties in wire form go through
pulumi-policy's own ``deserialize_properties`` and ``unknown_checking_proxy``, and the
config is the schema defaults overlaid by the test's overrides (what the CLI sends).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from tools.analyzer import UNKNOWN, AnalyzerResource, secret
from tools.policy_fixtures import (
    KINDS,
    PACK_DIR,
    PATCH_KINDS,
    VPC_DNS,
    Kind,
    aws_provider,
    k8s,
    k8s_provider,
    kata_spec,
    resource,
    urn,
    workload,
)

__all__ = [
    "KINDS",
    "PACK_DIR",
    "PATCH_KINDS",
    "UNKNOWN",
    "VPC_DNS",
    "Kind",
    "Outcome",
    "aws_provider",
    "defaults",
    "k8s",
    "k8s_provider",
    "kata_spec",
    "resource",
    "run_resource_policy",
    "run_stack_policy",
    "secret",
    "urn",
    "workload",
]


def defaults(policy: Policy) -> dict[str, Any]:
    """The config the CLI sends when the user configures nothing: the schema defaults."""
    schema = policy.config_schema
    if schema is None:
        return {}
    return {key: copy.deepcopy(spec["default"]) for key, spec in schema.properties.items() if "default" in spec}


@dataclass
class Outcome:
    """What a validator did: its violation messages, and the unknown value it stopped on."""

    messages: list[str] = field(default_factory=list)
    urns: list[str | None] = field(default_factory=list)
    unknown: UnknownValueError | None = None

    def __len__(self) -> int:
        return len(self.messages)

    def report(self, message: str, urn: str | None = None) -> None:
        assert isinstance(message, str)
        assert message
        self.messages.append(message)
        self.urns.append(urn)


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _props(properties: Mapping[str, Any]) -> Any:
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(properties))))


def _provider(provider_urn: str, provider_type: str, properties: Mapping[str, Any]) -> PolicyProviderResource:
    name = provider_urn.rsplit("::", 1)[-1]
    return PolicyProviderResource(
        provider_type or "pulumi:providers:kubernetes", _props(properties), provider_urn, name
    )


def run_resource_policy(
    policy: ResourceValidationPolicy,
    resource_type: str,
    properties: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    name: str = "hermes",
    provider: AnalyzerResource | None = None,
) -> Outcome:
    """Run a resource policy's validator on wire-form properties, as the SDK would."""
    outcome = Outcome()
    args = ResourceValidationArgs(
        resource_type,
        _props(properties),
        urn(resource_type, name),
        name,
        _options(),
        _provider(provider.urn, provider.type, provider.properties) if provider else None,
        {**defaults(policy), **(config or {})},
    )
    try:
        policy.validate(args, outcome.report)
    except UnknownValueError as error:
        outcome.unknown = error
    return outcome


def run_stack_policy(
    policy: StackValidationPolicy,
    resources: list[AnalyzerResource],
    config: Mapping[str, Any] | None = None,
) -> Outcome:
    """Run a stack policy's validator over resources, linked up the way the SDK links them."""
    by_urn: dict[str, PolicyResource] = {}
    for r in resources:
        provider = _provider(r.provider_urn, r.provider_type, r.provider_properties) if r.provider_urn else None
        by_urn[r.urn] = PolicyResource(r.type, _props(r.properties), r.urn, r.name, _options(), provider, None, [], {})
    for r in resources:
        policy_resource = by_urn[r.urn]
        policy_resource.parent = by_urn.get(r.parent)
        policy_resource.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
        policy_resource.property_dependencies = {
            key: [by_urn[d] for d in deps if d in by_urn] for key, deps in r.property_dependencies.items()
        }
    outcome = Outcome()
    args = StackValidationArgs(list(by_urn.values()), {**defaults(policy), **(config or {})})
    try:
        policy.validate(args, outcome.report)
    except UnknownValueError as error:
        outcome.unknown = error
    return outcome
