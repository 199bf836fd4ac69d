"""The placement matrix (scenarios: tests/policies/placement.py): every rule of the registry gives the same
verdict wherever its resources land, and no rule module reads placement itself (the resolution layer does)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from agent_policies import RULES, Rule
from pulumi_policy import StackValidationPolicy

from tests.policies.placement import (
    PLACEMENTS,
    SCENARIOS,
    as_patch,
    elsewhere,
    kubernetes_names,
)
from tests.policy_cases import PACK_DIR, Outcome, run_resource_policy, run_stack_policy
from tools.analyzer import AnalyzerResource


def test_every_rule_has_a_scenario() -> None:
    """A new rule fails here until it has a scenario; every placement variant then runs for it."""
    assert set(SCENARIOS) == {rule.name for rule in RULES}
    for name, scenario in SCENARIOS.items():
        bad, good = scenario.stack(True), scenario.stack(False)
        assert [r.name for r in bad] == [r.name for r in good], name  # same names: the copies on B collide
        assert set(scenario.subjects) <= {r.name for r in bad}, name


def verdict(rule: Rule, resources: list[AnalyzerResource], config: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The resources the rule reports (by name) and the unknowns it stopped on."""
    names = {r.urn: r.name for r in resources}
    if isinstance(rule.policy, StackValidationPolicy):
        outcome = run_stack_policy(rule.policy, resources, config)
        return {names[u] for u in outcome.urns if u}, [outcome.unknown.message] if outcome.unknown else []
    providers = {r.urn: r for r in resources if r.type.startswith("pulumi:providers:")}
    reported: set[str] = set()
    unknowns: list[str] = []
    for r in resources:
        if r.urn in providers:
            continue
        outcome: Outcome = run_resource_policy(
            rule.policy, r.type, r.properties, config, name=r.name, provider=providers.get(r.provider_urn)
        )
        if outcome.messages:
            reported.add(r.name)
        if outcome.unknown is not None:
            unknowns.append(f"{r.name}: {outcome.unknown.message}")
    return reported, unknowns


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_placement_matrix(rule: Rule, placement: str) -> None:
    """Bad and good, each Kubernetes resource as its ``*Patch`` kind in turn, alone and next to the opposite stack
    (same names) on another cluster and region: the verdict is the scenario's, and never an unknown."""
    scenario = SCENARIOS[rule.name]
    move = PLACEMENTS[placement]
    for bad in (True, False):
        here = scenario.stack(bad)
        there = elsewhere(scenario.stack(not bad))
        expected_here = set(scenario.subjects) if bad else set()
        expected_there = set() if bad else {f"{name}-b" for name in scenario.subjects}
        for patched in [None, *kubernetes_names(here)]:
            for with_other in (False, True):
                resources = as_patch(here, patched) + (as_patch(there, None) if with_other else [])
                found, unknowns = verdict(rule, move(resources), scenario.config)
                variant = f"{'bad' if bad else 'good'}, {patched or 'no'} patch, {'with' if with_other else 'no'} B"
                assert unknowns == [], variant
                assert found == expected_here | (expected_there if with_other else set()), variant


# --- no rule reads placement itself -----------------------------------------------------------

LAYER = {"placement.py", "stack.py", "common.py"}  # the resolution layer and the property access under it
FORBIDDEN_STRINGS = {"namespace", "region"}  # metadata.namespace; an AWS resource's or provider's region
FORBIDDEN_PREFIXES = ("kubernetes:", "pulumi:providers:")  # raw type tokens miss patches; providers
FORBIDDEN_ATTRIBUTES = {"provider", "property_dependencies", "dependencies"}  # providers, references
FORBIDDEN_NAMES = {"kubernetes_kind", "provider_namespace", "dependencies_of", "aws_location", "kubernetes_cluster"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def placement_reads(source: str) -> list[str]:
    """Where a module reads a namespace, a region, a provider, a dependency or a ``*Patch`` kind itself."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            value = node.value
            if value in FORBIDDEN_STRINGS or "Patch" in value or value.startswith(FORBIDDEN_PREFIXES):
                found.append(f"line {node.lineno}: {value[:40]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.alias) and node.name in FORBIDDEN_NAMES:
            found.append(f"line {node.lineno}: import {node.name}")
    return found


def test_no_rule_reads_placement_itself() -> None:
    modules = sorted(p for p in (PACK_DIR / "agent_policies").glob("*.py") if p.name not in LAYER)
    assert len(modules) >= 10
    assert {path.name: placement_reads(path.read_text()) for path in modules} == {path.name: [] for path in modules}


@pytest.mark.parametrize(
    "source",
    [
        "x = get(meta, 'namespace')",
        "x = args.provider",
        "x = kind.endswith('Patch')",
        "x = t == 'kubernetes:core/v1:Service'",
        "x = r.property_dependencies['spec']",
        "from .placement import provider_namespace",
        "x = get(props, 'region')",
    ],
)
def test_the_check_sees_each_kind_of_read(source: str) -> None:
    assert placement_reads(source), source


def test_the_layer_is_where_placement_is_read() -> None:
    for layer in LAYER - {"common.py"}:  # the check is not vacuous: the layer does what rules must not
        assert placement_reads((PACK_DIR / "agent_policies" / layer).read_text()), layer
    assert Path(__file__).name == "test_placement.py"
