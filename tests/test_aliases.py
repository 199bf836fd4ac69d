"""Resources moved under a new parent keep their state: the URN each had before is one of its aliases now.

The engine resolves an alias spec to a URN with the same rule it names resources by (name and type default to the
resource's, the parent to its current one unless ``noParent``), and a child inherits an alias under each alias of
its parent. This module applies those rules to the alias specs the program sends; the URN rule is the one of the
engine that recorded the URNs (Pulumi's mock monitor qualifies a type with its parent's own type).
"""

from __future__ import annotations

import pytest

from tests.conftest import program_result
from tools.program import ProgramResult, load_stack

PROJECT = "agent-platform"

# The AWS Load Balancer Controller's resources as the stacks recorded them while the Gateway installed it (before
# the LoadBalancerController component), without the "urn:pulumi:<stack>::agent-platform::" prefix.
UNDER_THE_GATEWAY = (
    "agent-platform:gateway:Gateway$agent-platform:gateway:PodIdentity::gateway-lb-controller",
    "agent-platform:gateway:Gateway$kubernetes:core/v1:ServiceAccount::gateway-lb-controller-sa",
    "agent-platform:gateway:Gateway$kubernetes:helm.sh/v3:Release::gateway-lb-controller",
    "agent-platform:gateway:PodIdentity$aws:eks/podIdentityAssociation:PodIdentityAssociation::"
    "gateway-lb-controller-pod-identity",
    "agent-platform:gateway:PodIdentity$aws:iam/role:Role::gateway-lb-controller-role",
    "aws:iam/role:Role$aws:iam/rolePolicy:RolePolicy::gateway-lb-controller-policy",
)


def urn_under(stack: str, parent: str, type_: str, name: str) -> str:
    """The mock monitor's rule (pulumi/runtime/mocks.py make_urn): a stack-level type is qualified by the stack's."""
    if parent:
        type_ = parent.split("::")[2].split("$")[-1] + "$" + type_
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


def alias_urns(result: ProgramResult) -> dict[str, set[str]]:
    """Every resource's URN with the URNs its aliases resolve to (its own specs and those inherited)."""
    by_urn = {r.urn: r for r in result.registrations}
    found: dict[str, set[str]] = {}

    def resolve(urn: str) -> set[str]:
        if urn not in found:
            r = by_urn[urn]
            own = {a["urn"] for a in r.aliases if "urn" in a}
            for spec in (a["spec"] for a in r.aliases if "spec" in a):
                parent = "" if spec.get("noParent") else spec.get("parentUrn") or r.parent
                own.add(urn_under(result.stack, parent, spec.get("type") or r.type, spec.get("name") or r.name))
            if r.parent in by_urn:
                own |= {urn_under(result.stack, alias, r.type, r.name) for alias in resolve(r.parent)}
            found[urn] = own
        return found[urn]

    return {urn: resolve(urn) for urn in by_urn}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_lb_controller_keeps_the_urns_it_had_under_the_gateway(stack: str) -> None:
    aliases = alias_urns(program_result(stack))
    moved = 0
    for suffix in UNDER_THE_GATEWAY:
        old = f"urn:pulumi:{stack}::{PROJECT}::{suffix}"
        holders = [urn for urn, known in aliases.items() if urn == old or old in known]
        assert len(holders) == 1, f"{old}: held by {holders or 'nothing'}: the resource would be replaced"
        moved += holders[0] != old
    assert moved == 3  # the component's direct children moved; the others' URNs never changed


def test_aliases_are_not_claimed_twice_and_never_shadow_a_live_urn() -> None:
    aliases = alias_urns(program_result("dev"))
    others = {urn: known - {urn} for urn, known in aliases.items()}  # an alias equal to the URN itself is a no-op
    claimed = [alias for known in others.values() for alias in known]
    assert len(claimed) == len(set(claimed))
    assert not set(claimed) & set(aliases)


# Tenants' gateway access as the stacks recorded it while the Gateway minted it (before
# components/tenants/gateway_access.py), per tenant ({t}) and MCP server ({t}-{a}); same prefix omitted as above.
GATEWAY = "agent-platform:gateway:Gateway$"
UNDER_THE_GATEWAY_PER_TENANT = (
    GATEWAY + "random:index/randomPassword:RandomPassword::gateway-key-{t}",
    GATEWAY + "kubernetes:batch/v1:Job::gateway-key-job-{t}",
)
UNDER_THE_GATEWAY_ONCE = (
    GATEWAY + "kubernetes:core/v1:Secret::gateway-tenant-keys",
    GATEWAY + "kubernetes:core/v1:ServiceAccount::gateway-key-registrar",
)
UNDER_THE_GATEWAY_PER_SERVER = (GATEWAY + "random:index/randomPassword:RandomPassword::gateway-mcp-token-{t}-{a}",)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_tenant_keys_and_mcp_tokens_keep_the_urns_they_had_under_the_gateway(stack: str) -> None:
    cfg = load_stack(stack)
    old = [
        *UNDER_THE_GATEWAY_ONCE,
        *(p.format(t=t.name) for p in UNDER_THE_GATEWAY_PER_TENANT for t in cfg.tenants),
        *(
            p.format(t=t.name, a=a.name)
            for p in UNDER_THE_GATEWAY_PER_SERVER
            for t in cfg.tenants
            for a in t.agents
            if a.mcp is not None
        ),
    ]
    result = program_result(stack)
    aliases = alias_urns(result)
    for suffix in old:
        urn = f"urn:pulumi:{stack}::{PROJECT}::{suffix}"
        holders = [u for u, known in aliases.items() if urn in known]
        assert len(holders) == 1, f"{urn}: held by {holders or 'nothing'}: the resource would be replaced"
        assert "agent-platform:gateway:Gateway" not in holders[0]  # moved: no longer the Gateway's
    gateway_children = [r for r in result.registrations if r.parent.endswith("Gateway::gateway")]
    assert not [r.name for r in gateway_children if r.name.startswith(("gateway-key", "gateway-mcp-token-"))]
    servers = sum(1 for t in cfg.tenants for a in t.agents if a.mcp is not None)
    assert len(old) == 2 + 2 * len(cfg.tenants) + servers
    assert stack != "dev" or servers == 2
