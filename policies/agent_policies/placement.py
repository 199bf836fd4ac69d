"""The resolution layer: where a resource lands, decided once for every rule.

Rules never read ``metadata.namespace``, a provider, a dependency or a ``*Patch`` kind themselves. They receive
:class:`Resolved` resources (resource policies: :func:`resolve`; stack policies: :class:`Stack`) that carry

- ``kind``: the Kubernetes ``(group, kind)`` a ``*Patch`` modifies (``patch`` says it is one);
- ``cluster``: the Kubernetes cluster (provider identity) or the AWS region and account;
- ``namespace``: ``metadata.namespace``, else the provider's default namespace, else ``default``; in a stack, an
  unknown one is followed through the dependencies of ``metadata`` (or of the provider's ``namespace``) to a
  Namespace of the same cluster;
- the effective object (:class:`KubeObject`: a declaration and the patches of it in the stack, merged as
  server-side apply merges them), and relations (owner Namespace, a launch template or EC2NodeClass referenced by
  name or by dependency) matched in the same cluster or region only.

Details: policies/README.md#where-a-resource-lands.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .common import get, items, string

K8S_PROVIDER = "pulumi:providers:kubernetes"
AWS_PROVIDER = "pulumi:providers:aws"
PROVIDER_PREFIX = "pulumi:providers:"
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

KindKey = tuple[str, str]  # (API group, kind); "core" for the core group
NAMESPACE: KindKey = ("core", "Namespace")

# Kubernetes kinds without a namespace (built-ins and the custom resources the platform uses); any other kind is
# namespaced, as most custom resources are.
CLUSTER_SCOPED: frozenset[KindKey] = frozenset(
    {
        NAMESPACE,
        ("core", "Node"),
        ("core", "PersistentVolume"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("node.k8s.io", "RuntimeClass"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("networking.k8s.io", "IngressClass"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("karpenter.sh", "NodePool"),
        ("karpenter.sh", "NodeClaim"),
        ("karpenter.k8s.aws", "EC2NodeClass"),
    }
)


@functools.lru_cache(maxsize=1024)
def kubernetes_kind(resource_type: str) -> tuple[str, str, bool] | None:
    """``kubernetes:apps/v1:DeploymentPatch`` -> ``("apps", "Deployment", True)``; None if not a Kubernetes object."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    group = parts[1].rsplit("/", 1)[0] if "/" in parts[1] else parts[1]
    kind = parts[2]
    if kind.endswith("Patch") and len(kind) > len("Patch"):
        return group, kind[: -len("Patch")], True
    return group, kind, False


def kind_of(resource_type: str) -> KindKey | None:
    """The Kubernetes ``(group, kind)`` of a type token, a ``*Patch`` counting as the kind it patches."""
    found = kubernetes_kind(resource_type)
    return None if found is None else (found[0], found[1])


def of_kinds(kinds: frozenset[KindKey]) -> Any:
    """A type predicate for :func:`common.applies_to`: Kubernetes objects of these kinds, patches included."""
    return lambda resource_type: kind_of(resource_type) in kinds


# --- clusters and regions ---------------------------------------------------------------------


class UnknownPlace:
    """A cluster or region that cannot be known during preview: equal to nothing but itself."""

    __slots__ = ("error",)

    def __init__(self, error: UnknownValueError) -> None:
        self.error = error


def _props(provider: Any) -> Any:
    return None if provider is None else getattr(provider, "props", None)


def _dependency_urns(resource: Any, prop: str) -> frozenset[str]:
    deps = getattr(resource, "property_dependencies", None) or {}
    return frozenset(dep.urn for dep in deps.get(prop, ()))


def kubernetes_cluster(provider: Any) -> Hashable:
    """Providers with the same known kubeconfig (and context), or whose kubeconfig comes from the same resources
    (property dependencies, e.g. one EKS cluster), talk to the same cluster; otherwise each provider is its own."""
    if provider is None:
        return ""
    props = _props(provider)
    try:
        context = string(get(props, "context"))
        kubeconfig = get(props, "kubeconfig")
        if isinstance(kubeconfig, str):
            return ("kubeconfig", kubeconfig, context)
        if isinstance(kubeconfig, Mapping):
            return ("kubeconfig", json.dumps(_plain(kubeconfig), sort_keys=True, default=str), context)
    except UnknownValueError:
        sources = _dependency_urns(provider, "kubeconfig")
        if sources:
            return ("sources", sources)
    return ("provider", provider.urn)


def _plain(value: Any) -> Any:
    """A proxied tree as plain dicts and lists, for a stable key (raises UnknownValueError on an unknown)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(value[index]) for index in range(len(value))]
    return value


def aws_location(props: Any, provider: Any) -> Hashable:
    """Region and account of an AWS resource: its own ``region`` (pulumi-aws 7), else the provider's; the account
    from the provider's role (``assumeRoles``/``assumeRole``), ``allowedAccountIds`` or ``profile``."""
    try:
        region = string(get(props, "region"))
        provider_props = _props(provider)
        region = region or string(get(provider_props, "region")) or ""
        return ("aws", region, _aws_account(provider_props))
    except UnknownValueError as error:
        return UnknownPlace(error)


def _aws_account(props: Any) -> str:
    roles = list(items(get(props, "assumeRoles"))) or [get(props, "assumeRole")]
    for role in reversed(roles):  # the last role of a chain is the one resources are made with
        arn = string(get(role, "roleArn"))
        if arn and arn.count(":") >= 5:
            return arn.split(":")[4]
    allowed = [a for a in items(get(props, "allowedAccountIds")) if isinstance(a, str)]
    if len(allowed) == 1:
        return allowed[0]
    profile = string(get(props, "profile"))
    return f"profile:{profile}" if profile else ""


# --- the default namespace of a Kubernetes provider -------------------------------------------


def provider_namespace(props: Any) -> str:
    """The namespace a Kubernetes provider puts namespaced objects without ``metadata.namespace`` in.

    pulumi-kubernetes' precedence (provider ``namespace`` input docs): the provider's ``namespace`` input, then the
    namespace of the kubeconfig's active context (the ``context`` input, else ``current-context``), then
    ``default``. Raises UnknownValueError when the answer depends on a value unknown during preview.
    """
    namespace = string(get(props, "namespace"))
    if namespace:
        return namespace
    kubeconfig = get(props, "kubeconfig")
    if kubeconfig is None:
        return "default"
    context = string(get(props, "context"))
    if isinstance(kubeconfig, Mapping):
        return _kubeconfig_namespace_of(kubeconfig, context)
    return _kubeconfig_namespace(kubeconfig, context) if isinstance(kubeconfig, str) else "default"


@functools.lru_cache(maxsize=64)
def _kubeconfig_namespace(kubeconfig: str, context: str | None) -> str:
    """The active context's namespace of a kubeconfig given as JSON or YAML text (or a path to one)."""
    text = kubeconfig
    if "\n" not in text and not text.lstrip().startswith("{") and os.path.isfile(os.path.expanduser(text)):
        try:
            with open(os.path.expanduser(text), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            return "default"
    try:
        document = json.loads(text)
    except ValueError:
        try:
            import yaml  # PyYAML, a dependency of the pulumi SDK

            document = yaml.safe_load(text)
        except Exception:  # noqa: BLE001 (unparseable kubeconfig: the provider would fail, not deploy)
            return "default"
    return _kubeconfig_namespace_of(document, context) if isinstance(document, Mapping) else "default"


def _kubeconfig_namespace_of(document: Mapping[str, Any], context: str | None) -> str:
    name = context or string(get(document, "current-context"))
    for entry in items(get(document, "contexts")):
        if name is not None and get(entry, "name") == name:
            return string(get(get(entry, "context"), "namespace")) or "default"
    return "default"


# --- one resource, resolved -------------------------------------------------------------------


class Resolved:
    """A resource as every rule sees it: what it is, where it lands, what it declares.

    ``props`` is what the resource itself declares (for a patch, only the fields it sets); ``partial`` says that a
    field it omits is left as it is, hence no violation. ``namespace`` is None for cluster-scoped objects and
    other providers' resources, and when it cannot be told (``namespace_unknown`` then holds why).
    """

    __slots__ = (
        "_display_kind",
        "cluster",
        "group",
        "kind",
        "name",
        "namespace",
        "namespace_source",
        "namespace_unknown",
        "object_name",
        "patch",
        "props",
        "resource",
        "resource_type",
        "urn",
    )

    def __init__(
        self, resource_type: str, urn: str, name: str, props: Any, resource: PolicyResource | None = None
    ) -> None:
        self.resource_type = resource_type
        self.urn = urn
        self.name = name
        self.props = props
        self.resource = resource
        found = kubernetes_kind(resource_type)
        self.group, self.kind, self.patch = found if found is not None else (None, None, False)
        self._display_kind = resource_type.rsplit(":", 1)[-1]
        self.cluster: Hashable = ""
        self.namespace: str | None = None
        self.namespace_source = ""  # "metadata", "provider", "dependency" or "" (none or unknown)
        self.namespace_unknown: UnknownValueError | None = None
        self.object_name: str | None = None
        if self.group is None:
            try:
                self.object_name = string(get(props, "name"))
            except UnknownValueError:
                self.object_name = None
            return
        try:
            self.object_name = string(get(get(props, "metadata"), "name")) or None
        except UnknownValueError:
            self.object_name = None

    @property
    def kubernetes(self) -> bool:
        return self.group is not None

    @property
    def kind_key(self) -> KindKey | None:
        return None if self.group is None else (self.group, self.kind)  # type: ignore[return-value]

    @property
    def namespaced(self) -> bool:
        return self.group is not None and self.kind_key not in CLUSTER_SCOPED

    @property
    def partial(self) -> bool:
        """A patch: the fields it omits are left as they are (a rule reports only the fields it sets)."""
        return self.patch

    @property
    def display_name(self) -> str:
        """The object's name for messages: ``metadata.name`` (Kubernetes) or the resource name."""
        return self.object_name if self.group is not None and self.object_name else self.name

    @property
    def who(self) -> str:
        """``Kind namespace/name`` (the kind as declared, ``DeploymentPatch`` included) for messages."""
        if self.namespace:
            return f"{self._display_kind} {self.namespace}/{self.display_name}"
        return f"{self._display_kind} {self.display_name}"

    def __repr__(self) -> str:
        return f"Resolved({self.who}, cluster={self.cluster!r})"


def _metadata_namespace(props: Any) -> tuple[str | None, UnknownValueError | None]:
    """``metadata.namespace`` ("" counts as unset: the provider's default), or the unknown that hides it."""
    try:
        return string(get(get(props, "metadata"), "namespace")) or None, None
    except UnknownValueError as error:
        return None, error


def _place(resolved: Resolved, provider: Any) -> None:
    """Cluster and namespace as far as the resource and its provider tell (no other resource consulted)."""
    if resolved.group is None:
        if resolved.resource_type.startswith("aws:"):
            resolved.cluster = aws_location(resolved.props, provider)
        return
    resolved.cluster = kubernetes_cluster(provider)
    if not resolved.namespaced:
        return
    namespace, unknown = _metadata_namespace(resolved.props)
    if namespace is not None:
        resolved.namespace, resolved.namespace_source = namespace, "metadata"
        return
    if unknown is not None:
        resolved.namespace_unknown = unknown
        return
    try:
        resolved.namespace, resolved.namespace_source = provider_namespace(_props(provider)), "provider"
    except UnknownValueError as error:
        resolved.namespace_unknown = error


def resolve(args: ResourceValidationArgs) -> Resolved:
    """The resource under validation, resolved with the provider the engine attached (resource policies).

    A resource validator cannot see other resources: an unknown namespace stays unknown here (stack policies follow
    it through the dependencies). Call it after the type check, as it reads the properties.
    """
    resolved = Resolved(args.resource_type, args.urn, args.name, args.props)
    _place(resolved, args.provider)
    return resolved


# --- the objects of a stack -------------------------------------------------------------------


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
        if found is not None:
            return found
        resolved = Resolved(resource.resource_type, resource.urn, resource.name, resource.props, resource)
        self._resolved[resource.urn] = resolved
        provider = self._provider(resource)
        _place(resolved, provider)
        if resolved.namespaced and resolved.namespace is None:
            self._follow_namespace(resolved, resource, provider)
        return resolved

    def _follow_namespace(self, resolved: Resolved, resource: PolicyResource, provider: Any) -> None:
        """An unknown namespace computed from a Namespace of the stack: found through the dependencies of
        ``metadata`` (or of the provider's ``namespace`` input), on the resource's own cluster."""
        if resolved.namespace_unknown is None:
            return
        if _metadata_namespace(resolved.props)[1] is not None:
            deps: Sequence[Any] = dependencies_of(resource, "metadata")
        else:
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
                resolved.namespace_unknown = UnknownValueError(UNKNOWN_STRING, [namespace.name, "metadata", "name"])
                return
            resolved.namespace = namespace.object_name
            resolved.namespace_source = "dependency"
            resolved.namespace_unknown = None
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
        by_dependency = self._owners.get(resolved.urn)
        if by_dependency is not None:
            return by_dependency
        return self._named(NAMESPACE, resolved.cluster, resolved.namespace)

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
            for candidate in self._all(kind):
                if candidate.object_name != name:
                    continue
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

    def _all(self, kind: KindKey | str) -> list[Resolved]:
        return self.of_type(kind) if isinstance(kind, str) else self.of_kind(kind)

    @staticmethod
    def _is(resource: PolicyResource, kind: KindKey | str) -> bool:
        return resource.resource_type == kind if isinstance(kind, str) else kind_of(resource.resource_type) == kind
