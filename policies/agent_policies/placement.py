"""The resolution layer: where a resource lands, decided once for every rule.

Rules never read ``metadata.namespace``, a provider, a dependency or a ``*Patch`` kind themselves. They receive
:class:`Resolved` resources (resource policies: :func:`resolve`; stack policies: :class:`Stack`) that carry

- ``kind``: the Kubernetes ``(group, kind)`` a ``*Patch`` modifies (``patch`` says it is one);
- ``cluster``: the Kubernetes cluster (provider identity) or the AWS region and account;
- ``namespace``: ``metadata.namespace``, else the provider's default namespace, else ``default``; in a stack, an
  unknown one is followed through the dependencies of ``metadata`` (or of the provider's ``namespace``) to a
  Namespace of the same cluster;
- with a stack (stack.py): the effective object (a declaration and the patches of it, merged as server-side apply
  merges them), and relations (owner Namespace, a launch template or EC2NodeClass referenced by name or by
  dependency) matched in the same cluster or region only.

Details: policies/README.md#where-a-resource-lands.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pulumi_policy import PolicyResource, ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .common import get, items, string

if TYPE_CHECKING:
    from .stack import Stack

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


_UNSET: Any = object()


class Resolved:
    """A resource as every rule sees it: what it is, where it lands, what it declares.

    ``props`` is what the resource itself declares (for a patch, only the fields it sets); ``partial`` says that a
    field it omits is left as it is, hence no violation. ``namespace`` is None for cluster-scoped objects and
    other providers' resources, and when it cannot be told (``namespace_unknown`` then holds why). The cluster,
    the namespace and the object's name are worked out on first use: most validations never ask.
    """

    __slots__ = (
        "_cluster",
        "_display_kind",
        "_memo",
        "_namespace",
        "_namespace_source",
        "_namespace_unknown",
        "_object_name",
        "_provider",
        "_stack",
        "group",
        "kind",
        "name",
        "patch",
        "props",
        "resource",
        "resource_type",
        "urn",
    )

    def __init__(
        self,
        resource_type: str,
        urn: str,
        name: str,
        props: Any,
        provider: Any = None,
        stack: Stack | None = None,
        resource: PolicyResource | None = None,
    ) -> None:
        self.resource_type = resource_type
        self.urn = urn
        self.name = name
        self.props = props
        self.resource = resource
        self._provider = provider
        self._stack = stack
        found = kubernetes_kind(resource_type)
        self.group, self.kind, self.patch = found if found is not None else (None, None, False)
        self._display_kind = resource_type.rsplit(":", 1)[-1]
        self._cluster: Any = _UNSET
        self._namespace: Any = _UNSET
        self._namespace_source = ""
        self._namespace_unknown: UnknownValueError | None = None
        self._object_name: Any = _UNSET
        self._memo: dict[str, Any] | None = None

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
    def object_name(self) -> str | None:
        """``metadata.name`` of a Kubernetes object, ``name`` of an AWS resource; None when unset or unknown."""
        if self._object_name is _UNSET:
            try:
                if self.group is None:
                    self._object_name = string(get(self.props, "name"))
                else:
                    self._object_name = string(get(get(self.props, "metadata"), "name")) or None
            except UnknownValueError:
                self._object_name = None
        return self._object_name

    @property
    def cluster(self) -> Hashable:
        """The Kubernetes cluster (provider identity), the AWS region and account, or "" for anything else."""
        if self._cluster is _UNSET:
            if self.group is not None:
                self._cluster = kubernetes_cluster(self._provider)
            elif self.resource_type.startswith("aws:"):
                self._cluster = aws_location(self.props, self._provider)
            else:
                self._cluster = ""
        return self._cluster

    @property
    def namespace(self) -> str | None:
        self._place()
        return self._namespace

    @property
    def namespace_source(self) -> str:
        """ "metadata", "provider", "dependency" (only a stack can tell), or "" (none, or unknown)."""
        self._place()
        return self._namespace_source

    @property
    def namespace_unknown(self) -> UnknownValueError | None:
        self._place()
        return self._namespace_unknown

    def _place(self) -> None:
        """The namespace as far as the resource and its provider tell; a stack then follows an unknown one."""
        if self._namespace is not _UNSET:
            return
        self._namespace = None
        if not self.namespaced:
            return
        namespace, unknown = metadata_namespace(self.props)
        if namespace is not None:
            self._namespace, self._namespace_source = namespace, "metadata"
            return
        if unknown is None:
            try:
                self._namespace, self._namespace_source = provider_namespace(_props(self._provider)), "provider"
                return
            except UnknownValueError as error:
                unknown = error
        self._namespace_unknown = unknown
        if self._stack is not None:
            self._stack._follow_namespace(self)  # noqa: SLF001 - the stack completes what the resource cannot tell

    def memo(self, key: str, compute: Any) -> Any:
        """A value derived from this resource, computed once (``compute()``; an unknown is not kept)."""
        if self._memo is None:
            self._memo = {}
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

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


def metadata_namespace(props: Any) -> tuple[str | None, UnknownValueError | None]:
    """``metadata.namespace`` ("" counts as unset: the provider's default), or the unknown that hides it."""
    try:
        return string(get(get(props, "metadata"), "namespace")) or None, None
    except UnknownValueError as error:
        return None, error


def resolve(args: ResourceValidationArgs) -> Resolved:
    """The resource under validation, with the provider the engine attached (resource policies).

    A resource validator cannot see other resources: an unknown namespace stays unknown here (stack policies follow
    it through the dependencies).
    """
    return Resolved(args.resource_type, args.urn, args.name, args.props, args.provider)


# --- where AWS Fargate puts pods ------------------------------------------------------------------

FARGATE_PROFILE = "aws:eks/fargateProfile:FargateProfile"


def fargate_selectors(profile: Resolved) -> list[tuple[str, Mapping[str, Any]]]:
    """``(namespace, labels)`` of each selector of a FargateProfile: the pods it puts on Fargate are those of that
    namespace (wildcards ``*``/``?`` allowed by EKS) carrying all those labels. Raises UnknownValueError when a
    selector is unknown during preview."""
    found = []
    for selector in items(get(profile.props, "selectors")):
        labels = get(selector, "labels")
        found.append((string(get(selector, "namespace")) or "", labels if isinstance(labels, Mapping) else {}))
    return found
