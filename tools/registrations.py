"""Every registration of the program, for several stacks and feature variants, as one JSON file; and a comparison of
two such files by URN. A restructuring must leave them identical (a resource whose URN changed must name its old URN
through an alias, which the comparison follows).

    python tools/registrations.py dump --out build/registrations-new.json
    python tools/registrations.py dump --root /tmp/base --out build/registrations-base.json   # another checkout
    python tools/registrations.py compare build/registrations-base.json build/registrations-new.json

``--root`` runs the program (and the offline engine) of another checkout, e.g. ``git archive <commit> | tar -x``.
Recorded per registration: URN, type, parent, provider, custom, protect, inputs (wire form), dependencies,
property dependencies, custom timeouts, aliases, and the outputs a component registers; per variant, the stack
outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Feature variants beside the three stacks: every optional path of the program taken at least once.
DEV_FEATURES = {
    "kataFirecracker": True,
    "gvisor": True,
    "kataManagedNodeGroup": True,
    "kataWarmNodes": 1,
    "nodeSsmAccess": True,
}
PROD_FEATURES = {"egressMode": "open", "admissionMode": "Audit"}


def variants(root: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    tenants = yaml.safe_load((root / "Pulumi.dev.yaml").read_text())["config"]["agent-platform:tenants"]
    for tenant in tenants:
        if tenant["name"] == "globex":
            tenant["dedicatedNodes"] = True
    return {
        "dev": ("dev", {}),
        "staging": ("staging", {}),
        "prod": ("prod", {}),
        "dev-features": (
            "dev",
            {**{f"agent-platform:{k}": v for k, v in DEV_FEATURES.items()}, "agent-platform:tenants": tenants},
        ),
        "prod-open-audit": ("prod", {f"agent-platform:{k}": v for k, v in PROD_FEATURES.items()}),
    }


def dump(root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(root))
    from google.protobuf import json_format

    from tools import program

    component_outputs: dict[str, Any] = {}

    class Recording(program.RecordingMonitor):  # type: ignore[misc, name-defined]
        def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            component_outputs[request.urn] = json_format.MessageToDict(request.outputs)
            return super().RegisterResourceOutputs(request)

    program.RecordingMonitor = Recording  # type: ignore[misc]
    found: dict[str, Any] = {}
    for label, (stack, overrides) in variants(root).items():
        component_outputs.clear()
        found[label] = snapshot(program.run_program(stack, overrides, root=root), component_outputs)
    return found


def snapshot(result: Any, component_outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One variant's record: the stack outputs and every registration by URN (``result``: a ProgramResult)."""
    return {
        "outputs": result.outputs,
        "resources": {
            r.urn: {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "provider": r.provider,
                "custom": r.custom,
                "protect": r.protect,
                "inputs": r.properties,
                "dependencies": sorted(r.dependencies),
                "propertyDependencies": {k: sorted(v) for k, v in sorted(r.property_dependencies.items())},
                "customTimeouts": r.custom_timeouts,
                "aliases": r.aliases,
                "outputs": (component_outputs or {}).get(r.urn),
            }
            for r in result.registrations
        },
    }


def _urn_under(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    """The mock monitor's URN rule (pulumi/runtime/mocks.py make_urn): the type qualified by its parent's own type,
    the stack's included (the real engine leaves the stack out; URNs here are the mock's)."""
    if parent:
        type_ = parent.split("::")[2].split("$")[-1] + "$" + type_
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def alias_map(resources: dict[str, Any]) -> dict[str, str]:
    """Old URN -> new URN for every alias (own specs and those inherited from a parent), as tests/test_aliases.py
    resolves them."""
    resolved: dict[str, set[str]] = {}

    def resolve(urn: str) -> set[str]:
        if urn not in resolved:
            r = resources[urn]
            stack, project = urn.split("::")[0].split(":")[-1], urn.split("::")[1]
            own = {a["urn"] for a in r["aliases"] if "urn" in a}
            for spec in (a["spec"] for a in r["aliases"] if "spec" in a):
                parent = "" if spec.get("noParent") else spec.get("parentUrn") or r["parent"]
                own.add(
                    _urn_under(stack, project, parent, spec.get("type") or r["type"], spec.get("name") or r["name"])
                )
            if r["parent"] in resources:
                own |= {_urn_under(stack, project, old, r["type"], r["name"]) for old in resolve(r["parent"])}
            resolved[urn] = own
        return resolved[urn]

    return {old: urn for urn in resources for old in resolve(urn) if old != urn}


def _rename(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [_rename(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _rename(v, names) for k, v in value.items()}
    return value


def compare(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Differences, one line each; empty when every registration is the same (URNs through aliases)."""
    problems: list[str] = []
    for label in sorted(set(base) | set(new)):
        if label not in base or label not in new:
            problems.append(f"{label}: variant only in {'new' if label in new else 'base'}")
            continue
        old_resources, new_resources = base[label]["resources"], new[label]["resources"]
        moved = {old: urn for old, urn in alias_map(new_resources).items() if old in old_resources}
        to_new = {**{u: u for u in new_resources}, **moved}
        back = {urn: old for old, urn in moved.items()}
        for old in old_resources:
            if old not in to_new:
                problems.append(f"{label}: {old} is gone (no resource and no alias)")
        for urn, r in new_resources.items():
            old = back.get(urn, urn)
            if old not in old_resources:
                problems.append(f"{label}: {urn} is new")
                continue
            before = dict(old_resources[old])
            after = _rename({k: v for k, v in r.items() if k != "aliases"}, back)
            # renamed URNs sort elsewhere: compare dependencies as sets
            after["dependencies"] = sorted(after["dependencies"])
            after["propertyDependencies"] = {k: sorted(v) for k, v in after["propertyDependencies"].items()}
            for key in sorted(set(before) | set(after)):
                if key == "aliases":
                    continue
                if before.get(key) != after.get(key):
                    problems.append(
                        f"{label}: {urn}: {key} differs: {before.get(key)!r:.300} -> {after.get(key)!r:.300}"
                    )
        if base[label]["outputs"] != new[label]["outputs"]:
            problems.append(f"{label}: stack outputs differ")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump")
    dumping.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    dumping.add_argument("--out", type=Path, required=True)
    comparing = commands.add_parser("compare")
    comparing.add_argument("base", type=Path)
    comparing.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        found = dump(args.root.resolve())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, sort_keys=True, indent=1))
        counts = ", ".join(f"{label} {len(v['resources'])}" for label, v in found.items())
        print(f"{args.out}: {counts} registrations")
        return 0
    base, new = json.loads(args.base.read_text()), json.loads(args.new.read_text())
    problems = compare(base, new)
    for line in problems:
        print(line)
    total = sum(len(v["resources"]) for v in new.values())
    moved = sum(
        len(alias_map(v["resources"]).keys() & base.get(k, {}).get("resources", {}).keys()) for k, v in new.items()
    )
    print(
        f"{len(problems)} differences over {total} registrations in {len(new)} variants ({moved} found through aliases)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
