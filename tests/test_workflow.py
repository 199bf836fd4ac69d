"""The deployment pipeline in .github/: schema-valid, zizmor-clean (offline), and shaped as the README says.

The workflows hold the credentials that deploy the platform, so their security properties are tested like code:
the GitHub workflow JSON schema (check-jsonschema), the zizmor audit at medium severity and above, and the
structure itself (SHA pins, least permissions, OIDC only in environment-bound jobs, dev -> staging -> prod
promotion of one commit, drift detection that never changes anything).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config.reader import safe_load

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
BIN = Path(sys.executable).parent
# dev-shards: the offline example of the platform/shard split (docs/shards.md), not deployed by this pipeline.
EXAMPLE_STACKS = {"dev-shards"}
STACKS = sorted(
    s
    for p in ROOT.glob("Pulumi.*.yaml")
    if (s := p.name.removeprefix("Pulumi.").removesuffix(".yaml")) not in EXAMPLE_STACKS
)
PROMOTION = ["dev", "staging", "prod"]
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
# Pulumi CLI sub-commands that change a stack (or its state); none may run outside the deploy workflow.
MUTATING = re.compile(r"\bpulumi\s+(up|update|refresh|destroy|import|state|cancel)\b")


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}: run `make venv` (uv.lock)"
    return str(path)


def _offline_env() -> dict[str, str]:
    """The environment without GitHub tokens, so that nothing could authenticate to the GitHub API."""
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}}
    env["ZIZMOR_OFFLINE"] = "true"
    return env


def _load(name: str) -> dict[str, Any]:
    return safe_load((WORKFLOWS / name).read_text())


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    on = workflow.get("on", workflow.get(True))
    return {on: None} if isinstance(on, str) else dict(on)


def _workflows() -> dict[str, dict[str, Any]]:
    return {p.name: safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.y*ml"))}


def _steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def _called(job: dict[str, Any]) -> str | None:
    """The file name of the local reusable workflow a job calls, if it calls one."""
    uses = job.get("uses")
    if uses is None:
        return None
    assert uses.startswith("./.github/workflows/"), f"reusable workflow {uses} is not local"
    return uses.removeprefix("./.github/workflows/")


def _zizmor(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-exit-codes", "--no-progress", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_offline_env(),
        cwd=path.parent,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _at_least_medium(findings: list[dict[str, Any]]) -> list[str]:
    return [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']} at "
        f"{f['locations'][0]['symbolic']['key']['Local']['verbatim_path']}:"
        f"{f['locations'][0]['concrete']['location']['start_point']['row'] + 1}"
        for f in findings
        if not f["ignored"] and f["determinations"]["severity"] in {"Medium", "High"}
    ]


# --- external checkers -----------------------------------------------------------------------------------


def test_workflows_match_the_github_workflow_schema() -> None:
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert len(files) >= 2
    cmd = [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_offline_env())
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_config_matches_its_schema_and_covers_actions_and_uv() -> None:
    path = GITHUB / "dependabot.yml"
    cmd = [_tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_offline_env())
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {u["package-ecosystem"]: u for u in safe_load(path.read_text())["updates"]}
    assert ecosystems["github-actions"]["schedule"]["interval"] == "weekly"
    assert ecosystems["uv"]["directories"] == ["/", "/policies", "/examples/consumer"]  # every uv.lock


# zizmor 1.30's self-repository audit (severity low) recommends GitHub's `$/` reference for local reusable
# workflows; GitHub documents only `./` for those (the runner's `$/` support is a draft behind a feature flag).
NOT_APPLICABLE = {"self-repository"}


def test_zizmor_finds_nothing_at_medium_or_above() -> None:
    findings = _zizmor(GITHUB)
    assert _at_least_medium(findings) == []
    low = [f["ident"] for f in findings if not f["ignored"] and f["ident"] not in NOT_APPLICABLE]
    assert low == []


def test_zizmor_check_detects_an_insecure_workflow(tmp_path: Path) -> None:
    """The same invocation and parsing report the issue's findings on a workflow shaped like the old one."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: {push: {branches: [main]}}\n"
        "permissions: {contents: read, id-token: write}\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "  deploy:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v6\n"
    )
    idents = {line.split(" ")[0] for line in _at_least_medium(_zizmor(tmp_path / ".github"))}
    assert {"unpinned-uses", "artipacked", "excessive-permissions"} <= idents


# --- structure ---------------------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    pins: dict[str, set[str]] = {}
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        workflow = safe_load(path.read_text())
        parsed = [s["uses"] for _, s in _steps(workflow) if "uses" in s]
        parsed += [j["uses"] for j in workflow["jobs"].values() if "uses" in j]
        lines = [m.group(1) for m in re.finditer(r"^\s*(?:-\s+)?uses:\s*(.+?)\s*$", path.read_text(), re.M)]
        assert len(lines) == len(parsed), f"{path.name}: a `uses:` that is not on a line of its own"
        for line in lines:
            if line.startswith("./"):
                continue
            assert SHA_PIN.match(line), f"{path.name}: `{line}` is not `owner/repo@<40-hex sha> # vX.Y.Z`"
            action, _, rest = line.partition("@")
            pins.setdefault(action, set()).add(rest)
    assert pins, "no third-party action found"
    assert {a: v for a, v in pins.items() if len(v) > 1} == {}, "one action pinned to different commits"


def test_least_permissions_everywhere() -> None:
    for name, workflow in _workflows().items():
        assert workflow.get("permissions") == {}, f"{name}: workflow-level permissions must be {{}}"
        assert not {"pull_request_target", "workflow_run"} & set(_triggers(workflow)), name
        for job_id, job in workflow["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{name}:{job_id} declares no permissions (or read-all/write-all)"
            writes = {k for k, v in perms.items() if v == "write"}
            assert writes <= {"id-token"}, f"{name}:{job_id} writes {writes}"
            if job.get("secrets") is not None:
                assert job["secrets"] != "inherit", f"{name}:{job_id} inherits every secret"
    test = _load("pulumi.yml")["jobs"]["test"]
    assert test["permissions"] == {"contents": "read"}
    assert "environment" not in test


def test_oidc_and_secrets_only_in_environment_bound_jobs() -> None:
    workflows = _workflows()
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            text = yaml.safe_dump(job)
            oidc = job["permissions"].get("id-token") == "write"
            if (called := _called(job)) is not None:
                # A caller grants the token to the called workflow, whose every job must be environment-bound.
                inner = workflows[called]["jobs"].values()
                assert all("environment" in j for j in inner), f"{called}: a job without environment"
                assert not oidc or all(j["permissions"].get("id-token") == "write" for j in inner), called
                continue
            if oidc or "secrets." in text or "aws-actions/configure-aws-credentials" in text:
                assert "environment" in job, f"{name}:{job_id} gets cloud credentials without an environment"


def test_every_checkout_drops_its_token() -> None:
    checkouts = [
        (name, job_id, step)
        for name, workflow in _workflows().items()
        for job_id, step in _steps(workflow)
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    for name, job_id, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, f"{name}:{job_id}"


def test_pull_requests_test_everything_offline_and_preview_dev_only() -> None:
    workflow = _load("pulumi.yml")
    assert set(_triggers(workflow)) == {"pull_request", "push"}
    assert _triggers(workflow)["push"] == {"branches": ["main"]}
    runs = [s.get("run") for s in workflow["jobs"]["test"]["steps"]]
    assert {"make test", "make preview-all", "make lint"} <= set(runs)
    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "test"
    assert "github.event_name == 'pull_request'" in preview["if"]
    assert "head.repo.full_name == github.repository" in preview["if"], "fork PRs must not request OIDC tokens"
    assert "strategy" not in preview
    assert _called(preview) == "pulumi-preview.yml"
    assert preview["with"] == {"stack": "dev", "drift": False}
    # The preview environments are not the deploy environments: a pull request never gets a deploy role.
    job = next(iter(_load("pulumi-preview.yml")["jobs"].values()))
    assert job["environment"] == "${{ inputs.drift && 'drift' || 'preview' }}-${{ inputs.stack }}"


# --- the trust boundary: which code runs with which environment's credentials ------------------------------
#
# Every job is evaluated (its `if:` expressions included) in each situation a workflow can start in, and the
# GitHub environments it would be bound to are collected. Code that is not on main (a pull request from a branch of
# this repository, a run started by hand on a branch) may reach `preview-dev` only; the staging and prod
# environments, preview or deploy, only the code on main. (GitHub enforces it too, with the environments' branch
# rules: README "Setting it up".)

PR_ENVIRONMENTS = {"preview-dev"}
REPOSITORY = "acme/agent-platform"
EVENTS: dict[str, dict[str, str]] = {
    "pull request from a branch": {
        "github.event_name": "pull_request",
        "github.ref": "refs/pull/7/merge",
        "github.event.pull_request.head.repo.full_name": REPOSITORY,
    },
    "pull request from a fork": {
        "github.event_name": "pull_request",
        "github.ref": "refs/pull/8/merge",
        "github.event.pull_request.head.repo.full_name": "mallory/agent-platform",
    },
    "push to main": {"github.event_name": "push", "github.ref": "refs/heads/main"},
    "push to a branch": {"github.event_name": "push", "github.ref": "refs/heads/feature"},
    "schedule": {"github.event_name": "schedule", "github.ref": "refs/heads/main"},
    "run by hand on main": {"github.event_name": "workflow_dispatch", "github.ref": "refs/heads/main"},
    "run by hand on a branch": {"github.event_name": "workflow_dispatch", "github.ref": "refs/heads/feature"},
}
_NAME = re.compile(r"\b(?:github|inputs|matrix)(?:\.[A-Za-z_][A-Za-z0-9_-]*)+")


def _expression(text: str | bool | None, context: dict[str, Any]) -> Any:
    """A GitHub Actions expression of the kinds the workflows use (==, !=, &&, ||, !, parentheses, 'strings',
    context names), evaluated in ``context``; a missing `if:` is true."""
    if text is None:
        return True
    if isinstance(text, bool):
        return text
    body = text.strip()
    if body.startswith("${{") and body.endswith("}}"):
        body = body[3:-2]
    assert not re.search(r"\b(?:contains|startsWith|endsWith|format|fromJSON|always|success|failure)\(", body), body
    python = _NAME.sub(lambda m: f"ctx[{m.group(0)!r}]", body)
    python = python.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    return eval(python, {"__builtins__": {}}, {"ctx": _Context(context)})  # our own workflow files only


class _Context(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""  # GitHub: a missing property is null, which compares equal to nothing here


def _substitute(template: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{\s*(.+?)\s*\}\}", lambda m: str(_expression(m.group(1), context)), template)


def _environments(event: dict[str, str], trigger: str) -> dict[str, set[str]]:
    """workflow:job -> the environments its jobs (or the jobs of the workflow it calls) would be bound to."""
    workflows = _workflows()
    reached: dict[str, set[str]] = {}
    for name, workflow in workflows.items():
        if trigger not in _triggers(workflow):
            continue
        context: dict[str, Any] = {**event, "github.repository": REPOSITORY}
        for job_id, job in workflow["jobs"].items():
            matrix = job.get("strategy", {}).get("matrix", {})
            combos = [{f"matrix.{k}": v for k, v in zip(matrix, values, strict=True)} for values in _product(matrix)]
            for combo in combos or [{}]:
                ctx = {**context, **combo}
                if not _expression(job.get("if"), ctx):
                    continue
                envs = reached.setdefault(f"{name}:{job_id}", set())
                called = _called(job)
                if called is None:
                    if "environment" in job:
                        envs.add(_substitute(job["environment"], ctx))
                    continue
                inputs = {
                    f"inputs.{k}": _substitute(v, ctx) if isinstance(v, str) else v for k, v in job["with"].items()
                }
                for inner in workflows[called]["jobs"].values():
                    inner_ctx = {**context, **inputs}
                    if _expression(inner.get("if"), inner_ctx) and "environment" in inner:
                        envs.add(_substitute(inner["environment"], inner_ctx))
    return reached


def _product(matrix: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    combos: list[tuple[Any, ...]] = [()]
    for values in matrix.values():
        combos = [(*c, v) for c in combos for v in values]
    return combos if matrix else []


@pytest.mark.parametrize("situation", sorted(EVENTS))
def test_code_not_on_main_never_gets_more_than_the_dev_preview(situation: str) -> None:
    event = EVENTS[situation]
    trigger = event["github.event_name"]
    reached = set().union(*_environments(event, trigger).values())
    if event["github.ref"] != "refs/heads/main":
        assert reached <= PR_ENVIRONMENTS, f"{situation}: {sorted(reached - PR_ENVIRONMENTS)}"
    if situation == "pull request from a branch":
        assert reached == {"preview-dev"}  # and it does get the dev preview
    if situation == "pull request from a fork":
        assert reached == set()  # no OIDC token for forks: nothing environment-bound runs


def test_reviewed_code_previews_and_deploys_every_stack() -> None:
    on_main = set().union(*_environments(EVENTS["push to main"], "push").values())
    assert on_main == {*(f"preview-{s}" for s in STACKS if s != "dev"), *STACKS}
    drift = set().union(*_environments(EVENTS["schedule"], "schedule").values())
    assert drift == {f"drift-{s}" for s in STACKS}


def test_the_expression_evaluator_follows_github() -> None:
    ctx = {"github.event_name": "push", "github.ref": "refs/heads/main", "inputs.stack": "prod"}
    assert _expression("github.event_name == 'push' && github.ref == 'refs/heads/main'", ctx)
    assert not _expression("${{ github.event_name == 'pull_request' }}", ctx)
    assert _expression(
        "inputs.stack == 'dev' || (github.event_name != 'pull_request' && github.ref == 'refs/heads/main')", ctx
    )
    assert not _expression("!(inputs.stack == 'prod')", ctx)
    assert _substitute("${{ inputs.drift && 'drift' || 'preview' }}-x", {"inputs.drift": True}) == "drift-x"
    assert _substitute("${{ inputs.drift && 'drift' || 'preview' }}-x", {"inputs.drift": False}) == "preview-x"
    assert _substitute("preview-${{ inputs.stack }}", ctx) == "preview-prod"


def test_main_promotes_one_commit_dev_then_staging_then_prod() -> None:
    jobs = _load("pulumi.yml")["jobs"]
    previous = "test"
    for stack in PROMOTION:
        job = jobs[f"deploy-{stack}"]
        needs = [job["needs"]] if isinstance(job["needs"], str) else job["needs"]
        assert needs[0] == previous, f"deploy-{stack} must wait for {previous}"
        assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        assert _called(job) == "pulumi-deploy.yml"
        assert job["with"] == {"stack": stack}
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        previous = f"deploy-{stack}"
    assert sorted(PROMOTION) == STACKS
    # Staging's reviewers approve after the reviewed code's previews of staging and prod have run.
    assert "preview-reviewed" in jobs["deploy-staging"]["needs"]
    assert jobs["preview-reviewed"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"

    (deploy,) = _load("pulumi-deploy.yml")["jobs"].values()
    assert deploy["environment"] == "${{ inputs.stack }}", "each deploy is gated by the stack's environment"
    assert deploy["concurrency"] == {"group": "pulumi-deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    checkout = next(s for s in deploy["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ github.sha }}"
    (up,) = [s["run"] for s in deploy["steps"] if "pulumi up" in s.get("run", "")]
    assert "--policy-pack policies" in up
    assert "--yes" in up


def test_drift_detection_is_scheduled_and_never_changes_anything() -> None:
    workflows = _workflows()
    drift = workflows["drift.yml"]
    triggers = _triggers(drift)
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert triggers["schedule"]
    assert all(len(s["cron"].split()) == 5 for s in triggers["schedule"])
    (job,) = drift["jobs"].values()
    assert sorted(job["strategy"]["matrix"]["stack"]) == STACKS
    assert job["strategy"]["fail-fast"] is False
    assert job["with"] == {"stack": "${{ matrix.stack }}", "drift": True}

    reached = {"drift.yml", _called(job)}
    for name in reached:
        for _, step in _steps(workflows[name]):
            assert not MUTATING.search(step.get("run", "")), f"{name} changes a stack: {step['run']}"
            if step.get("uses", "").startswith("pulumi/actions@"):
                assert "command" not in step.get("with", {}), "pulumi/actions may only install the CLI here"
    for name, workflow in workflows.items():
        if name != "pulumi-deploy.yml":
            assert not any(MUTATING.search(s.get("run", "")) for _, s in _steps(workflow)), name


def _preview_script() -> str:
    (job,) = _load("pulumi-preview.yml")["jobs"].values()
    (script,) = [s["run"] for s in job["steps"] if "pulumi preview" in s.get("run", "")]
    return script


@pytest.mark.parametrize(
    ("drift", "exit_code", "expected_flags", "expected_heading"),
    [
        ("true", 255, ["--refresh", "--expect-no-changes"], "Drift check of `prod`: FAILED (exit 255)"),
        ("true", 0, ["--refresh", "--expect-no-changes"], "Drift check of `prod`: no drift"),
        ("false", 0, [], "Preview of `prod`: passed the policy pack"),
        ("false", 1, [], "Preview of `prod`: FAILED (exit 1)"),
    ],
)
def test_preview_step_fails_on_drift_and_writes_a_summary(
    tmp_path: Path, drift: str, exit_code: int, expected_flags: list[str], expected_heading: str
) -> None:
    """Run the workflow's own preview script with a recording `pulumi` first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    argv_log = tmp_path / "argv"
    fake = bindir / "pulumi"
    fake.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{argv_log}"\necho "~ aws:eks:Cluster changed"\nexit {exit_code}\n'
    )
    fake.chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "DRIFT": drift,
        "STACK": "prod",
        "PULUMI_STACK": "acme/agent-platform/prod",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    # The shell GitHub uses for `shell: bash`.
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _preview_script()],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == exit_code, result.stderr
    argv = argv_log.read_text().split()
    assert argv[0] == "preview"
    assert argv[argv.index("--stack") + 1] == "acme/agent-platform/prod"
    assert argv[argv.index("--policy-pack") + 1] == "policies"
    assert [f for f in ("--refresh", "--expect-no-changes") if f in argv] == expected_flags
    text = summary.read_text()
    assert expected_heading in text
    assert "aws:eks:Cluster changed" in text
