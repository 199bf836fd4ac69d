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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.localhost import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "litellm-offline"
LAB = ROOT / "build" / "litellm-offline"
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"
MASTER_KEY = "sk-master-0123456789"  # the lab's master key (start_litellm.sh's default)
REDIS_PORT = 56379
PG_PORT = 55432  # setup.sh's
DB_URL = f"postgresql://litellm:litellm-pw@127.0.0.1:{PG_PORT}/litellm"  # what setup.sh/reset_db.sh create
IMAGE_PINS = Path(__file__).with_name("litellm-image-pins.txt")


def pg_running() -> bool:
    data = LAB / "pg" / "data"
    probe = subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {data} status"], capture_output=True)
    return (data / "postmaster.pid").exists() and probe.returncode == 0


def prepare() -> bool:
    """Copy the shared setup and run it, then pin what the image ships; True when PostgreSQL was already running
    (leave it running)."""
    LAB.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SHARED, LAB, dirs_exist_ok=True)
    was_running = (LAB / "pg" / "data").exists() and pg_running()
    if not was_running:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PG_PORT)) == 0:
                raise RuntimeError(f"127.0.0.1:{PG_PORT} is taken (another checkout's lab PostgreSQL?): stop it first")
    subprocess.run([str(LAB / "scripts" / "setup.sh")], check=True, timeout=1800)
    pin_image_dependencies()
    subprocess.run([str(LAB / "scripts" / "reset_db.sh")], check=True, timeout=600, capture_output=True)
    return was_running


def image_pins() -> dict[str, str]:
    """``IMAGE_PINS``: distribution -> the version the gateway image ships."""
    lines = [line.split("#", 1)[0].strip() for line in IMAGE_PINS.read_text().splitlines()]
    return dict(line.split("==", 1) for line in lines if line)


def venv_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed versions of ``names`` in the lab's LiteLLM venv."""
    code = "import json, sys; from importlib.metadata import version; print(json.dumps({n: version(n) for n in sys.argv[1:]}))"
    done = subprocess.run([str(LAB / "venv" / "bin" / "python"), "-c", code, *names], capture_output=True, text=True)
    return json.loads(done.stdout)


def pin_image_dependencies() -> None:
    """Install ``IMAGE_PINS`` over setup.sh's resolution (never LiteLLM itself: the same wheel, other deps)."""
    pins = image_pins()
    if venv_versions(pins) != pins:
        pip = [str(LAB / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r", str(IMAGE_PINS)]
        subprocess.run(pip, check=True, timeout=600, capture_output=True)
    installed = venv_versions(pins)
    if installed != pins:
        raise RuntimeError(f"the lab runs {installed}, the image ships {pins}")


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


ADMIN = ("lab-admin", "lab-admin-pw")  # a user the lab adds to every server it starts, to read ACL LOG and keys


class Redis:
    """redis-server (Debian) with a config the program renders (or builds, for ElastiCache), a lab admin user added,
    and the port, bind and dir overridden for the lab; ``ca`` when the config serves TLS only."""

    def __init__(self, conf: str, workdir: Path, port: int = REDIS_PORT, ca: Path | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "valkey.conf").write_text(conf + f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all\n")
        self.port, self.ca, self.log = port, ca, workdir / "redis.log"
        listen = ["--port", "0", "--tls-port", str(port)] if "tls-port" in conf else ["--port", str(port)]
        self.proc = subprocess.Popen(
            ["redis-server", str(workdir / "valkey.conf"), *listen, "--bind", "127.0.0.1"]
            + ["--daemonize", "no", "--logfile", str(self.log), "--dir", str(workdir)],
            cwd=workdir,
            start_new_session=True,
        )
        wait_for_port(port, self.proc, 20)

    def admin(self, *command: str) -> str:
        """``command`` as the lab admin (redis-cli, over TLS when the server serves TLS)."""
        tls = ["--tls", "--cacert", str(self.ca)] if self.ca else []
        cli = ["redis-cli", "-h", "localhost" if self.ca else "127.0.0.1", "-p", str(self.port), *tls]
        auth = ["--user", ADMIN[0], "--pass", ADMIN[1], "--no-auth-warning"]
        done = subprocess.run([*cli, *auth, *command], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    def denied(self) -> list[str]:
        """What the server's ACL refused (ACL LOG): ``user: reason object`` per entry, most recent first."""
        entries = json.loads(self.admin("--json", "ACL", "LOG"))
        return [f"{e['username']}: {e['reason']} {e['object']}" for e in entries]

    def stored_keys(self) -> list[str]:
        return self.admin("--scan").splitlines()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


class RedisCluster:
    """Three redis-server masters in cluster mode on 127.0.0.1, announcing themselves as ``localhost`` (what a TLS
    client checks its certificate against), slots split by ``redis-cli --cluster create``: a stand-in for
    ElastiCache Serverless, which runs only in cluster mode."""

    def __init__(self, conf: str, workdir: Path, ca: Path, nodes: int = 3) -> None:
        shutil.rmtree(workdir, ignore_errors=True)  # a node with an old nodes.conf would not join a new cluster
        self.nodes: list[Redis] = []
        try:
            for i in range(nodes):
                port, bus = free_port(), free_port()
                # announced as the clients' (TLS) port: the plain port is 0, and the bus stays plain
                cluster = "\n".join(
                    ["cluster-enabled yes", "cluster-config-file nodes.conf", f"cluster-port {bus}"]
                    + [f"cluster-announce-port {port}", "cluster-announce-hostname localhost"]
                    + ["cluster-preferred-endpoint-type hostname", ""]
                )
                self.nodes.append(Redis(conf + cluster, workdir / f"node{i}", port, ca))
            first = self.nodes[0]
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            first.admin("--cluster", "create", *addresses, "--cluster-yes")
            deadline = time.monotonic() + 60
            while not all("cluster_state:ok" in n.admin("CLUSTER", "INFO") for n in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError("the lab cluster did not reach cluster_state:ok")
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise

    def denied(self) -> list[str]:
        return [entry for node in self.nodes for entry in node.denied()]

    def stored_keys(self) -> list[str]:
        return [key for node in self.nodes for key in node.stored_keys()]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Proxy:
    """One LiteLLM replica started like the chart's container (scripts/start_litellm.sh)."""

    def __init__(self, config: dict[str, Any], port: int, env: dict[str, str] | None = None, name: str = "") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        path = LAB / "work" / f"config-{port}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = LAB / "logs" / f"litellm-{name + '-' if name else ''}{port}.log"
        out = subprocess.run(
            [str(LAB / "scripts" / "start_litellm.sh"), str(path), str(port), str(self.log)],
            env={**os.environ, "MASTER_KEY": MASTER_KEY, **(env or {})},
            capture_output=True,
            text=True,
            check=True,
        )
        self.pid = int(out.stdout.strip().splitlines()[-1])

    def wait_ready(self, timeout: float = 420) -> None:
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


# What a LiteLLM log shows when its Redis counters fail while the proxy keeps serving (the circuit breaker opens,
# scripts fall back to per-replica counters, spend reservations are skipped).
REDIS_FAILURES = (
    "unexpected keyword argument",
    "NOPERM",
    "circuit breaker OPENED",
    "CROSSSLOT",
    "MOVED",
    "Lua script failed",
    "Skipping budget reservation",
    "Got exception from REDIS",
)


def redis_failures(log: str) -> list[str]:
    """The lines of ``log`` that show a failed Redis call."""
    return [line for line in log.splitlines() if any(marker in line for marker in REDIS_FAILURES)]


def shared_limit(
    name: str, config: dict[str, Any], env: dict[str, str], team: dict[str, Any], key: dict[str, Any]
) -> dict[str, Any]:
    """Two replicas of ``config``; the tenant's team (``team``, the key Job's /team/new body, under a team id of
    this scenario's own) and a key in it (``key``, its /key/generate body, client mock responses allowed); then
    2*rpm+4 mock completions alternating between the replicas within one rate-limit window. Figures and logs."""
    team = {**team, "team_id": f"{team['team_id']}-{name}", "team_alias": f"{team['team_id']}-{name}"}
    metadata = {**key.get("metadata", {}), "allow_client_mock_response": True}
    key = {**key, "team_id": team["team_id"], "key_alias": f"{key['key_alias']}-{name}", "metadata": metadata}
    rpm = int(team["rpm_limit"])
    proxies = [Proxy(config, 4100, env, name), Proxy(config, 4101, env, name)]
    try:
        for proxy in proxies:
            proxy.wait_ready()
        code, body = call(proxies[0].url, "/team/new", team)
        assert code == 200, body
        code, body = call(proxies[0].url, "/key/generate", key)
        assert code == 200, body
        requests = 2 * rpm + 4
        codes, seconds = burst([p.url for p in proxies], body["key"], key["models"][0], requests)
        assert seconds < 50, f"the burst took {seconds:.0f} s: it must fit in one rate-limit window"
        assert set(codes) <= {200, 429}, codes
    finally:
        for proxy in proxies:
            proxy.stop()
    log = "".join(proxy.log.read_text() for proxy in proxies)
    figures = {
        "rpm_limit": rpm,
        "requests": requests,
        "ok": codes[200],
        "429": codes[429],
        "seconds": round(seconds, 1),
    }
    return {"team_id": team["team_id"], "figures": figures, "failures": redis_failures(log)}


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
