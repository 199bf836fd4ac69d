"""Optional per-tenant dedicated Kata nodes (issue 14): a tenant with ``dedicatedNodes: true`` gets its own
tainted Karpenter NodePool; only its pods select and tolerate it, so no other tenant's VM shares its hosts."""

from __future__ import annotations

from typing import Any

from agent_policies.sandbox_namespaces import sandbox_namespace_runtime_class

from components.config import PROJECT_FILE
from components.config.reader import safe_load
from components.contracts.labels import DEDICATED_TENANT_KEY
from tests.configs import parse_config
from tests.conftest import program_result
from tests.policy_cases import run_stack_policy
from tests.schemas import validate_object
from tests.tokens import DEPLOYMENT, NODE_POOL, RELEASE, TEMPLATE
from tools.engine import analyzer_resources
from tools.program import ProgramResult, Registration

KATA_TAINT = {"key": "kata", "value": "true", "effect": "NoSchedule"}


def dedicated() -> ProgramResult:
    """dev with globex (an openclaw agent with a warm pool) on dedicated nodes; acme stays shared."""
    tenants = safe_load((PROJECT_FILE.parent / "Pulumi.dev.yaml").read_text())["config"]["agent-platform:tenants"]
    globex = next(t for t in tenants if t["name"] == "globex")
    globex["dedicatedNodes"] = True
    return program_result("dev", {"agent-platform:tenants": tenants})


def pods(result: ProgramResult, namespace: str) -> list[dict[str, Any]]:
    """Pod specs of every agent workload (Deployments and SandboxTemplates) in ``namespace``."""
    found = []
    for r in result.registrations:
        if r.type in (DEPLOYMENT, TEMPLATE) and r.inputs["metadata"].get("namespace") == namespace:
            spec = r.inputs["spec"]
            found.append((spec.get("template") or spec["podTemplate"])["spec"])
    return found


def pool(result: ProgramResult, name: str) -> Registration:
    (found,) = [r for r in result.of_type(NODE_POOL) if r.inputs["metadata"]["name"] == name]
    return found


def test_a_dedicated_tenant_gets_its_own_tainted_pool() -> None:
    result = dedicated()
    assert sorted(r.inputs["metadata"]["name"] for r in result.of_type(NODE_POOL)) == ["kata", "kata-globex"]
    own = pool(result, "kata-globex")
    validate_object(own.inputs)
    template = own.inputs["spec"]["template"]
    assert template["metadata"]["labels"] == {"workload-type": "kata", DEDICATED_TENANT_KEY: "globex"}
    assert template["spec"]["taints"] == [
        KATA_TAINT,
        {"key": DEDICATED_TENANT_KEY, "value": "globex", "effect": "NoSchedule"},
    ]
    shared = pool(result, "kata").inputs["spec"]
    # Same node class, requirements, limits and disruption as the shared Kata pool.
    assert template["spec"]["nodeClassRef"] == shared["template"]["spec"]["nodeClassRef"]
    assert template["spec"]["requirements"] == shared["template"]["spec"]["requirements"]
    assert own.inputs["spec"]["limits"] == shared["limits"]
    assert own.inputs["spec"]["disruption"] == shared["disruption"]


def test_only_the_dedicated_tenants_pods_select_and_tolerate_its_nodes() -> None:
    result = dedicated()
    globex = pods(result, "tenant-globex")
    assert len(globex) == 3  # OpenClaw's Deployment and warm pool SandboxTemplate, the MCP server's Deployment
    for spec in globex:
        assert spec["nodeSelector"] == {DEDICATED_TENANT_KEY: "globex"}
        assert spec["tolerations"] == [
            {"key": DEDICATED_TENANT_KEY, "operator": "Equal", "value": "globex", "effect": "NoSchedule"}
        ]
    for spec in pods(result, "tenant-acme"):
        assert "nodeSelector" not in spec
        assert "tolerations" not in spec


def test_kata_deploy_runs_on_dedicated_nodes_too() -> None:
    (release,) = [r for r in dedicated().of_type(RELEASE) if r.inputs["name"] == "kata-deploy"]
    assert {"key": DEDICATED_TENANT_KEY, "operator": "Exists", "effect": "NoSchedule"} in release.inputs["values"][
        "tolerations"
    ]


def test_shared_tenants_by_default(each_stack: ProgramResult) -> None:
    assert [
        r.inputs["metadata"]["name"]
        for r in each_stack.of_type(NODE_POOL)
        if r.inputs["metadata"]["name"].startswith("kata")
    ] == ["kata"]
    (release,) = [r for r in each_stack.of_type(RELEASE) if r.inputs["name"] == "kata-deploy"]
    assert all(t["key"] != DEDICATED_TENANT_KEY for t in release.inputs["values"]["tolerations"])


def test_dedicated_nodes_config() -> None:
    agents = [{"name": "a", "type": "hermes"}]
    cfg = parse_config(tenants=[{"name": "t", "agents": agents, "dedicatedNodes": True}])
    assert cfg.tenants[0].dedicated_nodes is True
    assert parse_config(tenants=[{"name": "t", "agents": agents}]).tenants[0].dedicated_nodes is False


def test_the_policy_pack_passes_a_dedicated_tenant() -> None:
    """Only globex's pods tolerate its nodes, in its namespace (dedicated-tenant-tolerations: both gates refuse a
    toleration elsewhere; tests/policies/test_tolerations.py, tests/test_admission.py)."""
    assert run_stack_policy(sandbox_namespace_runtime_class, analyzer_resources(dedicated())).messages == []
