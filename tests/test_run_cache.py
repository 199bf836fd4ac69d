"""The on-disk cache of program runs (tools/run_cache.py) is keyed by every file a run reads: a run served from it
is the run the current sources would make."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tools.program import ROOT, run_program
from tools.run_cache import key_files

OPENED: list[Path] | None = None  # set while a run is watched


def _watch(event: str, args: tuple[Any, ...]) -> None:
    if OPENED is not None and event == "open" and isinstance(args[0], str | Path):
        OPENED.append(Path(args[0]).resolve())


def test_every_file_a_run_reads_or_imports_is_in_the_key() -> None:
    global OPENED  # noqa: PLW0603 (the audit hook's switch)
    # Added here, not at collection: audit hooks cannot be removed, and every worker collects this module.
    sys.addaudithook(_watch)  # records only while OPENED is a list
    before = set(sys.modules)  # what this worker imported already (the engine's own modules: keyed as tools/)
    OPENED = []
    try:
        run_program("dev-shards")  # the split's platform: reads the shard project's stack files too
    finally:
        opened, OPENED = OPENED, None
    imported = {
        Path(module.__file__).resolve()
        for name in set(sys.modules) - before
        if getattr(module := sys.modules[name], "__file__", None)
    }
    tests = ROOT / "tests"  # this test's own files (the warnings module reads their lines)
    ours = {
        p
        for p in {*opened, *imported}
        if p.is_file() and p.is_relative_to(ROOT.parent) and not p.is_relative_to(tests) and "venv" not in p.parts
    }
    keyed = {p.resolve() for p in key_files()}
    assert ours, "the watch saw nothing"
    assert sorted(map(str, ours - keyed)) == []
