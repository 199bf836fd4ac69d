"""The stacks a change touches, for CI to preview only those: ``python -m tools.affected --base origin/main``.

A platform stack file touches that stack and its shards (they read its contract); a shard's stack file touches the
shard and its platform (the platform serves its egress entries); documentation touches nothing; anything else
(the program, components, policies, tools, locks, project files) touches every stack. Without a base, or when git
cannot tell, every stack. docs/shards.md#offline-preview.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable
from pathlib import PurePosixPath

from components.config.reader import safe_load
from components.config.shards import PLATFORM_STACK_KEY
from tools.program import ROOT
from tools.split import SHARDS, shard_stacks

SHARD_DIR = SHARDS.relative_to(ROOT).as_posix()
DOCS = (".md",)


def platform_stacks() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


def shards_of() -> dict[str, str]:
    """Shard (``tenants/<stack>``) -> the platform stack it reads (its name without org and project)."""
    result = {}
    for stack in shard_stacks():
        config = safe_load((SHARDS / f"Pulumi.{stack}.yaml").read_text())["config"]
        result[f"{SHARD_DIR}/{stack}"] = str(config[PLATFORM_STACK_KEY]).rsplit("/", 1)[-1]
    return result


def every_stack() -> list[str]:
    return platform_stacks() + sorted(shards_of())


def affected(changed: Iterable[str]) -> list[str]:
    """The stacks to preview for ``changed`` paths (relative to the repository root), in ``every_stack`` order."""
    shards = shards_of()
    touched: set[str] = set()
    for name in changed:
        path = PurePosixPath(name)
        if path.suffix in DOCS:
            continue
        stack_file = path.name.startswith("Pulumi.") and path.suffix == ".yaml" and path.name != "Pulumi.yaml"
        stack = path.name[len("Pulumi.") : -len(".yaml")]
        if stack_file and path.parent == PurePosixPath("."):
            touched |= {stack, *(s for s, platform in shards.items() if platform == stack)}
        elif stack_file and path.parent == PurePosixPath(SHARD_DIR):
            shard = f"{SHARD_DIR}/{stack}"
            touched |= {shard, shards[shard]} if shard in shards else set(every_stack())
        else:
            return every_stack()
    return [s for s in every_stack() if s in touched]


def changed_files(base: str) -> list[str] | None:
    """Paths changed between ``base`` and the working tree (None when git cannot tell)."""
    try:
        out = subprocess.run(
            ["git", "diff", "--name-only", f"{base}...HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [line for line in out.splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="", help="git ref to compare with (empty: every stack)")
    args = parser.parse_args(argv)
    changed = changed_files(args.base) if args.base else None
    print("\n".join(every_stack() if changed is None else affected(changed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
