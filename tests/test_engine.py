"""The offline engine: the mock answers' fast path (tools/program.py) and the engine's process (tools/engine.py),
which records what the program registers, streams it to the pack and writes build/, beside the program's process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

from tests.conftest import program_result
from tools import preview
from tools.analyzer import PolicyPackError
from tools.build import write_build
from tools.engine import EngineError
from tools.mocks import PlatformMocks
from tools.program import ROOT, SECRET_SIG, OnRegister, ProgramResult, RecordingMonitor, run_program
from tools.split import SHARDS, references

FIXTURE_PACK = ROOT / "tests" / "fixtures" / "violating_pack"


class _Comparing(RecordingMonitor):
    """Answers as the run does and also asks MockMonitor, the SDK's own, for every request."""

    def __init__(self, mocks: PlatformMocks, on_register: OnRegister | None) -> None:
        super().__init__(mocks, on_register)
        self.answers: list[tuple[str, Any, Any]] = []

    def _answer(self, request: Any, properties: dict[str, Any]) -> Any:
        fast = super()._answer(request, properties)
        sdk = MockMonitor.RegisterResource(self, request)
        self.answers.append((request.type, *(json_format.MessageToDict(r) for r in (fast, sdk))))
        return fast


@pytest.mark.parametrize("stack", ["dev", "dev-a"])
def test_the_mock_answers_are_the_sdk_mock_monitors(stack: str) -> None:
    """Plain requests skip MockMonitor's deserialize and serialize: the answers are still exactly its answers (the
    URN, the id and every output), secrets, unknowns and all."""
    monitors: list[_Comparing] = []

    def engine(mocks: PlatformMocks, on_register: OnRegister | None) -> _Comparing:
        monitors.append(_Comparing(mocks, on_register))
        return monitors[0]

    if stack == "dev":
        run_program(stack, engine=engine)
    else:
        run_program(stack, root=SHARDS, stack_references=references(SHARDS, stack), engine=engine)
    (monitor,) = monitors
    assert len(monitor.answers) > 20
    assert [(t, fast) for t, fast, sdk in monitor.answers if fast != sdk] == []
    # Both paths ran: the secrets' requests take the SDK's (a Secret's stringData, a provider's kubeconfig).
    secret_types = {t for t, _, sdk in monitor.answers if SECRET_SIG in json.dumps(sdk)}
    assert "kubernetes:core/v1:Secret" in secret_types


def _fields(result: ProgramResult) -> list[dict[str, Any]]:
    """Every recorded field of every registration, by URN (threads may interleave registrations differently), its
    dependencies sorted (the SDK gathers them in a set: their order follows the process's string hashing)."""
    fields = []
    for r in sorted(result.registrations, key=lambda r: r.urn):
        entry = dataclasses.asdict(r)
        entry["dependencies"] = sorted(r.dependencies)
        entry["property_dependencies"] = {k: sorted(v) for k, v in r.property_dependencies.items()}
        fields.append(entry)
    return fields


@pytest.fixture(scope="module")
def engine_preview(tmp_path_factory: pytest.TempPathFactory) -> tuple[preview.Report, Path]:
    out = tmp_path_factory.mktemp("engine") / "dev"
    return preview.preview("dev", out, FIXTURE_PACK, {"no-vpcs": "advisory"}), out


def test_the_engine_process_records_what_the_program_registers(
    engine_preview: tuple[preview.Report, Path], tmp_path: Path
) -> None:
    """The preview's engine runs in its own process: it records the same registrations as the in-process run, and
    the build it writes is the one the in-process run's registrations give."""
    report, out = engine_preview
    in_process = program_result("dev")
    assert _fields(report.result) == _fields(in_process)
    write_build(in_process, tmp_path)
    resources = {path: sorted(json.loads((path / "resources.json").read_text()), key=str) for path in (out, tmp_path)}
    assert resources[out] == resources[tmp_path]
    manifests = {path: sorted(p.name for p in (path / "manifests").iterdir()) for path in (out, tmp_path)}
    assert manifests[out] == manifests[tmp_path]
    for name in manifests[out]:
        assert (out / "manifests" / name).read_text() == (tmp_path / "manifests" / name).read_text(), name
    assert not list(out.parent.glob(".*.partial"))


def test_the_engine_streams_every_resource_to_the_pack(engine_preview: tuple[preview.Report, Path]) -> None:
    report, out = engine_preview
    assert [(v.policy, v.enforcement_level, v.urn.rsplit("::", 1)[-1]) for v in report.violations] == [
        ("no-vpcs", "advisory", "network-vpc")
    ]
    assert json.loads((out / "policy-report.json").read_text())[0]["policy"] == "no-vpcs"


def test_a_failed_run_leaves_the_previous_build(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A shard whose configuration fails inside its program: the error is the program's, the engine stops quietly
    and the build folder keeps what the last good preview wrote."""
    out = tmp_path / "dev-a"
    (out / "manifests").mkdir(parents=True)
    (out / "resources.json").write_text("[]\n")
    with pytest.raises(pulumi.RunError, match=r"tenants\[0\].name"):
        preview.preview("dev-a", out, root=SHARDS, overrides={"agent-platform:tenants": [{"name": "Bad Name"}]})
    assert (out / "resources.json").read_text() == "[]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-a"]
    assert "Traceback" not in capfd.readouterr().err


def test_an_engine_failure_is_reported_with_its_cause(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EngineError, match="NotADirectoryError|FileExistsError"):
        preview.preview("dev", blocker / "dev")


def test_a_failing_policy_stops_the_preview_with_the_packs_error(tmp_path: Path) -> None:
    """A policy that raises: the preview stops with the pack's error and the tail of its stderr, not the engine's
    traceback."""
    with pytest.raises(PolicyPackError, match=r"Analyze failed") as caught:
        preview.preview("dev", tmp_path / "dev", ROOT / "tests" / "fixtures" / "broken_pack")
    message = str(caught.value)
    assert "this test pack fails on every VPC (network-vpc)" in message
    assert "--- pack stderr ---" in message
    assert "tools/engine.py" not in message
