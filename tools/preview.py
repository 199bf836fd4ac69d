"""Offline preview: ``python -m tools.preview --stack dev``.

Runs the real program under the mock engine, writes ``build/<stack>/``, runs the policy pack over the analyzer gRPC
protocol and renders and checks every third-party install. Outputs and exit codes: README.md#first-commands.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.config import ConfigError, project_schema
from tools.analyzer import AnalyzerResource, Violation, run_pack
from tools.program import ROOT, ProgramResult, manifest_name, run_program
from tools.render import RenderUnavailable, render_all, write_rendered
from tools.render_checks import Finding, run_checks


@dataclass
class Report:
    result: ProgramResult
    violations: list[Violation]
    findings: list[Finding] = field(default_factory=list)  # render checks
    render_skipped: str = ""  # why the render step could not run here

    @property
    def failed(self) -> bool:
        return bool(self.findings) or any(v.enforcement_level == "mandatory" for v in self.violations)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: the same YAML, 10x faster


# What a registration hands to the analyzer as it is (the provider is looked up by its URN).
_ANALYZED_FIELDS = ("type", "urn", "name", "properties", "parent", "protect", "dependencies", "property_dependencies")


def analyzer_resources(result: ProgramResult) -> list[AnalyzerResource]:
    """The program's registrations as the CLI hands them to an analyzer."""
    by_urn = {r.urn: r for r in result.registrations}
    resources = []
    for r in result.registrations:
        provider = by_urn.get(r.provider)
        resources.append(
            AnalyzerResource(
                **{name: getattr(r, name) for name in _ANALYZED_FIELDS},
                provider_urn=r.provider,
                provider_type=provider.type if provider else "",
                provider_properties=provider.properties if provider else {},
            )
        )
    return resources


def write_build(result: ProgramResult, violations: list[Violation], out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)
    resources = [
        {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "provider": r.provider, "inputs": r.inputs}
        for r in result.registrations
    ]
    (out / "resources.json").write_text(json.dumps(resources, indent=2, sort_keys=True) + "\n")
    (out / "outputs.json").write_text(json.dumps(result.outputs, indent=2, sort_keys=True) + "\n")
    for r in result.registrations:
        name = manifest_name(r)
        if name:
            body = {k: v for k, v in r.inputs.items() if not k.startswith("__")}
            (out / "manifests" / name).write_text(yaml.dump(body, Dumper=_DUMPER, sort_keys=False))
    report = [
        {"policy": v.policy, "enforcementLevel": v.enforcement_level, "urn": v.urn, "message": v.message}
        for v in violations
    ]
    (out / "policy-report.json").write_text(json.dumps(report, indent=2) + "\n")


def kubernetes_version(result: ProgramResult) -> str:
    """The cluster's Kubernetes minor version, as the program passed it to EKS."""
    clusters = result.of_type("eks:index:Cluster")
    return str(clusters[0].inputs.get("version") if clusters else project_schema()["kubernetesVersion"]["default"])


def check_installs(result: ProgramResult, out: Path) -> tuple[list[Finding], str]:
    """Render every install into ``out/rendered`` and check it; ("", reason) when it cannot run here."""
    kube_version = kubernetes_version(result)
    try:
        rendered = render_all(result, kube_version)
    except RenderUnavailable as reason:
        findings, skipped = [], str(reason)
    else:
        write_rendered(rendered, out)
        findings, skipped = run_checks(result, rendered, kube_version), ""
    report = {"skipped": skipped or None, "findings": [vars(f) for f in findings]}
    (out / "render-report.json").write_text(json.dumps(report, indent=2) + "\n")
    return findings, skipped


def summarize(report: Report, seconds: float) -> str:
    result, violations = report.result, report.violations
    types = Counter(r.type for r in result.registrations)
    levels = Counter(v.enforcement_level for v in violations)
    lines = [f"Resources by type ({len(result.registrations)}):"]
    lines += [f"  {count:4d}  {type_}" for type_, count in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))]
    for v in violations:
        lines.append(f"  [{v.enforcement_level}] {v.policy}: {v.urn.rsplit('::', 1)[-1]}: {v.message.splitlines()[-1]}")
    lines += [f"  [render] {finding}" for finding in report.findings]
    render = (
        f"render skipped ({report.render_skipped})"
        if report.render_skipped
        else f"{len(report.findings)} render findings"
    )
    lines.append(
        f"{result.stack}: {len(result.registrations)} resources, {len(result.outputs)} outputs, "
        f"{levels.get('mandatory', 0)} mandatory and {levels.get('advisory', 0)} advisory violations, "
        f"{render} in {seconds:.1f}s"
    )
    return "\n".join(lines)


def preview(
    stack: str,
    out_dir: Path | None = None,
    pack_dir: Path = ROOT / "policies",
    policy_config: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    result: ProgramResult | None = None,
) -> Report:
    """Preview ``stack`` into ``out_dir``; ``result`` reuses a program run already made with the same config."""
    out = out_dir or ROOT / "build" / stack
    result = result or run_program(stack, overrides)
    violations = run_pack(pack_dir, analyzer_resources(result), policy_config)
    write_build(result, violations, out)
    findings, skipped = check_installs(result, out)
    return Report(result, violations, findings, skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, help="output folder (default build/<stack>)")
    parser.add_argument("--policy-pack", type=Path, default=ROOT / "policies")
    parser.add_argument("--policy-pack-config", type=Path, help="JSON file, as for pulumi --policy-pack-config")
    args = parser.parse_args(argv)
    policy_config = json.loads(args.policy_pack_config.read_text()) if args.policy_pack_config else None
    started = time.monotonic()
    try:
        report = preview(args.stack, args.out, args.policy_pack, policy_config)
    except (ConfigError, FileNotFoundError, pulumi.RunError) as error:
        # One line naming the key, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summarize(report, time.monotonic() - started))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
