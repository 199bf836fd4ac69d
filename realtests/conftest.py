"""The lab (real LiteLLM, PostgreSQL, Redis on 127.0.0.1) is prepared once for the whole session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from realtests import lab


@pytest.fixture(scope="session")
def postgres() -> Iterator[None]:
    if not lab.SHARED.exists():
        pytest.skip(f"{lab.SHARED} is absent (the LiteLLM lab setup)")
    for tool in ("redis-server", "redis-cli", "openssl", "busybox", "unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs what make test-litellm needs)")
    was_running = lab.prepare()
    yield
    if not was_running:
        lab.stop_postgres()
