"""The gVisor tier: its own Karpenter pool (no nested virtualization, Graviton allowed), runsc and its shim
installed at boot from a pinned release with verified checksums, and a RuntimeClass that only lands there."""

from __future__ import annotations

import email
import hashlib
import http.server
import os
import platform
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components import gvisor
from tests.conftest import program_result
from tests.tokens import NODE_CLASS, NODE_POOL, RUNTIME_CLASS
from tools.program import ProgramResult


@pytest.fixture(scope="module")
def with_gvisor() -> ProgramResult:
    return program_result("dev", {"agent-platform:gvisor": True})


def parts(user_data: str) -> dict[str, str]:
    message = email.message_from_string(user_data)
    return {p.get_content_type(): p.get_payload() for p in message.get_payload()}


def test_gvisor_pool_is_its_own_and_needs_no_nested_virtualization(with_gvisor: ProgramResult) -> None:
    pool = with_gvisor.named(NODE_POOL, "karpenter-gvisor-nodepool").inputs["spec"]["template"]
    assert pool["metadata"]["labels"] == {"workload-type": "gvisor"}
    assert pool["spec"]["taints"] == [{"key": "gvisor", "value": "true", "effect": "NoSchedule"}]
    requirements = {r["key"]: r["values"] for r in pool["spec"]["requirements"]}
    assert requirements["karpenter.k8s.aws/instance-family"] == ["m7g", "c7g", "m7i", "c7i"]
    assert requirements["kubernetes.io/arch"] == ["amd64", "arm64"]  # Graviton families run arm64
    assert pool["spec"]["nodeClassRef"]["name"] == "gvisor"
    node_class = with_gvisor.named(NODE_CLASS, "karpenter-gvisor-nodeclass").inputs["spec"]
    assert "cpuOptions" not in node_class
    assert node_class["metadataOptions"]["httpPutResponseHopLimit"] == 1


def test_runtime_class_schedules_only_onto_the_gvisor_pool(with_gvisor: ProgramResult) -> None:
    (rc,) = [r.inputs for r in with_gvisor.of_type(RUNTIME_CLASS) if r.inputs["metadata"]["name"] == "gvisor"]
    assert rc["handler"] == "runsc"
    pool = with_gvisor.named(NODE_POOL, "karpenter-gvisor-nodepool").inputs["spec"]["template"]
    assert rc["scheduling"]["nodeSelector"] == pool["metadata"]["labels"]
    (toleration,) = rc["scheduling"]["tolerations"]
    (taint,) = pool["spec"]["taints"]
    assert (toleration["key"], toleration["value"], toleration["effect"]) == (
        taint["key"],
        taint["value"],
        taint["effect"],
    )


def test_node_user_data_installs_runsc_and_registers_the_runtime(with_gvisor: ProgramResult) -> None:
    user_data = with_gvisor.named(NODE_CLASS, "karpenter-gvisor-nodeclass").inputs["spec"]["userData"]
    found = parts(user_data)
    node_config = yaml.safe_load(found["application/node.eks.aws"])
    containerd = tomllib.loads(node_config["spec"]["containerd"]["config"])
    runtime = containerd["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runsc"]
    assert runtime == {"runtime_type": "io.containerd.runsc.v1"}
    script = found["text/x-shellscript"]
    assert "/20240729.0/" in script
    assert 'sha512sum -c "$binary.sha512"' in script
    assert "runsc containerd-shim-runsc-v1" in script


def test_default_stacks_have_no_gvisor_pool() -> None:
    dev = program_result("dev")
    assert not [r for r in dev.of_type(NODE_POOL) if "gvisor" in r.name]


# --- the install script, run for real against a local release server ------------------------------------


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A gVisor-like release tree on 127.0.0.1: <release>/<arch>/<binary> and <binary>.sha512."""
    root = tmp_path / "releases"
    folder = root / "20240729.0" / platform.machine()
    folder.mkdir(parents=True)
    for binary in gvisor.BINARIES:
        body = f"#!/bin/sh\necho {binary}\n".encode()
        (folder / binary).write_bytes(body)
        (folder / f"{binary}.sha512").write_text(f"{hashlib.sha512(body).hexdigest()}  {binary}\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()


def run_install(url: str, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess[str]:
    monkeypatch.setattr(gvisor, "RELEASES", url)
    env = {**os.environ, "GVISOR_BIN_DIR": str(bin_dir)}
    script = gvisor.install_script("20240729.0")
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_install_script_installs_verified_binaries(release_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url, _ = release_server
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = run_install(url, bin_dir, monkeypatch)
    assert done.returncode == 0, done.stderr
    for binary in gvisor.BINARIES:
        assert os.access(bin_dir / binary, os.X_OK)


def test_install_script_refuses_a_tampered_binary(release_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url, folder = release_server
    (folder / "runsc").write_bytes(b"#!/bin/sh\necho evil\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = run_install(url, bin_dir, monkeypatch)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
    assert not list(bin_dir.iterdir())  # nothing installed
