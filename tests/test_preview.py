"""The offline preview harness: build/<stack>/ contract, secret masking, policy pack through gRPC."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.config.reader import safe_load
from tests.conftest import program_result, skip_unrenderable
from tools import preview
from tools.program import PLACEHOLDER, ROOT

FIXTURE_PACK = ROOT / "tests" / "fixtures" / "violating_pack"


_BUILDS: dict[str, tuple[int, Path]] = {}


def build(stack: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """The preview of ``stack`` (on the session's program run) into a temporary build folder, once per module:
    ``make preview``'s exit code and the folder. The ``make preview`` entry point itself runs in ``violating_run``."""
    if stack not in _BUILDS:
        out = tmp_path_factory.mktemp("build") / stack
        report = preview.preview(stack, out, result=program_result(stack))
        _BUILDS[stack] = (1 if report.failed else 0), out
    return _BUILDS[stack]


def skip_when_unrenderable(out: Path) -> None:
    """Skip when the preview's render step could not render an install (one cause, reported by test_render.py)."""
    report = out / "render-report.json"
    findings = json.loads(report.read_text())["findings"] if report.is_file() else []
    skip_unrenderable(
        "; ".join(f"{f['origin']}: {f['message'][:300]}" for f in findings if f["key"] == "helm template")
    )


@pytest.fixture(scope="module")
def dev_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code, out = build("dev", tmp_path_factory)
    skip_when_unrenderable(out)
    assert code == 0
    return out


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def violating_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path]:
    """``make preview``'s entry point (``tools.preview.main``, in this process: the subprocess form is run by
    tests/test_config_errors.py) with a pack that forbids every VPC."""
    out = tmp_path_factory.mktemp("violating") / "dev"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = preview.main(["--stack", "dev", "--out", str(out), "--policy-pack", str(FIXTURE_PACK)])
    return Run(code, stdout.getvalue(), stderr.getvalue()), out


def test_build_holds_the_four_outputs_of_the_contract(dev_build: Path) -> None:
    resources = json.loads((dev_build / "resources.json").read_text())
    assert isinstance(resources, list)
    assert len(resources) > 20
    for r in resources:
        assert set(r) == {"urn", "type", "name", "parent", "provider", "inputs"}
        assert r["urn"].startswith("urn:pulumi:dev::agent-platform::")
    vpc = next(r for r in resources if r["type"] == "aws:ec2/vpc:Vpc")
    assert vpc["inputs"]["cidrBlock"] == "10.1.0.0/16"  # camelCase inputs as the engine receives them
    outputs = json.loads((dev_build / "outputs.json").read_text())
    assert outputs["clusterName"] == "agents-dev"
    assert isinstance(json.loads((dev_build / "policy-report.json").read_text()), list)
    manifests = sorted((dev_build / "manifests").glob("*.yaml"))
    assert manifests
    for path in manifests:
        obj = safe_load(path.read_text())
        assert {"apiVersion", "kind", "metadata"} <= set(obj), path.name
        assert path.name.startswith(obj["kind"] + "_")


def test_secrets_never_reach_the_build_folder_unmasked(dev_build: Path) -> None:
    for path in dev_build.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert PLACEHOLDER not in text, path
            assert "rrrrrrrrrrrrrrrr" not in text, path  # mocked random passwords
    outputs = json.loads((dev_build / "outputs.json").read_text())
    assert outputs["kubeconfig"] == "[secret]"
    resources = json.loads((dev_build / "resources.json").read_text())
    provider = next(r for r in resources if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == "[secret]"


def test_violation_from_a_test_pack_is_reported_through_grpc_and_fails_the_preview(
    violating_run: tuple[Run, Path],
) -> None:
    proc, out = violating_run
    assert proc.returncode == 1, proc.stderr
    report = json.loads((out / "policy-report.json").read_text())
    assert len(report) == 1
    (violation,) = report
    assert set(violation) == {"policy", "enforcementLevel", "urn", "message"}
    assert violation["policy"] == "no-vpcs"
    assert violation["enforcementLevel"] == "mandatory"
    assert violation["urn"].endswith("aws:ec2/vpc:Vpc::network-vpc")
    assert "VPC network-vpc: this test pack forbids every VPC (10.1.0.0/16)." in violation["message"]


def test_policy_config_can_downgrade_the_violation(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    config = {"no-vpcs": "advisory"}
    report = preview.preview("dev", out, FIXTURE_PACK, config, result=program_result("dev"))
    skip_when_unrenderable(out)
    assert not report.failed
    assert json.loads((out / "policy-report.json").read_text())[0]["enforcementLevel"] == "advisory"


def test_make_preview_entry_point_exits_non_zero_and_prints_a_summary(
    violating_run: tuple[Run, Path],
) -> None:
    proc, out = violating_run
    skip_when_unrenderable(out)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    steps = [line for line in lines if line.startswith("[")]
    # One line per step, each ending with its outcome and time: never silent on a cold run.
    assert [line.split(":")[0] for line in steps] == [f"[{n}/5] dev" for n in range(1, 6)], steps
    assert all(line.endswith(" s)") for line in steps), steps
    assert (
        "1 violation (" in steps[4]
    )  # the pack's verdict comes last (AnalyzeStack runs while the installs are checked)
    assert "[mandatory] no-vpcs: network-vpc" in proc.stdout
    # Then a short summary: the build folder and its reports, and one line of counts (no table of types).
    assert lines[-2].startswith(f"{out}/: policy-report.json (1 violation), render-report.json"), lines[-2]
    assert lines[-1].startswith("dev: ")
    assert "1 mandatory and 0 advisory violations" in lines[-1]
    assert len(lines) <= 10, lines


def test_unknown_stack_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert preview.main(["--stack", "qa"]) == 2
    assert "no stack file Pulumi.qa.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_previews_without_any_violation(stack: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real pack through gRPC on every stack: not one violation, advisory ones included (the egress
    allowlist, for one, holds on every stack; tests/test_egress.py checks the open-mode switch)."""
    code, out = build(stack, tmp_path_factory)
    skip_when_unrenderable(out)
    assert code == 0
    assert json.loads((out / "policy-report.json").read_text()) == []


def test_resources_analyzed_as_they_register_get_the_verdicts_of_one_batch() -> None:
    """The preview streams each registration to the pack (PreviewSession, as the CLI does); the violations, and
    their order, are those of analyzing the same resources after the run (run_pack)."""
    from google.protobuf import struct_pb2

    from tools.analyzer import PolicyPackProcess, PreviewSession, run_pack
    from tools.engine import analyze_as_registered

    result = program_result("dev")
    config = {"no-vpcs": "advisory"}
    with PolicyPackProcess(FIXTURE_PACK, config) as pack:
        pack.configure()
        pack.configure_stack()
        session = PreviewSession(pack.client)
        add = analyze_as_registered(session)
        for r in result.registrations:
            properties = struct_pb2.Struct()
            properties.update(r.properties)
            add(r, properties)
        streamed = session.finish()()
    assert streamed
    assert streamed == run_pack(FIXTURE_PACK, preview.analyzer_resources(result), config)
