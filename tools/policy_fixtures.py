"""Policy-pack resource builders shared by the tests (tests/policy_cases.py) and the benchmark (tools/bench_stack.py).

The workload kinds the pack checks, with where each keeps its pod spec, and the wire-form properties and
``AnalyzerResource`` of each, so that the tests and the benchmark feed the pack the same shapes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.contracts.labels import SANDBOX_LABEL
from tools.analyzer import AnalyzerResource
from tools.program import ROOT

PACK_DIR = ROOT / "policies"
PROJECT = "agent-platform"
STACK = "test"
VPC_DNS = "10.1.0.2"


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


def urn(resource_type: str, name: str, stack: str = STACK) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"


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
    object_labels: bool = False,
) -> dict[str, Any]:
    """Wire-form properties of a workload of ``kind`` with the given pod spec; the pod labels also go on the
    object itself when ``object_labels`` (as the program sets them), on a Pod always."""
    pod_labels: dict[str, Any] = {"app": name, **(labels or {})}
    if sandbox:
        pod_labels[SANDBOX_LABEL] = "true"
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if object_labels:
        metadata["labels"] = dict(pod_labels)
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
    """A resource of the test stack; ``provider`` (see :func:`k8s_provider`) is attached the way the CLI attaches it."""
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


def aws_provider(name: str, **inputs: Any) -> AnalyzerResource:
    """An AWS provider resource with the given inputs (``region``, ``assumeRoles``, ``allowedAccountIds``...)."""
    return resource("pulumi:providers:aws", name, inputs)
