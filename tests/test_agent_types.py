"""The agent types registry (components/tenants/agent_types/) is the one place a type is described: its image key is
declared in Pulumi.yaml, the docs tables are its rows, and what a type declares about callers and limits reaches the
program (checked here with a test-only type, so the paths exist before the first type that uses them)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from components.config import project_schema
from components.config.reader import safe_load
from components.contracts import gateway as gwc
from components.contracts.labels import SANDBOX_LABEL
from components.contracts.services import Pods
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.hermes import HERMES
from tests.configs import config_error
from tests.tokens import NETPOL, SERVICE
from tools.program import ROOT, ProgramResult, run_program

DOCS = ROOT / "docs"


def called_by(callers: tuple[Pods, ...]) -> str:
    return ", ".join(f"{c.namespace or 'its namespace'}: {c.labels}" for c in callers) or "nobody (connects out only)"


def expected_rows() -> list[str]:
    return [
        f"| `{t.name}` | {t.title} | {f'`{t.image_key}`' if t.image_key else 'its own (`mcp.image`)'} | "
        f"{', '.join(f'{n} {p}' for n, p in t.ports)}{' (default: `mcp.port`)' if t.mcp_server else ''} | "
        f"{called_by(t.callers)} | {t.max_per_tenant or 'no limit'} |"
        for t in AGENT_TYPES.values()
    ]


def test_the_docs_table_is_the_registry() -> None:
    text = (DOCS / "cluster.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| `[a-z0-9-]+` \| ", line)]
    assert rows == expected_rows(), "docs/cluster.md agent types table; expected:\n" + "\n".join(expected_rows())


def test_every_image_key_is_declared_and_read() -> None:
    schema = project_schema()
    for kind in (t for t in AGENT_TYPES.values() if t.image_key):  # else each agent names its own (mcp.image)
        declared = schema.get(kind.image_key)
        assert declared, f"{kind.name}: declare agent-platform:{kind.image_key} in Pulumi.yaml"
        assert declared.get("default"), kind.image_key
        assert declared.get("description"), kind.image_key
        assert "must pin a tag" in config_error(**{kind.image_key: "example/agent:latest"})


def test_the_egress_defaults_table_is_the_registry() -> None:
    section = (DOCS / "egress.md").read_text().split("### Defaults per agent type", 1)[1]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = lines[start : next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))]
    rows: dict[str, set[str]] = {}
    current = ""
    for line in table[2:]:  # after the header and its separator
        cells = [c.strip() for c in line.strip("|").split("|")]
        current = cells[0] or current
        rows.setdefault(current, set()).update(re.findall(r"`([^`]+)`", cells[1]))
    assert rows == {t.title.split()[0]: set(t.egress_defaults) for t in AGENT_TYPES.values() if t.egress_defaults}


def test_the_readme_example_names_every_type() -> None:
    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if "type: hermes" in x)
    assert line.split("#", 1)[1].split("(")[0].split() == " | ".join(AGENT_TYPES).split()


# --- what a type declares reaches the program: a test-only tool server the gateway calls, one per tenant

TOOLS = dataclasses.replace(
    HERMES, name="tools", title="Tools", callers=(gwc.GATEWAY_PODS,), service_port="api", max_per_tenant=1
)


@pytest.fixture(scope="module")
def with_tools() -> ProgramResult:
    tenants = safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["agent-platform:tenants"]
    tenants[0]["agents"].append({"name": "tools", "type": "tools"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(AGENT_TYPES, "tools", TOOLS)
        return run_program("dev", {"agent-platform:tenants": tenants})


def test_a_called_type_gets_a_service_and_admits_only_its_callers(with_tools: ProgramResult) -> None:
    (service,) = [r for r in with_tools.of_type(SERVICE) if r.inputs["metadata"]["name"] == "tools"]
    assert service.inputs["spec"]["ports"] == [{"name": "api", "port": 8642, "targetPort": "api"}]
    (policy,) = [r for r in with_tools.of_type(NETPOL) if r.inputs["metadata"]["name"] == "tools-callers"]
    assert policy.inputs["spec"]["podSelector"]["matchLabels"] == service.inputs["spec"]["selector"]
    assert policy.inputs["spec"]["ingress"] == [
        {
            "from": [
                {
                    "podSelector": {"matchLabels": gwc.SELECTOR},
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gwc.NAMESPACE}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8642}],
        }
    ]
    (litellm,) = [r for r in with_tools.of_type(NETPOL) if r.name == "network-policies-litellm-litellm"]
    assert {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {SANDBOX_LABEL: "true"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "tools"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 8642}],
    } in litellm.inputs["spec"]["egress"]


def test_a_type_limit_per_tenant_is_refused_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(AGENT_TYPES, "tools", TOOLS)
    agents = [{"name": "a", "type": "tools"}, {"name": "b", "type": "tools"}]
    message = config_error(tenants=[{"name": "t", "agents": agents}])
    assert "2 agents of type 'tools': a tenant may run at most 1" in message
    with pytest.raises(ValueError, match="service_port"):
        dataclasses.replace(HERMES, callers=(gwc.GATEWAY_PODS,))
