"""Preview or update every tenant shard with Pulumi's Automation API: ``python -m tools.shards --op preview``.

Each shard stack (``tenants/Pulumi.<stack>.yaml``) runs through ``pulumi.automation`` (a LocalWorkspace in
tenants/, the stack ``<org>/tenant-shards/<stack>``) with the policy pack and the pack configuration its platform's
contract implies; at most ``--concurrency`` at a time; one failure never stops the others; one summary at the end
(exit 1 when any failed). The Pulumi CLI must be installed (the Automation API drives it). docs/shards.md#running-many-shards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from components.config.reader import safe_load
from components.config.shards import PLATFORM_STACK_KEY, SHARD_PROJECT
from tools.split import SHARDS, policy_config, shard_stacks

OPS = ("preview", "up")
CHANGE_KINDS = ("create", "update", "replace", "delete", "same")


@dataclass
class Outcome:
    stack: str
    op: str
    ok: bool
    seconds: float
    changes: dict[str, int] = field(default_factory=dict)
    error: str = ""


def platform_stack_of(stack: str) -> str:
    """The platform stack a shard's stack file names."""
    config = safe_load((SHARDS / f"Pulumi.{stack}.yaml").read_text())["config"]
    return str(config[PLATFORM_STACK_KEY])


def first_error_line(error: BaseException) -> str:
    """The CLI's own error line (``error: ...``) out of a CommandError, else the exception's first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line[line.index("error:") :] for line in lines if "error:" in line]  # CommandError: " stderr: error: ..."
    return (errors or lines or [type(error).__name__])[-1][:300]


class ShardRunner:
    """Runs one operation over many shard stacks, ``concurrency`` at a time."""

    def __init__(
        self,
        org: str,
        *,
        concurrency: int = 2,
        pulumi_command: auto.PulumiCommand | None = None,
        policy_pack: Path | None = None,
        work_dir: Path = SHARDS,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.org, self.concurrency, self.command = org, concurrency, pulumi_command
        self.policy_pack, self.work_dir, self.echo = policy_pack, work_dir, echo
        self._configs: dict[str, str] = {}
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="shard-policy-")

    def _options(self) -> auto.LocalWorkspaceOptions:
        return auto.LocalWorkspaceOptions(work_dir=str(self.work_dir), pulumi_command=self.command)

    def pack_config(self, platform: str) -> str:
        """A pack configuration file with the facts of ``platform``'s contract (once per platform stack)."""
        with self._lock:
            if platform not in self._configs:
                stack = auto.select_stack(stack_name=platform, work_dir=str(self.work_dir), opts=self._options())
                outputs = {name: value.value for name, value in stack.outputs().items()}
                config = policy_config({platform: {"outputs": outputs}}) or {}
                path = Path(self._tmp.name) / f"{len(self._configs)}.json"
                path.write_text(json.dumps(config))
                self._configs[platform] = str(path)
            return self._configs[platform]

    def run_one(self, stack: str, op: str) -> Outcome:
        started = time.monotonic()
        qualified = f"{self.org}/{SHARD_PROJECT}/{stack}"
        try:
            target = auto.select_stack(stack_name=qualified, work_dir=str(self.work_dir), opts=self._options())
            packs: dict[str, Any] = {}
            if self.policy_pack is not None:
                packs = {
                    "policy_packs": [str(self.policy_pack)],
                    "policy_pack_configs": [self.pack_config(platform_stack_of(stack))],
                }
            if op == "preview":
                changes = target.preview(**packs).change_summary
            else:
                summary = target.up(**packs).summary
                changes = summary.resource_changes or {}
            outcome = Outcome(stack, op, True, 0.0, {k: int(v) for k, v in changes.items()})
        except Exception as error:  # noqa: BLE001 - every failure is one line of the summary, the others go on
            outcome = Outcome(stack, op, False, 0.0, error=first_error_line(error))
        outcome.seconds = round(time.monotonic() - started, 2)
        if self.echo:
            self.echo(f"{stack}: {op} {'ok' if outcome.ok else 'FAILED'} ({outcome.seconds} s)\n")
        return outcome

    def run(self, stacks: Sequence[str], op: str) -> list[Outcome]:
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}")
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="shard") as pool:
            return list(pool.map(lambda s: self.run_one(s, op), stacks))


def summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    """One line per shard, then the totals."""
    lines = [f"{'shard':<24} {'result':<7} " + " ".join(f"{k:>7}" for k in CHANGE_KINDS) + f" {'s':>7}"]
    for o in outcomes:
        counts = " ".join(f"{o.changes.get(k, 0):>7}" for k in CHANGE_KINDS)
        lines.append(f"{o.stack:<24} {'ok' if o.ok else 'FAILED':<7} {counts} {o.seconds:>7}")
        if o.error:
            lines.append(f"  {o.error}")
    failed = [o.stack for o in outcomes if not o.ok]
    totals = {k: sum(o.changes.get(k, 0) for o in outcomes) for k in CHANGE_KINDS}
    changed = ", ".join(f"{v} to {k}" for k, v in totals.items() if v and k != "same") or "no changes"
    op = outcomes[0].op if outcomes else "run"
    which = f" ({', '.join(failed)})" if failed else ""
    lines.append(
        f"{len(outcomes)} shards, {op}: {len(outcomes) - len(failed)} ok, {len(failed)} failed{which}; "
        f"{changed}; {seconds:.1f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=OPS, default="preview")
    parser.add_argument("--org", default="organization", help="Pulumi organization of the shard stacks")
    parser.add_argument("--stacks", nargs="+", help="shard stacks (default: every tenants/Pulumi.<stack>.yaml)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--policy-pack", type=Path, default=Path(__file__).resolve().parent.parent / "policies")
    args = parser.parse_args(argv)
    stacks = args.stacks or shard_stacks()
    started = time.monotonic()
    try:
        command = auto.PulumiCommand()  # one CLI for every workspace (its version is checked once)
    except FileNotFoundError:
        print("error: the Pulumi CLI is not installed (the Automation API drives it)", file=sys.stderr)
        return 2
    runner = ShardRunner(
        args.org,
        concurrency=args.concurrency,
        pulumi_command=command,
        policy_pack=args.policy_pack,
        echo=lambda line: print(line, end="", flush=True),
    )
    outcomes = runner.run(stacks, args.op)
    print(summary(outcomes, time.monotonic() - started))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
