"""Sandbox egress: a sandbox namespace denies egress by default and nothing in it opens the whole internet.

Sandboxes reach the internet only through the per-tenant egress proxy (domain allowlists); a NetworkPolicy
that allows 0.0.0.0/0 or ::/0 (or an egress rule without ``to``, which means every destination) would let a
prompt-injected agent bypass it. agent-sandbox SandboxTemplates carry the rules of the NetworkPolicy their
controller manages, so they are checked the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import SANDBOX_LABEL, Unknowns, dig, get, items, mapping, schema, string
from .sandbox import sandbox_namespace_resources
from .workloads import k8s_group_kind

NETWORK_POLICY = ("networking.k8s.io", "NetworkPolicy")
SANDBOX_TEMPLATE = ("extensions.agents.x-k8s.io", "SandboxTemplate")


def _namespace_of(resource: PolicyResource, names: Mapping[str, str]) -> str | None:
    """The sandbox namespace (name) a namespaced object lives in: its metadata.namespace, or, when that is
    computed, the sandbox Namespace its metadata depends on. ``names`` maps sandbox Namespace URNs to names."""
    try:
        namespace = string(dig(resource.props, "metadata", "namespace"))
    except UnknownValueError:
        namespace = None
        deps = resource.property_dependencies.get("metadata") or resource.dependencies or ()
        for dep in deps:
            if dep.urn in names:
                return names[dep.urn]
    return namespace if namespace in names.values() else None


def _sandbox_namespaces(resources: Iterable[PolicyResource], unknowns: Unknowns) -> dict[str, str]:
    """URN -> name of every Namespace in the stack labelled as a sandbox namespace."""
    found: dict[str, str] = {}
    for resource in sandbox_namespace_resources(resources, unknowns):
        try:
            name = string(dig(resource.props, "metadata", "name"))
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        if name:
            found[resource.urn] = name
    return found


def _selects_every_pod(selector: Any) -> bool:
    """``podSelector: {}`` (or absent, which the API treats the same): every pod of the namespace."""
    if selector is None:
        return True
    selector = mapping(selector)
    if selector is None:
        return False
    return not mapping(get(selector, "matchLabels")) and not list(items(get(selector, "matchExpressions")))


def _is_default_deny_egress(props: Any) -> bool:
    spec = mapping(get(props, "spec"))
    if spec is None or not _selects_every_pod(get(spec, "podSelector")):
        return False
    return "Egress" in [string(t) for t in items(get(spec, "policyTypes"))]


def open_egress(rules: Any) -> list[str]:
    """Why the egress rules open the whole internet: a rule without ``to`` (any destination) or an ipBlock of
    prefix length 0 (0.0.0.0/0, ::/0, however it is spelled)."""
    problems: list[str] = []
    for index, rule in enumerate(items(rules)):
        peers = list(items(get(rule, "to")))
        if not peers:
            problems.append(f"egress[{index}] has no 'to', which allows every destination")
            continue
        for peer in peers:
            cidr = string(dig(peer, "ipBlock", "cidr"))
            if cidr is None:
                continue
            try:
                network = ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                continue
            if network.prefixlen == 0:
                problems.append(f"egress[{index}] allows {cidr}")
    return problems


def _who(kind: str, resource: PolicyResource, namespace: str) -> str:
    try:
        name = string(dig(resource.props, "metadata", "name")) or resource.name
    except UnknownValueError:
        name = resource.name
    return f"{kind} {namespace}/{name}"


FIX = (
    "sandboxes reach the internet only through the egress proxy (their tenant's domain allowlist); list the "
    "proxy and model gateway ports and the tenant's own cidrs instead."
)


def _check_resource(
    resource: PolicyResource, namespaces: Mapping[str, str], protected: set[str], report_violation: ReportViolation
) -> None:
    group_kind = k8s_group_kind(resource.resource_type)
    if group_kind not in (NETWORK_POLICY, SANDBOX_TEMPLATE):
        return
    namespace = _namespace_of(resource, namespaces)
    if group_kind == NETWORK_POLICY:
        if namespace is None:
            return
        if _is_default_deny_egress(resource.props):
            protected.add(namespace)
        for problem in open_egress(dig(resource.props, "spec", "egress")):
            report_violation(f"{_who('NetworkPolicy', resource, namespace)}: {problem}; {FIX}", resource.urn)
        return
    if namespace is None:
        return
    who = _who("SandboxTemplate", resource, namespace)
    spec = mapping(get(resource.props, "spec"))
    management = string(get(spec, "networkPolicyManagement")) or "Managed"
    if management != "Managed":
        return  # Unmanaged: the namespace's own NetworkPolicies apply (checked above)
    policy = mapping(get(spec, "networkPolicy"))
    if policy is None or get(policy, "egress") is None:
        report_violation(
            f"{who}: spec.networkPolicy.egress is not set, so the controller's default lets sandboxes reach the "
            f"public internet; {FIX}",
            resource.urn,
        )
        return
    for problem in open_egress(get(policy, "egress")):
        report_violation(f"{who}: spec.networkPolicy.{problem}; {FIX}", resource.urn)


def sandbox_egress_allowlist_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = Unknowns()
    namespaces = _sandbox_namespaces(args.resources, unknowns)
    protected: set[str] = set()
    for resource in args.resources:
        unknowns.run(_check_resource, resource, namespaces, protected, report_violation)
    for urn, name in namespaces.items():
        if name not in protected:
            report_violation(
                f"Namespace {name}: add a default-deny egress NetworkPolicy (podSelector {{}}, policyTypes "
                f"including Egress) to this sandbox namespace ({SANDBOX_LABEL}=true); without one every pod may "
                "connect anywhere.",
                urn,
            )
    unknowns.finish()


sandbox_egress_allowlist = StackValidationPolicy(
    name="sandbox-egress-allowlist",
    description=(
        "A sandbox namespace (label agent-platform.io/sandbox=true) has a default-deny egress NetworkPolicy, and "
        "no NetworkPolicy or SandboxTemplate in it allows egress to 0.0.0.0/0 or ::/0 (or to any destination)."
    ),
    validate=sandbox_egress_allowlist_validator,
    config_schema=schema({}),
)
