"""The gVisor tier: its own Karpenter pool (no nested virtualization, Graviton allowed), the release tarball (runsc,
its shim, the gvisor-bin/ sidecars) installed at boot after a check against the SHA-512 the program pins, and a
RuntimeClass that only lands there."""

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

from components.config.reader import safe_load
from components.runtime import gvisor
from tests.configs import config_error, default, parse_config
from tests.conftest import FEATURES, program_result
from tests.tokens import NODE_CLASS, NODE_POOL, RUNTIME_CLASS
from tools.program import ProgramResult


@pytest.fixture(scope="module")
def with_gvisor() -> ProgramResult:
    return program_result("dev", FEATURES)


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


def test_node_user_data_installs_the_pinned_tarball_and_registers_the_runtime(with_gvisor: ProgramResult) -> None:
    user_data = with_gvisor.named(NODE_CLASS, "karpenter-gvisor-nodeclass").inputs["spec"]["userData"]
    found = parts(user_data)
    node_config = safe_load(found["application/node.eks.aws"])
    containerd = tomllib.loads(node_config["spec"]["containerd"]["config"])
    runtime = containerd["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runsc"]
    assert runtime == {"runtime_type": "io.containerd.runsc.v1"}
    script = found["text/x-shellscript"]
    release = default("gvisorRelease")
    assert release > gvisor.LAST_LOOSE_RELEASE  # the tarball layout
    assert f"/{release}/$ARCH/gvisor.tar.zstd" in script
    assert f"x86_64) ARCH=x86_64 SHA512={default('gvisorSha512Amd64')} ;;" in script
    assert f"aarch64) ARCH=aarch64 SHA512={default('gvisorSha512Arm64')} ;;" in script
    assert ".sha512" not in script  # the sums are the program's, never fetched beside the tarball


def test_a_new_release_needs_its_own_sums_and_the_tarball_layout() -> None:
    """Bumping gvisorRelease without the sums of its tarballs, or going back to the loose-binary layout, is a
    one-line config error naming the key."""
    assert config_error(gvisorRelease="20261012.0").startswith(
        "agent-platform:gvisorSha512Amd64: is the SHA-512 of 20260928.0's tarball; set the one published for 20261012.0"
    )
    assert config_error(gvisorRelease="20240729.0").startswith("agent-platform:gvisorRelease: 20240729.0 publishes")
    assert "gvisorSha512Arm64" in config_error(gvisorSha512Arm64="abc")
    sums = {"gvisorSha512Amd64": "a" * 128, "gvisorSha512Arm64": "b" * 128}
    assert dict(parse_config(gvisorRelease="20261012.0", **sums).karpenter.gvisor_sha512) == {
        "amd64": "a" * 128,
        "arm64": "b" * 128,
    }


def test_default_stacks_have_no_gvisor_pool() -> None:
    dev = program_result("dev")
    assert not [r for r in dev.of_type(NODE_POOL) if "gvisor" in r.name]


# --- the install script, run for real against a local release server ------------------------------------

RELEASE = "29990101.0"


def tarball(folder: Path, sidecar: bool = True) -> bytes:
    """A release tarball of the real layout: runsc and the shim at the top, gvisor-bin/ with the Sentry."""
    content = folder / "content"
    (content / gvisor.SIDECARS).mkdir(parents=True)
    for binary in gvisor.BINARIES:
        (content / binary).write_text(f"#!/bin/sh\necho {binary}\n")
    if sidecar:
        (content / gvisor.SIDECARS / "gvisor_sentry").write_text("#!/bin/sh\necho sentry\n")
    out = folder / gvisor.TARBALL
    subprocess.run(["tar", "--zstd", "-cf", str(out), "-C", str(content), "."], check=True)
    return out.read_bytes()


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A gVisor-like release bucket on 127.0.0.1: <release>/<uname -m>/gvisor.tar.zstd; the paths asked for."""
    root = tmp_path / "releases"
    folder = root / RELEASE / platform.machine()
    folder.mkdir(parents=True)
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object) -> None:
            super().__init__(*args, directory=str(root))  # type: ignore[arg-type]

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder, requested
    finally:
        server.shutdown()


def run_install(
    url: str, bin_dir: Path, sha512: str, monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    monkeypatch.setattr(gvisor, "RELEASES", url)
    env = {**os.environ, "GVISOR_BIN_DIR": str(bin_dir)}
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    script = gvisor.install_script(RELEASE, {arch: sha512})
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_install_script_installs_the_verified_tarball(release_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url, folder, requested = release_server
    body = tarball(folder)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = run_install(url, bin_dir, hashlib.sha512(body).hexdigest(), monkeypatch)
    assert done.returncode == 0, done.stderr
    for binary in gvisor.BINARIES:
        assert os.access(bin_dir / binary, os.X_OK)
    assert os.access(bin_dir / gvisor.SIDECARS / "gvisor_sentry", os.X_OK)  # runsc's sidecars beside it
    assert requested == [f"/{RELEASE}/{platform.machine()}/{gvisor.TARBALL}"]  # no checksum fetched beside it


def test_install_script_refuses_a_tampered_tarball(release_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url, folder, _ = release_server
    pinned = hashlib.sha512(tarball(folder)).hexdigest()
    tampered = folder / "tampered"
    tampered.mkdir()
    (folder / gvisor.TARBALL).write_bytes(tarball(tampered, sidecar=True) + b"\0")  # other bytes, same layout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = run_install(url, bin_dir, pinned, monkeypatch)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
    assert not list(bin_dir.iterdir())  # nothing installed


def test_install_script_refuses_a_tarball_without_the_sentry(release_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url, folder, _ = release_server
    body = tarball(folder, sidecar=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    done = run_install(url, bin_dir, hashlib.sha512(body).hexdigest(), monkeypatch)
    assert done.returncode != 0
    assert "gvisor-bin/gvisor_sentry is not in the tarball" in done.stderr
    assert not list(bin_dir.iterdir())
