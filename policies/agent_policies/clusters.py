"""Which cluster a stack resource goes to: stack policies match objects only within one cluster.

Two Kubernetes providers with the same known kubeconfig (and context), or whose kubeconfig comes
from the same resources, talk to the same cluster; otherwise each provider is its own cluster.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

from .common import get, string
from .workloads import PodTemplate, provider_namespace, provider_props

K8S_PROVIDER_PREFIX = "pulumi:providers:kubernetes"


class Clusters:
    """Which cluster (Kubernetes provider) a stack resource goes to, and that provider's default namespace."""

    __slots__ = ("_keys", "_providers")

    def __init__(self, resources: Iterable[PolicyResource]) -> None:
        self._providers = {r.urn: r for r in resources if r.resource_type.startswith(K8S_PROVIDER_PREFIX)}
        self._keys: dict[str, Hashable] = {}

    def provider(self, resource: PolicyResource) -> Any:
        """The provider resource in the stack (its inputs), else the one the engine attached."""
        ref = resource.provider
        return None if ref is None else self._providers.get(ref.urn, ref)

    def key(self, resource: PolicyResource) -> Hashable:
        ref = resource.provider
        if ref is None:
            return ""
        key = self._keys.get(ref.urn)
        if key is None:
            key = self._keys[ref.urn] = self._cluster_key(self._providers.get(ref.urn, ref))
        return key

    @staticmethod
    def _cluster_key(provider: Any) -> Hashable:
        props = provider_props(provider)
        try:
            context = string(get(props, "context"))
            kubeconfig = get(props, "kubeconfig")
            if isinstance(kubeconfig, str):
                return ("kubeconfig", kubeconfig, context)
            if isinstance(kubeconfig, Mapping):
                return ("kubeconfig", json.dumps(kubeconfig, sort_keys=True, default=str), context)
        except UnknownValueError:
            deps = getattr(provider, "property_dependencies", None) or {}
            sources = frozenset(dep.urn for dep in deps.get("kubeconfig", ()))
            if sources:
                return ("sources", sources)
        return ("provider", provider.urn)

    def namespace(self, resource: PolicyResource, template: PodTemplate) -> str | None:
        """The namespace the workload lands in; None when it is computed. Raises on an unknown provider default."""
        if template.who.namespace is not None:
            return template.who.namespace
        if template.who.namespace_unknown:
            return None
        return provider_namespace(provider_props(self.provider(resource)))
