"""tools/shards.py through the real Automation API objects (LocalWorkspace, Stack, preview/up, the engine event log,
stack outputs and history parsing); only the Pulumi binary is replaced, by a scripted PulumiCommand (the CLI is not
on this machine): it answers the commands the Automation API sends, the way the CLI does, and records them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation import CommandResult
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

from tools.shards import ShardRunner, main, summary

PLATFORM = "organization/agent-platform/dev-shards"
CONTRACT = {"tenantContract": {"version": "1.0", "settings": {"serviceCidr": "172.21.0.0/16"}}}


class ScriptedCLI(auto.PulumiCommand):
    """The ``pulumi`` binary's side of the commands: ``failing`` stacks fail their preview/up with a CLI error."""

    def __init__(self, changes: dict[str, int], failing: dict[str, str] | None = None, delay: float = 0.05) -> None:
        self.command = "pulumi"  # no binary is run: PulumiCommand's own __init__ would call `pulumi version`
        self.version = VersionInfo.parse("3.200.0")  # before 3.205: the engine events go through a log file
        self.changes, self.failing, self.delay = changes, failing or {}, delay
        self.calls: list[list[str]] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()

    def run(self, args: list[str], *_: Any, **__: Any) -> Any:  # (args, cwd, env, on_output, on_error)
        args = list(args)
        with self.lock:
            self.calls.append(args)
        stack = args[args.index("--stack") + 1] if "--stack" in args else ""
        if args[0] in ("preview", "up"):
            return self._operation(args, stack)
        if args[:2] == ["stack", "output"]:
            outputs = CONTRACT if stack == PLATFORM else {}
            return CommandResult(json.dumps(outputs), "", 0)
        if args[:2] == ["stack", "history"]:
            entry = {
                "kind": "update",
                "startTime": "2026-12-06T10:00:00.000Z",
                "endTime": "2026-12-06T10:00:01.000Z",
                "message": "",
                "environment": {},
                "config": {},
                "result": "succeeded",
                "version": 2,
                "resourceChanges": self.changes,
            }
            return CommandResult(json.dumps([entry]), "", 0)
        return CommandResult("", "", 0)  # stack select

    def _operation(self, args: list[str], stack: str) -> Any:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            name = stack.rsplit("/", 1)[-1]
            if name in self.failing:
                raise create_command_error(CommandResult("", f"error: {self.failing[name]}\n", 255))
            if "--event-log" not in args:  # up asks for engine events only with an on_event callback
                return CommandResult("", "", 0)
            with open(args[args.index("--event-log") + 1], "a", encoding="utf-8") as f:
                f.write(json.dumps({"sequence": 1, "timestamp": 0, "summaryEvent": {"resourceChanges": self.changes}}))
                f.write("\n" + json.dumps({"sequence": 2, "timestamp": 0, "cancelEvent": {}}) + "\n")
            return CommandResult("", "", 0)
        finally:
            with self.lock:
                self.active -= 1


def runner(cli: ScriptedCLI, tmp_path: Path, concurrency: int = 2, policy_pack: Path | None = None) -> ShardRunner:
    (tmp_path / "Pulumi.yaml").write_text("name: tenant-shards\nruntime: python\n")
    return ShardRunner("organization", concurrency=concurrency, pulumi_command=cli, policy_pack=policy_pack,
                       work_dir=tmp_path)  # fmt: skip


def test_at_most_concurrency_operations_run_at_once(tmp_path: Path) -> None:
    cli = ScriptedCLI({"same": 20, "update": 1}, delay=0.1)
    outcomes = runner(cli, tmp_path, concurrency=2).run([f"s{i}" for i in range(6)], "preview")
    assert cli.peak == 2
    assert [o.stack for o in outcomes] == [f"s{i}" for i in range(6)]
    assert all(o.ok and o.changes == {"same": 20, "update": 1} for o in outcomes)
    previews = [c for c in cli.calls if c[0] == "preview"]
    assert sorted(c[c.index("--stack") + 1] for c in previews) == [f"organization/tenant-shards/s{i}" for i in range(6)]


def test_one_failure_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    cli = ScriptedCLI({"create": 3}, failing={"s1": "tenant 'a' is in shard s1 and in shard s0: keep one"})
    outcomes = runner(cli, tmp_path, concurrency=3).run(["s0", "s1", "s2"], "up")
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error == "error: tenant 'a' is in shard s1 and in shard s0: keep one"
    assert outcomes[0].changes == {"create": 3}  # from the update's history entry, parsed by the Automation API
    text = summary(outcomes, 1.0)
    assert "3 shards, up: 2 ok, 1 failed (s1); 6 to create" in text.splitlines()[-1]
    assert "  error: tenant 'a' is in shard s1" in text


def test_the_policy_pack_runs_with_the_platform_contract_facts(tmp_path: Path) -> None:
    """Every shard preview runs the pack, configured from its platform's tenantContract (read once)."""
    shards = Path(__file__).resolve().parent.parent / "tenants"
    (tmp_path / "Pulumi.yaml").write_text("name: tenant-shards\nruntime: python\n")
    cli = ScriptedCLI({"same": 5})
    run = ShardRunner("organization", pulumi_command=cli, policy_pack=Path("/packs/agent"), work_dir=shards)
    outcomes = run.run(["dev-a", "dev-b"], "preview")
    assert all(o.ok for o in outcomes)
    previews = [c for c in cli.calls if c[0] == "preview"]
    for call in previews:
        assert call[call.index("--policy-pack") + 1] == "/packs/agent"
        config = json.loads(Path(call[call.index("--policy-pack-config") + 1]).read_text())
        assert config == {"kata-dns": {"serviceCidrs": ["172.21.0.0/16"]}}
    outputs = [c for c in cli.calls if c[:2] == ["stack", "output"]]
    assert {c[c.index("--stack") + 1] for c in outputs} == {PLATFORM}
    assert len(outputs) == 2  # masked and plain, once for both shards


def test_a_bad_concurrency_or_op_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        runner(ScriptedCLI({}), tmp_path, concurrency=0)
    with pytest.raises(ValueError, match="op must be"):
        runner(ScriptedCLI({}), tmp_path).run(["s0"], "destroy")


def test_without_the_cli_the_tool_says_so(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["--stacks", "dev-a"]) == 2
    assert "the Pulumi CLI is not installed" in capsys.readouterr().err
