"""Sandbox egress: a sandbox namespace denies egress by default and nothing in it opens the whole internet.

Sandboxes reach the internet only through the per-tenant egress proxy (domain allowlists); a NetworkPolicy
that allows 0.0.0.0/0 or ::/0 (or an egress rule without ``to``, which means every destination) would let a
prompt-injected agent bypass it. agent-sandbox SandboxTemplates carry the rules of the NetworkPolicy their
controller manages, so they are checked the same way.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import SANDBOX_LABEL, Unknowns, dig, get, items, mapping, schema, string
from .stack import KubeObject, Stack
from .workloads import sandbox_namespaces

NETWORK_POLICY = ("networking.k8s.io", "NetworkPolicy")
SANDBOX_TEMPLATE = ("extensions.agents.x-k8s.io", "SandboxTemplate")


def _selects_every_pod(selector: Any, partial: bool) -> bool:
    """``podSelector: {}`` (or absent, which the API treats the same): every pod of the namespace. A patch that
    leaves the selector alone does not show that it selects every pod."""
    if selector is None:
        return not partial
    selector = mapping(selector)
    if selector is None:
        return False
    return not mapping(get(selector, "matchLabels")) and not list(items(get(selector, "matchExpressions")))


def _is_default_deny_egress(props: Any, partial: bool) -> bool:
    spec = mapping(get(props, "spec"))
    if spec is None or not _selects_every_pod(get(spec, "podSelector"), partial):
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


FIX = (
    "sandboxes reach the internet only through the egress proxy (their tenant's domain allowlist); list the "
    "proxy and model gateway ports and the tenant's own cidrs instead."
)


def _check_network_policy(
    policy: KubeObject, stack: Stack, sandbox: list[KubeObject], protected: set[int], report_violation: ReportViolation
) -> None:
    """Open egress in what each resource sets; the merged object (declaration and patches) as a default deny."""
    first = policy.resources[0]
    owner = stack.owner(first)
    if owner is None or owner not in sandbox:
        if first.namespace_unknown is not None and any(
            open_egress(dig(r.props, "spec", "egress")) for r in policy.resources
        ):
            raise first.namespace_unknown  # open egress somewhere that cannot be told
        return
    if _is_default_deny_egress(policy.obj, policy.partial):
        protected.add(id(owner))
    for resource in policy.resources:
        for problem in open_egress(dig(resource.props, "spec", "egress")):
            report_violation(f"{resource.who}: {problem}; {FIX}", resource.urn)


def _check_sandbox_template(
    template: KubeObject, stack: Stack, sandbox: list[KubeObject], report_violation: ReportViolation
) -> None:
    """The NetworkPolicy the controller manages for a SandboxTemplate (declared, patched, or both: merged)."""
    reporter = template.last
    owner = stack.owner(reporter)
    if owner is None or owner not in sandbox:
        return
    spec = mapping(get(template.obj, "spec"))
    management = string(get(spec, "networkPolicyManagement"))
    if (management or "Managed") != "Managed":
        return  # Unmanaged: the namespace's own NetworkPolicies apply (checked above)
    policy = mapping(get(spec, "networkPolicy"))
    if policy is None or get(policy, "egress") is None:
        if template.partial:
            return  # patches that leave the managed policy as it is
        report_violation(
            f"{reporter.who}: spec.networkPolicy.egress is not set, so the controller's default lets sandboxes "
            f"reach the public internet; {FIX}",
            reporter.urn,
        )
        return
    for problem in open_egress(get(policy, "egress")):
        report_violation(f"{reporter.who}: spec.networkPolicy.{problem}; {FIX}", reporter.urn)


def _unplaced_default_deny(stack: Stack, namespace: KubeObject) -> UnknownValueError | None:
    """The unknown of a NetworkPolicy on the namespace's cluster whose namespace cannot be told: it may be the
    default deny, so a missing one is an unknown, not a violation."""
    cluster = namespace.resources[0].cluster
    for policy in stack.objects(NETWORK_POLICY):
        first = policy.resources[0]
        if first.namespace_unknown is not None and first.cluster == cluster:
            return first.namespace_unknown
    return None


def check_sandbox_egress(stack: Stack, report_violation: ReportViolation, unknowns: Unknowns) -> None:
    sandbox = sandbox_namespaces(stack, unknowns)
    if not sandbox:
        return
    protected: set[int] = set()
    for policy in stack.objects(NETWORK_POLICY):
        unknowns.run(_check_network_policy, policy, stack, sandbox, protected, report_violation)
    for template in stack.objects(SANDBOX_TEMPLATE):
        unknowns.run(_check_sandbox_template, template, stack, sandbox, report_violation)
    for namespace in sandbox:
        if id(namespace) in protected:
            continue
        unknown = _unplaced_default_deny(stack, namespace)
        if unknown is not None:
            unknowns.record(unknown)
            continue
        report_violation(
            f"Namespace {namespace.name}: add a default-deny egress NetworkPolicy (podSelector {{}}, policyTypes "
            f"including Egress) to this sandbox namespace ({SANDBOX_LABEL}=true); without one every pod may "
            "connect anywhere.",
            namespace.last.urn,
        )


def sandbox_egress_allowlist_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = Unknowns()
    check_sandbox_egress(Stack(args.resources), report_violation, unknowns)
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
