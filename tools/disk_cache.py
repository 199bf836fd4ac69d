"""A folder of cache entries shared by concurrent processes (test workers, previews) and later sessions.

Entries are keyed by a hash of everything that determines them, written atomically, and an expensive entry is
computed by one process while the others wait on its lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def cache_lock(folder: Path, key: str) -> Iterator[None]:
    """Hold ``key``'s lock file: one process computes an expensive entry while the others wait for it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{key}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def cache_write(path: Path, data: str | bytes) -> None:
    """Write an entry atomically: a reader sees the whole entry or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.partial")
    if isinstance(data, bytes):
        partial.write_bytes(data)
    else:
        partial.write_text(data)
    os.replace(partial, path)
