"""The stack half of the resolution layer (placement.py): a stack validation's resources, resolved on demand.

Objects are merged with their server-side-apply patches (``KubeObject``), namespaced objects find the Namespace they
land in (``Stack.owner``), and references by name or dependency are matched in the same cluster or region only
(``Stack.reference``). Details: policies/README.md#where-a-resource-lands.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

from .placement import (
    NAMESPACE,
    PROVIDER_PREFIX,
    UNKNOWN_STRING,
    KindKey,
    Resolved,
    UnknownPlace,
    kind_of,
    kubernetes_kind,
    metadata_namespace,
)


class Overlay(Mapping[str, Any]):
    """Mappings applied in order, as server-side apply merges them: maps merge key by key, anything else (lists
    included) is replaced by the later value. Values are read lazily, so an unknown raises only when read."""

    __slots__ = ("_layers",)

    def __init__(self, layers: Sequence[Any]) -> None:
        self._layers = [layer for layer in layers if isinstance(layer, Mapping)]

    def __getitem__(self, key: str) -> Any:
        maps: list[Any] = []
        for layer in reversed(self._layers):
            try:
                value = layer[key]
            except KeyError:
                continue
            if isinstance(value, Mapping):
                maps.append(value)
                continue
            if maps:
                break
            return value
        if not maps:
            raise KeyError(key)
        return maps[0] if len(maps) == 1 else Overlay(maps[::-1])

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for layer in self._layers:
            seen.update(dict.fromkeys(layer))
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class KubeObject:
    """One Kubernetes object of the stack: its declaration and the patches of it (same cluster, group, kind,
    namespace and name), and the object they amount to (``obj``)."""

    __slots__ = ("_obj", "resources")

    def __init__(self, first: Resolved) -> None:
        self.resources: list[Resolved] = [first]
        self._obj: Any = None

    def add(self, resolved: Resolved) -> None:
        if resolved.patch:
            self.resources.append(resolved)
        else:
            self.resources.insert(sum(1 for r in self.resources if not r.patch), resolved)
        self._obj = None

    @property
    def obj(self) -> Any:
        if self._obj is None:
            layers = [r.props for r in self.resources]
            self._obj = layers[0] if len(layers) == 1 else Overlay(layers)
        return self._obj

    @property
    def partial(self) -> bool:
        """Only patches: fields none of them set are as the cluster has them (unknown here)."""
        return all(r.patch for r in self.resources)

    @property
    def declaration(self) -> Resolved | None:
        return next((r for r in self.resources if not r.patch), None)

    @property
    def last(self) -> Resolved:
        """The resource a violation of the merged object is reported on: the last patch, else the declaration."""
        return self.resources[-1]

    @property
    def name(self) -> str:
        return self.resources[0].display_name

    def __repr__(self) -> str:
        return f"KubeObject({[r.who for r in self.resources]})"


def dependencies_of(resource: PolicyResource, prop: str) -> Sequence[PolicyResource]:
    """The resources ``prop`` of ``resource`` depends on (how a computed reference is followed).

    When the engine sent no per-property dependencies at all, every dependency of the resource counts.
    """
    deps = resource.property_dependencies.get(prop)
    if deps is None and not resource.property_dependencies:
        deps = resource.dependencies
    return deps or ()


class Stack:
    """The resources of one stack validation, resolved on demand (each stack policy call builds one).

    Indexes are built the first time a rule asks, so a rule that needs only NodePools pays for nothing else.
    """

    def __init__(self, resources: Sequence[PolicyResource]) -> None:
        self.resources = resources
        self._kinds: dict[KindKey, list[PolicyResource]] | None = None
        self._types: dict[str, list[PolicyResource]] = {}
        self._providers: dict[str, PolicyResource] = {}
        self._resolved: dict[str, Resolved] = {}
        self._objects: dict[KindKey, dict[Hashable, KubeObject]] = {}
        self._object_of: dict[str, KubeObject] = {}
        self._owners: dict[str, KubeObject] = {}  # owner Namespaces found by dependency
        self._by_name: dict[KindKey | str, dict[str, list[Resolved]]] = {}

    # --- indexes

    def _index(self) -> dict[KindKey, list[PolicyResource]]:
        if self._kinds is None:
            kinds: dict[KindKey, list[PolicyResource]] = {}
            for resource in self.resources:
                resource_type = resource.resource_type
                found = kubernetes_kind(resource_type)
                if found is not None:
                    kinds.setdefault((found[0], found[1]), []).append(resource)
                else:
                    self._types.setdefault(resource_type, []).append(resource)
                    if resource_type.startswith(PROVIDER_PREFIX):
                        self._providers[resource.urn] = resource
            self._kinds = kinds
        return self._kinds

    def of_kind(self, kind: KindKey) -> list[Resolved]:
        """Every resource of a Kubernetes kind, its patches included, in stack order."""
        return [self.resolve(r) for r in self._index().get(kind, ())]

    def of_kinds(self, kinds: frozenset[KindKey]) -> Iterator[Resolved]:
        """Every resource of these Kubernetes kinds, patches included, in stack order."""
        self._index()
        for resource in self.resources:
            if kind_of(resource.resource_type) in kinds:
                yield self.resolve(resource)

    def of_type(self, resource_type: str) -> list[Resolved]:
        """Every resource of a non-Kubernetes type (an AWS type token)."""
        self._index()
        return [self.resolve(r) for r in self._types.get(resource_type, ())]

    def has_kind(self, kind: KindKey) -> bool:
        return bool(self._index().get(kind))

    # --- resolution

    def _provider(self, resource: PolicyResource) -> Any:
        """The provider resource in the stack (its inputs and dependencies), else the one the engine attached."""
        ref = resource.provider
        if ref is None:
            return None
        self._index()
        return self._providers.get(ref.urn, ref)

    def resolve(self, resource: PolicyResource) -> Resolved:
        found = self._resolved.get(resource.urn)
        if found is None:
            provider = self._provider(resource)
            found = Resolved(
                resource.resource_type, resource.urn, resource.name, resource.props, provider, self, resource
            )
            self._resolved[resource.urn] = found
        return found

    def _follow_namespace(self, resolved: Resolved) -> None:
        """An unknown namespace computed from a Namespace of the stack: found through the dependencies of
        ``metadata`` (or of the provider's ``namespace`` input), on the resource's own cluster."""
        resource = resolved.resource
        if resource is None:
            return
        if metadata_namespace(resolved.props)[1] is not None:
            deps: Sequence[Any] = dependencies_of(resource, "metadata")
        else:
            provider = resolved._provider  # noqa: SLF001 - the provider resource of the stack, with its dependencies
            deps = (getattr(provider, "property_dependencies", None) or {}).get("namespace") or ()
        for dep in deps:
            if kind_of(dep.resource_type) != NAMESPACE:
                continue
            namespace = self.resolve(dep)
            same_cluster = namespace.cluster == resolved.cluster
            if not same_cluster and self._named(NAMESPACE, resolved.cluster, namespace.object_name) is None:
                continue  # a Namespace of another cluster, and none of that name here
            if same_cluster:
                self._owners[resolved.urn] = self.object(namespace)  # its owner, even when its name is computed
            if namespace.object_name is None:
                # The owner is known, its name is not: rules that judge the name still get an unknown.
                resolved._namespace_unknown = UnknownValueError(UNKNOWN_STRING, [namespace.name, "metadata", "name"])  # noqa: SLF001
                return
            resolved._namespace, resolved._namespace_source = namespace.object_name, "dependency"  # noqa: SLF001
            resolved._namespace_unknown = None  # noqa: SLF001
            return

    # --- objects (declarations and patches merged)

    def _key(self, resolved: Resolved) -> Hashable:
        if resolved.object_name is None or (resolved.namespaced and resolved.namespace is None):
            return ("urn", resolved.urn)
        return (resolved.cluster, resolved.namespace or "", resolved.object_name)

    def objects(self, kind: KindKey) -> list[KubeObject]:
        """The objects of a kind: each declaration with its patches, or patches alone (``partial``)."""
        found = self._objects.get(kind)
        if found is None:
            found = {}
            for resolved in self.of_kind(kind):
                key = self._key(resolved)
                existing = found.get(key)
                if existing is None:
                    found[key] = existing = KubeObject(resolved)
                else:
                    existing.add(resolved)
                self._object_of[resolved.urn] = existing
            self._objects[kind] = found
        return list(found.values())

    def object(self, resolved: Resolved) -> KubeObject:
        """The object a resource declares or patches."""
        if resolved.urn not in self._object_of:
            self.objects(resolved.kind_key)  # type: ignore[arg-type]
        return self._object_of[resolved.urn]

    def _named(self, kind: KindKey, cluster: Hashable, name: str | None, namespace: str | None = None) -> Any:
        if name is None:
            return None
        self.objects(kind)
        return self._objects[kind].get((cluster, namespace or "", name))

    def owner(self, resolved: Resolved) -> KubeObject | None:
        """The Namespace of the stack (same cluster) a namespaced object lands in; None when the stack declares no
        such Namespace or the namespace cannot be told (``resolved.namespace_unknown``)."""
        if not resolved.namespaced:
            return None
        namespace = resolved.namespace  # resolving it follows the dependencies, which finds the owner
        by_dependency = self._owners.get(resolved.urn)
        if by_dependency is not None:
            return by_dependency
        return self._named(NAMESPACE, resolved.cluster, namespace)

    # --- references

    def reference(
        self,
        source: Resolved,
        prop: str,
        kind: KindKey | str,
        name: str | None,
        unknown: UnknownValueError | None = None,
    ) -> Resolved | None:
        """The resource of ``kind`` (a Kubernetes kind or an AWS type) that property ``prop`` of ``source`` names.

        By ``name`` within the same cluster or region (a Kubernetes object's ``metadata.name``, an AWS resource's
        ``name``); when the name is not known, by the dependencies of ``prop`` (how an output reference is followed).
        None when neither names a resource of the stack; raises ``unknown`` (the reference's own unknown) when
        nothing settles it, or the place's unknown when the name matches but the cluster or region is unknown.
        """
        if name is not None:
            unsure: UnknownValueError | None = None
            for candidate in self._named_all(kind).get(name, ()):
                if isinstance(candidate.cluster, UnknownPlace) or isinstance(source.cluster, UnknownPlace):
                    place = candidate.cluster if isinstance(candidate.cluster, UnknownPlace) else source.cluster
                    unsure = unsure or place.error  # type: ignore[union-attr]
                elif candidate.cluster == source.cluster and (
                    not candidate.namespaced or candidate.namespace == source.namespace
                ):
                    return candidate
            if unsure is not None:
                raise unsure
            return None
        resource = source.resource
        linked = []
        if resource is not None:
            linked = [self.resolve(d) for d in dependencies_of(resource, prop) if self._is(d, kind)]
        if linked:
            same = [r for r in linked if r.cluster == source.cluster]
            return (same or linked)[0]
        if unknown is not None:
            raise unknown
        return None

    def _named_all(self, kind: KindKey | str) -> dict[str, list[Resolved]]:
        """The resources of a kind or type by object name (built once per stack validation)."""
        found = self._by_name.get(kind)
        if found is None:
            found = self._by_name[kind] = {}
            for candidate in self.of_type(kind) if isinstance(kind, str) else self.of_kind(kind):
                if candidate.object_name is not None:
                    found.setdefault(candidate.object_name, []).append(candidate)
        return found

    @staticmethod
    def _is(resource: PolicyResource, kind: KindKey | str) -> bool:
        return resource.resource_type == kind if isinstance(kind, str) else kind_of(resource.resource_type) == kind
