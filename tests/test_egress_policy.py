"""CrossGuard's sandbox-egress-allowlist: direct calls on the program's own rules, then the whole pack over gRPC."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.egress import sandbox_egress_allowlist

from components.tenants.sandbox_network import SandboxEgress, sandbox_egress_rules
from tests.configs import parse_config
from tests.conftest import program_result
from tests.policy_cases import PACK_DIR, k8s, resource, run_stack_policy
from tests.tokens import NETPOL, TEMPLATE
from tools.analyzer import run_pack
from tools.engine import analyzer_resources

# --------------------------------------------------------------------------------------------
# CrossGuard: sandbox-egress-allowlist (direct calls, then the whole pack over gRPC)

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"


def _ns(name: str, sandbox: bool = True) -> Any:
    labels = {"agent-platform.io/sandbox": "true"} if sandbox else {}
    return resource(NAMESPACE_TYPE, name, k8s("v1", "Namespace", name, labels=labels))


def _netpol(
    name: str, namespace: str, egress: Any, pod_selector: Any = None, types: Any = ("Ingress", "Egress")
) -> Any:  # noqa: E501
    spec = {"podSelector": {} if pod_selector is None else pod_selector, "policyTypes": list(types), "egress": egress}
    return resource(
        NETPOL, f"{namespace}-{name}", k8s("networking.k8s.io/v1", "NetworkPolicy", name, spec, namespace=namespace)
    )


def _template(name: str, namespace: str, network_policy: Any) -> Any:
    spec: dict[str, Any] = {"podTemplate": {"metadata": {"labels": {"agent-platform.io/sandbox": "true"}}, "spec": {}}}
    if network_policy is not None:
        spec["networkPolicy"] = network_policy
    return resource(
        TEMPLATE,
        f"{namespace}-{name}",
        k8s("extensions.agents.x-k8s.io/v1beta1", "SandboxTemplate", name, spec, namespace=namespace),
    )


ALLOWLIST = sandbox_egress_rules(parse_config().network, SandboxEgress(allowlist=True, cidrs=("203.0.113.0/24",)))
OPEN = sandbox_egress_rules(parse_config().network)


def _run(resources: list[Any]) -> list[str]:
    outcome = run_stack_policy(sandbox_egress_allowlist, resources)
    assert outcome.unknown is None
    return outcome.messages


def test_policy_accepts_the_allowlist_rules() -> None:
    assert (
        _run(
            [
                _ns("tenant-a"),
                _netpol("sandbox-isolation", "tenant-a", ALLOWLIST),
                _template("t", "tenant-a", {"egress": ALLOWLIST}),
            ]
        )
        == []
    )


def test_policy_requires_a_default_deny_egress_policy() -> None:
    messages = _run([_ns("tenant-a"), _ns("plain", sandbox=False)])
    assert messages == [
        "Namespace tenant-a: add a default-deny egress NetworkPolicy (podSelector {}, policyTypes including Egress) "
        "to this sandbox namespace (agent-platform.io/sandbox=true); without one every pod may connect anywhere."
    ]
    # A policy that selects only some pods, or only restricts ingress, is not a default deny.
    assert (
        len(_run([_ns("tenant-a"), _netpol("x", "tenant-a", ALLOWLIST, pod_selector={"matchLabels": {"a": "b"}})])) == 1
    )
    assert len(_run([_ns("tenant-a"), _netpol("x", "tenant-a", [], types=("Ingress",))])) == 1


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (OPEN, "egress[2] allows 0.0.0.0/0"),
        ([{"to": [{"ipBlock": {"cidr": "::/0"}}]}], "egress[0] allows ::/0"),
        (
            [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}],
            "egress[0] allows 0.0.0.0/0",
        ),
        ([{"ports": [{"protocol": "TCP", "port": 443}]}], "egress[0] has no 'to', which allows every destination"),
        ([{}], "egress[0] has no 'to', which allows every destination"),
    ],
)
def test_policy_refuses_internet_wide_egress(rules: list[Any], problem: str) -> None:
    messages = _run([_ns("tenant-a"), _netpol("sandbox-isolation", "tenant-a", rules)])
    assert messages == [
        f"NetworkPolicy tenant-a/sandbox-isolation: {problem}; sandboxes reach the internet only through the egress proxy (their tenant's domain allowlist); list the proxy and model gateway ports and the tenant's own cidrs instead."
    ]
    template = _run(
        [_ns("tenant-a"), _netpol("d", "tenant-a", ALLOWLIST), _template("t", "tenant-a", {"egress": rules})]
    )
    assert len(template) == 1
    assert template[0].startswith(f"SandboxTemplate tenant-a/t: spec.networkPolicy.{problem}")


def test_policy_ignores_other_namespaces_and_flags_templates_without_rules() -> None:
    assert _run([_ns("web", sandbox=False), _netpol("open", "web", OPEN)]) == []
    messages = _run([_ns("tenant-a"), _netpol("d", "tenant-a", ALLOWLIST), _template("t", "tenant-a", None)])
    assert len(messages) == 1
    assert "controller's default lets sandboxes reach the public internet" in messages[0]


def test_policy_through_the_pack_in_open_mode() -> None:
    """Every stack passes the pack with no violation at all (tests/test_preview.py); the transition switch really
    opens the internet, and the pack says so (mandatory unless reconfigured)."""
    open_mode = analyzer_resources(program_result("dev", {"agent-platform:egressMode": "open"}))
    violations = [v for v in run_pack(PACK_DIR, open_mode) if v.policy == "sandbox-egress-allowlist"]
    assert {v.enforcement_level for v in violations} == {"mandatory"}
    assert len(violations) == 4  # acme's, globex's and initech's NetworkPolicies, globex's SandboxTemplate
    assert all("allows 0.0.0.0/0" in v.message for v in violations)
    advisory = run_pack(PACK_DIR, open_mode, {"sandbox-egress-allowlist": "advisory"})
    assert {v.enforcement_level for v in advisory if v.policy == "sandbox-egress-allowlist"} == {"advisory"}
