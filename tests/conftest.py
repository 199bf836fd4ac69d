"""Shared fixtures: each program run under the mock engine happens once per test session.

A run is keyed by stack, config overrides and the program evaluated (the project's ``__main__`` unless a test
builds a smaller one), so every test module asking for the same run gets the same ``ProgramResult``; runs of the
project's program are also cached on disk for the other worker and later sessions (tools/run_cache.py).
Tests treat results as read-only. Runs expected to fail (config errors) call ``run_program`` directly.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from tools.preview import kubernetes_version
from tools.program import ProgramResult, run_program
from tools.render import Rendered, render_all
from tools.run_cache import cached_run

# Binaries some tests run for real, and the Debian package of each (.ci/run installs them; without one, the tests that
# need it skip and say so in the -rs summary).
DEBIAN_TOOLS = {
    "squid": "squid",
    "nginx": "nginx",
    "mtail": "mtail",
    "openssl": "openssl",
    "curl": "curl",
    "promtool": "prometheus",
}


def missing_debian_packages() -> list[str]:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return sorted({package for tool, package in DEBIAN_TOOLS.items() if shutil.which(tool, path=search) is None})


def pytest_sessionstart(session: pytest.Session) -> None:
    """One line before the first test: which Debian packages are missing, so the skips that follow are expected."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller reports
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    missing = missing_debian_packages()
    line = (
        f"Debian packages missing: {' '.join(missing)} - the tests that run them skip "
        f"(apt-get install {' '.join(missing)}; .ci/run installs them)"
        if missing
        else f"Debian packages the tests run for real: all present ({', '.join(sorted(set(DEBIAN_TOOLS.values())))})"
    )
    if reporter is not None:
        reporter.write_line(line)


# Every optional sandbox feature on (kata-fc with kata-monitor, gVisor, the managed Kata group): one run that the
# tests of any one of them share.
FEATURES = {f"agent-platform:{key}": True for key in ("kataFirecracker", "gvisor", "kataManagedNodeGroup")}

_RUNS: dict[tuple[str, str, Callable[[], Any] | None], ProgramResult] = {}
_RENDERS: dict[tuple[str, str], list[Rendered]] = {}


def program_result(
    stack: str, overrides: dict[str, Any] | None = None, program: Callable[[], Any] | None = None
) -> ProgramResult:
    """The registrations of ``program`` (default: the real program) for ``stack`` with config ``overrides``."""
    key = (stack, json.dumps(overrides or {}, sort_keys=True), program)
    if key not in _RUNS:
        # The project's program: shared with the other workers and later sessions (tools/run_cache.py).
        _RUNS[key] = run_program(stack, overrides, program=program) if program else cached_run(stack, overrides)
    return _RUNS[key]


RENDER_REPORT = "tests/test_render.py::test_every_install_renders"  # where an install that cannot render is reported


def all_renders(stack: str, overrides: dict[str, Any] | None = None) -> list[Rendered]:
    """Every third-party install of ``program_result(stack, overrides)`` rendered with the vendored charts, those
    Helm refused included (``Rendered.error``); raises ``RenderUnavailable`` without ../shared: callers skip first."""
    key = (stack, json.dumps(overrides or {}, sort_keys=True))
    if key not in _RENDERS:
        result = program_result(stack, overrides)
        _RENDERS[key] = render_all(result, kubernetes_version(result))
    return _RENDERS[key]


def unrenderable(renders: list[Rendered]) -> str:
    """The installs Helm refused to render, with the first line of why ("" when every one rendered)."""
    return "; ".join(f"{r.install.label}: {r.error.strip().splitlines()[0][:300]}" for r in renders if r.error)


def skip_unrenderable(cause: str) -> None:
    """One cause, reported once (RENDER_REPORT): the tests that need the install skip, naming it."""
    if cause:
        pytest.skip(f"cannot render {cause} (reported by {RENDER_REPORT})")


def rendered_installs(stack: str, overrides: dict[str, Any] | None = None) -> list[Rendered]:
    """``all_renders``, skipping the calling test when an install cannot be rendered."""
    renders = all_renders(stack, overrides)
    skip_unrenderable(unrenderable(renders))
    return renders


@pytest.fixture(scope="session")
def dev() -> ProgramResult:
    return program_result("dev")


@pytest.fixture(scope="session", params=["dev", "staging", "prod"])
def each_stack(request: pytest.FixtureRequest) -> ProgramResult:
    return program_result(request.param)
