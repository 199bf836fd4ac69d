"""The policy pack process shared by the gRPC tests of every module here: started once for the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.policy_cases import PACK_DIR
from tools.analyzer import PolicyPackProcess


@pytest.fixture(scope="session")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, project="agent-platform", stack="test") as process:
        process.configure()
        yield process


@pytest.fixture
def reconfigure(pack: PolicyPackProcess) -> Iterator[Any]:
    """Configure the shared pack with a user config for one test, then restore the defaults."""

    def apply(config: dict[str, Any]) -> None:
        pack.config = config
        pack.configure()

    yield apply
    pack.config = {}
    pack.configure()
