"""Offline preview: ``python -m tools.preview --stack dev``.

Runs the real program under the mock engine, writes ``build/<stack>/``, runs the policy pack over the analyzer gRPC
protocol and renders and checks every third-party install. Outputs and exit codes: README.md#first-commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.config import ConfigError, project_schema
from components.config.versions import catalog_note
from tools.analyzer import PolicyPackProcess, Violation, run_pack
from tools.build import write_build, write_outputs
from tools.engine import EngineProcess, analyzer_resources
from tools.program import ROOT, ProgramResult, config_file, load_stack, run_program
from tools.render import RenderUnavailable, render_all, write_rendered
from tools.render_checks import Finding, run_checks
from tools.render_checks.model import build_stack
from tools.split import SHARD_PROJECT, platform_of, project_name, references, split_stack
from tools.split import policy_config as split_policy_config


@dataclass
class Report:
    result: ProgramResult
    violations: list[Violation]
    findings: list[Finding] = field(default_factory=list)  # render checks
    render_skipped: str = ""  # why the render step could not run here

    @property
    def failed(self) -> bool:
        return bool(self.findings) or any(v.enforcement_level == "mandatory" for v in self.violations)


def write_policy_report(violations: list[Violation], out: Path) -> None:
    report = [
        {"policy": v.policy, "enforcementLevel": v.enforcement_level, "urn": v.urn, "message": v.message}
        for v in violations
    ]
    (out / "policy-report.json").write_text(json.dumps(report, indent=2) + "\n")


def kubernetes_version(result: ProgramResult) -> str:
    """The cluster's Kubernetes minor version, as the program passed it to EKS."""
    clusters = result.of_type("eks:index:Cluster")
    return str(clusters[0].inputs.get("version") if clusters else project_schema()["kubernetesVersion"]["default"])


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


class Progress:
    """One line per step of the preview (``[2/5] program ... 218 resources (3.1 s)``), so a cold run is never silent."""

    STEPS = 5

    def __init__(self, stack: str, echo: Callable[[str], None] | None) -> None:
        self.stack, self.echo, self.number = stack, echo, 0
        self.started = 0.0

    def start(self, what: str) -> None:
        self.number += 1
        self.started = time.monotonic()
        if self.echo:
            self.echo(f"[{self.number}/{self.STEPS}] {self.stack}: {what} ... ")

    def done(self, outcome: str) -> None:
        if self.echo:
            self.echo(f"{outcome} ({time.monotonic() - self.started:.1f} s)\n")


def check_installs(
    result: ProgramResult, out: Path, progress: Progress | None = None, platform: ProgramResult | None = None
) -> tuple[list[Finding], str]:
    """Render every install into ``out/rendered`` and check it; ("", reason) when it cannot run here. A shard's
    objects are checked in their cluster: beside the ``platform`` run's objects and installs (namespaces, CRDs),
    and only the shard's own findings are reported (the platform's preview reports its own)."""
    progress = progress or Progress(result.stack, None)
    own = result
    if platform is not None:
        registrations = platform.registrations + result.registrations
        result = ProgramResult(result.stack, registrations, result.outputs, result.secret_outputs)
    kube_version = kubernetes_version(result)
    progress.start("render the Helm charts and manifests (vendored, ../shared)")
    try:
        rendered = render_all(result, kube_version)
    except RenderUnavailable as reason:
        findings, skipped = [], str(reason)
        progress.done(f"skipped: {reason}")
        progress.start("render checks")
        progress.done("skipped")
    else:
        write_rendered(rendered if platform is None else [], out)  # a shard installs nothing
        progress.done(_count(len(rendered), "install"))
        progress.start("render checks (versions, values, schemas, selectors, placement, images)")
        findings, skipped = run_checks(result, rendered, kube_version), ""
        if platform is not None:
            keys = {str(obj) for obj in build_stack(own, []).objects}
            findings = [finding for finding in findings if finding.key in keys]
        progress.done(_count(len(findings), "finding"))
    report = {"skipped": skipped or None, "findings": [vars(f) for f in findings]}
    (out / "render-report.json").write_text(json.dumps(report, indent=2) + "\n")
    return findings, skipped


def resource_types(result: ProgramResult) -> str:
    """The resources by type, most frequent first (``--types``)."""
    types = Counter(r.type for r in result.registrations)
    lines = [f"Resources by type ({len(result.registrations)}):"]
    lines += [f"  {count:4d}  {type_}" for type_, count in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines)


def _relative(path: Path) -> str:
    return f"{path.relative_to(ROOT)}" if path.is_relative_to(ROOT) else str(path)


def summarize(report: Report, seconds: float, out: Path | None = None) -> str:
    """Each violation and finding on a line, the build folder and its reports, then one line of counts."""
    result, violations = report.result, report.violations
    levels = Counter(v.enforcement_level for v in violations)
    lines = [
        f"  [{v.enforcement_level}] {v.policy}: {v.urn.rsplit('::', 1)[-1]}: {v.message.splitlines()[-1]}"
        for v in violations
    ]
    lines += [f"  [render] {finding}" for finding in report.findings]
    if out is not None:
        folder = _relative(out)
        count = len(list((out / "manifests").glob("*.yaml"))), len(list((out / "rendered").glob("*.yaml")))
        lines.append(
            f"{folder}/: policy-report.json ({_count(len(violations), 'violation')}), render-report.json "
            f"({_count(len(report.findings), 'finding')}), resources.json, outputs.json, manifests/ "
            f"({_count(count[0], 'object')}), rendered/ ({_count(count[1], 'install')})"
        )
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
    progress: Progress | None = None,
    root: Path = ROOT,
    stack_references: dict[str, dict[str, Any]] | None = None,
) -> Report:
    """Preview ``stack`` into ``out_dir``; ``result`` reuses a program run already made with the same config.
    The configuration is checked first (a ConfigError before any resource is declared). ``stack_references``
    answers the program's stack references (default: the split's other side, tools/split.py)."""
    out = out_dir or ROOT / "build" / stack
    progress = progress or Progress(stack, None)
    platform = platform_of(root, stack, overrides)
    if result is not None:
        progress.number = 2
        write_build(result, out)
        findings, skipped = check_installs(result, out, progress, platform)
        progress.start("policy pack over the analyzer gRPC protocol")
        violations = run_pack(pack_dir, analyzer_resources(result), policy_config)
        progress.done(_count(len(violations), "violation"))
        write_policy_report(violations, out)
        return Report(result, violations, findings, skipped)
    progress.start("configuration (Pulumi.yaml defaults + Pulumi." + stack + ".yaml)")
    if project_name(root) != SHARD_PROJECT:  # a shard's configuration is parsed against the contract, in its program
        load_stack(stack, overrides, root)
    refs = stack_references if stack_references is not None else references(root, stack, overrides)
    note = catalog_note()
    progress.done(f"ok{f'; note: {note}' if note else ''}{f'; stack references: {len(refs)}' if refs else ''}")
    # The engine's process answers the program, streams each resource to the pack as it registers (as the CLI does)
    # and writes build/ (tools/engine.py); the installs are checked while it writes and the pack analyzes the stack.
    # A shard's pack gets the platform's facts (the service CIDR) from the contract (docs/shards.md#policy).
    with EngineProcess(out) as engine, PolicyPackProcess(pack_dir, policy_config or split_policy_config(refs)) as pack:
        pack.configure()
        pack.configure_stack()
        progress.start("program under the mock engine")
        result = run_program(stack, overrides, root=root, stack_references=refs, engine=engine.connect(pack))
        progress.done(f"{len(result.registrations)} resources, {len(result.outputs)} outputs")
        findings, skipped = check_installs(result, out, progress, platform)
        progress.start("policy pack over the analyzer gRPC protocol")
        violations = engine.violations()
    write_outputs(result.outputs, out)
    progress.done(_count(len(violations), "violation"))
    write_policy_report(violations, out)
    return Report(result, violations, findings, skipped)


def _echo(text: str) -> None:
    print(text, end="", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, help="output folder (default build/<stack>)")
    parser.add_argument("--policy-pack", type=Path, default=ROOT / "policies")
    parser.add_argument("--policy-pack-config", type=Path, help="JSON file, as for pulumi --policy-pack-config")
    parser.add_argument("--types", action="store_true", help="also print the resources by type")
    parser.add_argument(
        "--project-dir", type=Path, default=ROOT, help="folder with Pulumi.yaml and the stack files (default: here)"
    )
    parser.add_argument(
        "--config", type=Path, help="a file written like a stack file whose config overrides Pulumi.<stack>.yaml's"
    )
    args = parser.parse_args(argv)
    policy_config = json.loads(args.policy_pack_config.read_text()) if args.policy_pack_config else None
    out = args.out or ROOT / "build" / args.stack
    # `--stack tenants/dev-a`: the stack dev-a of the project in tenants/ (a shard, docs/shards.md).
    root, stack = split_stack(args.stack) if "/" in args.stack else (args.project_dir, args.stack)
    started = time.monotonic()
    progress = Progress(args.stack, _echo)
    try:
        overrides = config_file(args.config) if args.config else None
        report = preview(stack, out, args.policy_pack, policy_config, overrides, progress=progress, root=root)
    except (ConfigError, FileNotFoundError, pulumi.RunError) as error:
        # One line naming the key, no traceback (a started progress line is ended first).
        if progress.number:
            print("failed", flush=True)
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.types:
        print(resource_types(report.result))
    print(summarize(report, time.monotonic() - started, out))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
