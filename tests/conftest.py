"""Shared fixtures: run the program under the mock engine once per stack and reuse the result."""

from __future__ import annotations

import pytest

from tools.program import ProgramResult, run_program

_CACHE: dict[str, ProgramResult] = {}


def program_result(stack: str) -> ProgramResult:
    """The registrations of the real program for ``stack`` (evaluated once per test session)."""
    if stack not in _CACHE:
        _CACHE[stack] = run_program(stack)
    return _CACHE[stack]


@pytest.fixture(scope="session")
def dev() -> ProgramResult:
    return program_result("dev")


@pytest.fixture(scope="session", params=["dev", "staging", "prod"])
def each_stack(request: pytest.FixtureRequest) -> ProgramResult:
    return program_result(request.param)
