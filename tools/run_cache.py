"""Runs of the project's program under the mock engine, cached on disk for the test suite.

A run's registrations depend only on the stack's config, the overrides, the sources the program and the mock engine
read and the locked dependencies, so the key hashes all of them: editing a component, a stack file, the mocks or
uv.lock is a new key. Test workers share the folder (one computes a run while the others wait for it), and a later
session reuses what nothing has changed since. Results are read-only.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import sys
from pathlib import Path
from typing import Any

from tools.disk_cache import cache_key, cache_lock, cache_write
from tools.program import ROOT, ProgramResult, run_program

CACHE_DIR = ROOT / "build" / ".program-cache"
# What a run reads: the program, its components, the shard project and stack files (the split's references), the
# offline engine, the lock file, and the chart catalog the version checks read.
SOURCES = ("__main__.py", "Pulumi.yaml", "uv.lock", "components", "tenants", "tools")
STACK_FILES = "Pulumi.*.yaml"
SHARED_CATALOG = ROOT.parent / "shared" / "charts" / "catalog.json"


def key_files() -> list[Path]:
    """Every file a run can read: the cache key hashes them."""
    files = [*ROOT.glob(STACK_FILES), SHARED_CATALOG]
    for source in SOURCES:
        path = ROOT / source
        files.extend(sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts))
        if path.is_file():
            files.append(path)
    return sorted(p for p in files if p.is_file())


@functools.cache
def sources_digest() -> str:
    """One hash of every file a run can read (path and content) and the interpreter's version."""
    digest = hashlib.sha256(sys.version.encode())
    for path in key_files():
        digest.update(f"\0{path.relative_to(ROOT.parent)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_run(stack: str, overrides: dict[str, Any] | None = None) -> ProgramResult:
    """``run_program(stack, overrides)``, from the cache when the same run was made with the same sources."""
    key = cache_key(sources_digest(), stack, overrides or {})
    entry = CACHE_DIR / f"{key}.pickle"
    with cache_lock(CACHE_DIR, key):  # a concurrent worker making the same run: wait for its result
        if entry.is_file():
            return pickle.loads(entry.read_bytes())  # noqa: S301 (our own entries, keyed by content)
        result = run_program(stack, overrides)
        cache_write(entry, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return result
