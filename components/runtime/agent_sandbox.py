"""Warm pools: the kubernetes-sigs/agent-sandbox controller and its SandboxTemplate / SandboxWarmPool.

The controller is installed from its complete release manifest (``sandbox-with-extensions.yaml``) and runs on core
nodes. Details: docs/cluster.md#warm-pools-agent-sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts.namespaces import AGENT_SANDBOX_NAMESPACE

RELEASES = "https://github.com/kubernetes-sigs/agent-sandbox/releases/download"
EXTENSIONS_API = "extensions.agents.x-k8s.io/v1beta1"
NAMESPACE = AGENT_SANDBOX_NAMESPACE


MANIFEST = "sandbox-with-extensions.yaml"


def release_manifest_url(version: str) -> str:
    return f"{RELEASES}/{version}/{MANIFEST}"


@dataclass(frozen=True)
class AgentSandboxArgs:
    version: str  # release tag, e.g. v1.0.0
    depends_on: tuple[pulumi.Resource, ...] = ()  # the core node group the controller runs on


class AgentSandbox(pulumi.ComponentResource):
    """The agent-sandbox CRDs and controller (with extensions), installed once per cluster."""

    manifest: k8s.yaml.v2.ConfigFile

    def __init__(self, name: str, args: AgentSandboxArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:sandbox:AgentSandbox", name, None, opts)
        self.manifest = k8s.yaml.v2.ConfigFile(
            f"{name}-install",
            file=release_manifest_url(args.version),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"manifest": release_manifest_url(args.version)})


def sandbox_template_spec(
    pod_template: Mapping[str, Any],
    egress: Sequence[Mapping[str, Any]],
    volume_claim_templates: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """SandboxTemplate ``spec``. The network policy stays Managed (one shared NetworkPolicy per template)
    but with explicit rules: the controller's default egress allows the public internet only and blocks
    RFC1918, which would cut sandboxes off the VPC resolver and the LiteLLM NLB. No ingress rules means
    all ingress is denied. Claims may not inject environment variables or volume claims."""
    spec: dict[str, Any] = {
        "podTemplate": dict(pod_template),
        "networkPolicyManagement": "Managed",
        "networkPolicy": {"egress": [dict(rule) for rule in egress]},
        "envVarsInjectionPolicy": "Disallowed",
        "volumeClaimTemplatesPolicy": "Disallowed",
    }
    if volume_claim_templates:
        spec["volumeClaimTemplates"] = [dict(c) for c in volume_claim_templates]
    return spec


def sandbox_template(
    name: str,
    *,
    metadata: Mapping[str, Any],
    pod_template: Mapping[str, Any],
    egress: Sequence[Mapping[str, Any]],
    volume_claim_templates: Sequence[Mapping[str, Any]] = (),
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=EXTENSIONS_API,
        kind="SandboxTemplate",
        metadata=dict(metadata),
        spec=sandbox_template_spec(pod_template, egress, volume_claim_templates),
        opts=opts,
    )


def warm_pool(
    name: str,
    *,
    metadata: Mapping[str, Any],
    template_name: str,
    replicas: int,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """A pool of ``replicas`` pre-started sandboxes; Recreate replaces them when the template changes,
    so warm pods never keep a stale image or config."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=EXTENSIONS_API,
        kind="SandboxWarmPool",
        metadata=dict(metadata),
        spec={
            "replicas": replicas,
            "sandboxTemplateRef": {"name": template_name},
            "updateStrategy": {"type": "Recreate"},
        },
        opts=opts,
    )
