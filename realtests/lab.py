"""A local lab with the REAL gateway software: LiteLLM 1.93 (PyPI) on PostgreSQL 15 (Debian) and Redis (Debian).

The setup is ../shared/litellm-offline (README there: LiteLLM from PyPI, LiteLLM's own migrations applied with
psql, and Prisma's own query engine compiled to WebAssembly because its native engine cannot be downloaded
offline). It is copied to build/litellm-offline (../shared is read-only) and its idempotent setup.sh run.
Everything binds to 127.0.0.1; every process started here is stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "litellm-offline"
LAB = ROOT / "build" / "litellm-offline"
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"
MASTER_KEY = "sk-master-0123456789"  # the lab's master key (start_litellm.sh's default)
REDIS_PORT = 56379
PG_PORT = 55432  # setup.sh's
DB_URL = f"postgresql://litellm:litellm-pw@127.0.0.1:{PG_PORT}/litellm"  # what setup.sh/reset_db.sh create


def pg_running() -> bool:
    data = LAB / "pg" / "data"
    probe = subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {data} status"], capture_output=True)
    return (data / "postmaster.pid").exists() and probe.returncode == 0


def prepare() -> bool:
    """Copy the shared setup and run it; True when PostgreSQL was already running (leave it running)."""
    LAB.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SHARED, LAB, dirs_exist_ok=True)
    was_running = (LAB / "pg" / "data").exists() and pg_running()
    if not was_running:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PG_PORT)) == 0:
                raise RuntimeError(f"127.0.0.1:{PG_PORT} is taken (another checkout's lab PostgreSQL?): stop it first")
    subprocess.run([str(LAB / "scripts" / "setup.sh")], check=True, timeout=1800)
    subprocess.run([str(LAB / "scripts" / "reset_db.sh")], check=True, timeout=600, capture_output=True)
    return was_running


def stop_postgres() -> None:
    subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {LAB / 'pg' / 'data'} -m fast stop"], capture_output=True)


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


class Redis:
    """redis-server (Debian) with the project's rendered valkey.conf; port, bind and dir overridden for the lab."""

    def __init__(self, conf: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "valkey.conf").write_text(conf)
        self.log = workdir / "redis.log"
        self.proc = subprocess.Popen(
            ["redis-server", str(workdir / "valkey.conf"), "--port", str(REDIS_PORT), "--bind", "127.0.0.1"]
            + ["--daemonize", "no", "--logfile", str(self.log)],
            cwd=workdir,
        )
        for _ in range(50):
            if subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


class Proxy:
    """One LiteLLM replica started like the chart's container (scripts/start_litellm.sh)."""

    def __init__(self, config: dict[str, Any], port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        path = LAB / "work" / f"config-{port}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = LAB / "logs" / f"litellm-{port}.log"
        out = subprocess.run(
            [str(LAB / "scripts" / "start_litellm.sh"), str(path), str(port), str(self.log)],
            env={**os.environ, "MASTER_KEY": MASTER_KEY, **(env or {})},
            capture_output=True,
            text=True,
            check=True,
        )
        self.pid = int(out.stdout.strip().splitlines()[-1])

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health/readiness", timeout=5) as response:
                    if b'"connected"' in response.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(2)
        raise RuntimeError(f"LiteLLM on {self.port} not ready; see {self.log}")

    def stop(self) -> None:
        stop(self.pid)


def call(
    url: str, path: str, body: dict[str, Any] | None = None, key: str = MASTER_KEY, method: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url + path,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")


def burst(urls: list[str], key: str, model: str, n: int) -> tuple[Counter[int], float]:
    """``n`` sequential mock completions, round-robin over ``urls``; status counts and seconds taken."""
    codes: Counter[int] = Counter()
    start = time.monotonic()
    for i in range(n):
        body = {"model": model, "messages": [{"role": "user", "content": f"hi {i}"}], "mock_response": "ok"}
        code, _ = call(urls[i % len(urls)], "/v1/chat/completions", body, key=key)
        codes[code] += 1
    return codes, time.monotonic() - start


def run_job_container(container: dict[str, Any], secrets: dict[tuple[str, str], str], url: str) -> tuple[int, str]:
    """Run a rendered Job container's own command as its pod would: ``/bin/sh`` is busybox ash (as in the
    curl image), uid 100 / gid 101, a private 1 MiB tmpfs ``/tmp``, the manifest's env with secret refs
    replaced by ``secrets`` and the in-cluster LiteLLM URL by ``url``. Returns (exit status, output)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/home/curl_user"}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    assert env["LITELLM_URL"] == "http://litellm.litellm.svc.cluster.local:4000", env["LITELLM_URL"]
    env["LITELLM_URL"] = url
    command = list(container["command"])
    assert command[:2] == ["/bin/sh", "-c"], command
    inner = ["setpriv", "--reuid=100", "--regid=101", "--clear-groups", "busybox", "sh", "-c", command[2]]
    wrapper = 'mount -t tmpfs -o size=1m,mode=1777 tmpfs /tmp && exec "$@"'
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", wrapper, "sh", *inner],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.returncode, done.stdout + done.stderr


def psql(sql: str) -> str:
    done = subprocess.run(["psql", DB_URL, "-At", "-c", sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()
