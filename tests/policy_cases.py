"""Builders and runners for the policy pack tests (tests/test_policies.py).

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
from tools.program import ROOT

PACK_DIR = ROOT / "policies"
STACK, PROJECT = "test", "agent-platform"
SANDBOX_LABEL = "agent-platform.io/sandbox"
VPC_DNS = "10.1.0.2"

__all__ = [
    "KINDS",
    "PACK_DIR",
    "PATCH_KINDS",
    "UNKNOWN",
    "VPC_DNS",
    "Kind",
    "Outcome",
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


@dataclass(frozen=True)
class Kind:
    resource_type: str
    api_version: str
    kind: str
    spec_path: str  # where the pod spec lives, as the messages name it

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.api_version.rsplit('/', 1)[-1]}"


_TEMPLATE = "spec.template.spec"
_POD_TEMPLATE = "spec.podTemplate.spec"
KINDS: list[Kind] = [
    Kind("kubernetes:core/v1:Pod", "v1", "Pod", "spec"),
    Kind("kubernetes:apps/v1:Deployment", "apps/v1", "Deployment", _TEMPLATE),
    Kind("kubernetes:apps/v1:StatefulSet", "apps/v1", "StatefulSet", _TEMPLATE),
    Kind("kubernetes:apps/v1:DaemonSet", "apps/v1", "DaemonSet", _TEMPLATE),
    Kind("kubernetes:apps/v1:ReplicaSet", "apps/v1", "ReplicaSet", _TEMPLATE),
    Kind("kubernetes:batch/v1:Job", "batch/v1", "Job", _TEMPLATE),
    Kind("kubernetes:batch/v1:CronJob", "batch/v1", "CronJob", "spec.jobTemplate.spec.template.spec"),
    Kind(
        "kubernetes:agents.x-k8s.io/v1alpha1:Sandbox",
        "agents.x-k8s.io/v1alpha1",
        "Sandbox",
        _POD_TEMPLATE,
    ),
    Kind(
        "kubernetes:agents.x-k8s.io/v1beta1:Sandbox",
        "agents.x-k8s.io/v1beta1",
        "Sandbox",
        _POD_TEMPLATE,
    ),
    Kind(
        "kubernetes:extensions.agents.x-k8s.io/v1alpha1:SandboxTemplate",
        "extensions.agents.x-k8s.io/v1alpha1",
        "SandboxTemplate",
        _POD_TEMPLATE,
    ),
    Kind(
        "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate",
        "extensions.agents.x-k8s.io/v1beta1",
        "SandboxTemplate",
        _POD_TEMPLATE,
    ),
]


# Server-side-apply patches of every workload kind (pulumi-kubernetes ``<Kind>Patch`` types).
PATCH_KINDS: list[Kind] = [
    Kind(k.resource_type + "Patch", k.api_version, k.kind + "Patch", k.spec_path)
    for k in [
        *KINDS,
        Kind("kubernetes:core/v1:PodTemplate", "v1", "PodTemplate", "template.spec"),
        Kind("kubernetes:core/v1:ReplicationController", "v1", "ReplicationController", _TEMPLATE),
    ]
]


def urn(resource_type: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{resource_type}::{name}"


def kata_spec(**overrides: Any) -> dict[str, Any]:
    """A compliant Kata pod spec (kata-qemu, VPC DNS, no host access); an override of None removes the field."""
    spec: dict[str, Any] = {
        "runtimeClassName": "kata-qemu",
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": [VPC_DNS], "searches": ["svc.cluster.local"]},
        "containers": [
            {
                "name": "agent",
                "image": "nousresearch/hermes-agent:v1",
                "securityContext": {"runAsUser": 10000, "privileged": False},
            }
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    spec.update(copy.deepcopy(overrides))
    return {k: v for k, v in spec.items() if v is not None}


def workload(
    kind: Kind,
    pod_spec: Mapping[str, Any] | Any,
    *,
    sandbox: bool = True,
    namespace: str | None = "tenant-a",
    name: str = "hermes",
    labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Wire-form properties of a workload of ``kind`` with the given pod spec."""
    pod_labels: dict[str, Any] = {"app": name, **(labels or {})}
    if sandbox:
        pod_labels[SANDBOX_LABEL] = "true"
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    template = {"metadata": {"labels": pod_labels}, "spec": copy.deepcopy(pod_spec)}
    props: dict[str, Any] = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": metadata}
    base = kind.kind.removesuffix("Patch")
    if base == "Pod":
        metadata["labels"] = pod_labels
        props["spec"] = template["spec"]
    elif base == "PodTemplate":
        props["template"] = template
    elif base == "CronJob":
        props["spec"] = {"schedule": "@hourly", "jobTemplate": {"spec": {"template": template}}}
    elif base in ("Sandbox", "SandboxTemplate"):
        props["spec"] = {"podTemplate": template}
    else:
        props["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    return props


def k8s(api_version: str, kind: str, name: str, spec: Any = None, **metadata: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, **metadata},
    }
    if spec is not None:
        props["spec"] = spec
    return props


def resource(
    resource_type: str,
    name: str,
    properties: dict[str, Any],
    *,
    dependencies: list[str] | None = None,
    property_dependencies: dict[str, list[str]] | None = None,
    provider: AnalyzerResource | None = None,
) -> AnalyzerResource:
    """A resource; ``provider`` (see :func:`k8s_provider`) is attached the way the CLI attaches it."""
    return AnalyzerResource(
        type=resource_type,
        urn=urn(resource_type, name),
        name=name,
        properties=properties,
        dependencies=list(dependencies or []),
        property_dependencies=dict(property_dependencies or {}),
        provider_urn=provider.urn if provider else "",
        provider_type=provider.type if provider else "",
        provider_properties=dict(provider.properties) if provider else {},
    )


def k8s_provider(name: str, **inputs: Any) -> AnalyzerResource:
    """A Kubernetes provider resource with the given inputs (``namespace``, ``kubeconfig``, ``context``)."""
    return resource("pulumi:providers:kubernetes", name, inputs)


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
        assert isinstance(message, str) and message
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
