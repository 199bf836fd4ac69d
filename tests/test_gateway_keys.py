"""Tenant teams and keys: one key Job per tenant on core nodes, its time budget inside Pulumi's wait, and rotation
that keeps spend on the team."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from components.config import PlatformConfig
from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway import keys
from components.gateway import keys as gk
from tests.configs import MODELS, SECRETS, default, parse_config
from tests.tokens import JOB, RELEASE, SECRET
from tools.program import MASK, ProgramResult, Registration


def seconds(duration: str) -> int:
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def test_the_job_fails_before_pulumi_stops_waiting() -> None:
    """Pulumi's wait > activeDeadlineSeconds >= every try at its slowest plus Kubernetes' back-off."""
    assert gk.key_job_try_seconds() == 30 * (5 + 5) + 7 * 20 == 440
    assert gk.key_job_worst_case_seconds() == 3 * 440 + 10 + 20 == 1350
    assert gk.key_job_worst_case_seconds() <= gk.KEY_JOB_DEADLINE < seconds(gk.KEY_JOB_PULUMI_TIMEOUT)


class StubLiteLLM(ThreadingHTTPServer):
    """LiteLLM's admin API on 127.0.0.1: per path, the next of its ``status`` codes (the last one sticks, 200 when
    none); every request is recorded."""

    def __init__(self, status: dict[str, list[int]], listed: list[str]) -> None:
        self.status, self.listed, self.requests = status, listed, []
        super().__init__(("127.0.0.1", 0), _StubHandler)


class _StubHandler(BaseHTTPRequestHandler):
    server: StubLiteLLM

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = self.path.split("?", 1)[0]
        self.server.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
        codes = self.server.status.get(path) or [200]
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        payload = {"keys": self.server.listed} if path == "/key/list" else {}
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


MASTER, TENANT = "sk-master-" + "m" * 20, "sk-tenant-" + "t" * 20
OLD = "ab" * 32  # the token (sha256) of the tenant's previous key


def run_key_job(
    tmp_path: Path, status: dict[str, list[int]]
) -> tuple[subprocess.CompletedProcess[str], list, list[str]]:
    """KEY_JOB_SCRIPT under sh against the stub, with a logging curl first on PATH (its files under tmp_path)."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    new = hashlib.sha256(TENANT.encode()).hexdigest()
    server = StubLiteLLM(status, [OLD, new])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {tmp_path}/argv\nexec {shutil.which("curl")} "$@"\n'
    )
    (bin_dir / "curl").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LITELLM_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "MASTER_KEY": MASTER,
        "TENANT_KEY": TENANT,
        "TEAM_ID": "tenant-acme",
        "KEY_ALIAS": "tenant-acme",
        "GRACE": "2h",
        "TEAM_SPEC": json.dumps({"team_id": "tenant-acme"}),
        "KEY_SPEC": json.dumps({"key_alias": "tenant-acme", "team_id": "tenant-acme"}),
    }
    script = gk.KEY_JOB_SCRIPT.replace("/tmp/", f"{tmp_path}/")  # its scratch files, kept apart per test
    try:
        proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    return proc, server.requests, (tmp_path / "argv").read_text().splitlines()


def test_first_run_creates_the_team_retires_the_old_key_and_generates_within_the_budget(tmp_path: Path) -> None:
    """The worst case of one try (team and key unknown, one previous key): exactly MAX_CALLS API calls, each
    bounded by CURL_TIMEOUT, the readiness probe by READY_TIMEOUT; keys only in files and headers, never printed."""
    status = {"/team/update": [404], "/key/update": [404, 200], "/key/delete": [404]}
    proc, requests, argv = run_key_job(tmp_path, status)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    paths = [path.split("?", 1)[0] for _, path, _, _ in requests]
    assert paths == [
        "/health/readiness",
        "/team/update",
        "/team/new",
        "/key/update",
        "/key/delete",
        "/key/list",
        "/key/update",
        "/key/generate",
    ]
    assert len(paths) - 1 == gk.MAX_CALLS
    assert all(auth == f"Bearer {MASTER}" for _, path, auth, _ in requests[1:])
    retire, generate = requests[6][3], requests[7][3]
    assert retire == {"key": OLD, "key_alias": "tenant-acme-retired", "duration": "2h"}  # never the new key
    assert generate == {"key": TENANT, "key_alias": "tenant-acme", "team_id": "tenant-acme"}
    assert argv[0].count(f"--max-time {gk.READY_TIMEOUT} ") == 1
    assert all(f"--max-time {gk.CURL_TIMEOUT} " in line for line in argv[1:])
    assert not [line for line in argv if MASTER in line or TENANT in line]  # keys travel in files, not argv
    assert MASTER not in proc.stdout + proc.stderr
    assert TENANT not in proc.stdout + proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name in {"auth", "key.json", "team.json", "response.json"}]


def test_a_rerun_only_updates(tmp_path: Path) -> None:
    """Idempotent: with the team and the key known, the Job updates both and generates nothing."""
    proc, requests, _ = run_key_job(tmp_path, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [path for _, path, _, _ in requests] == ["/health/readiness", "/team/update", "/key/update"]
    assert "team tenant-acme updated" in proc.stdout
    assert "key tenant-acme updated" in proc.stdout


def test_an_api_error_fails_the_job(tmp_path: Path) -> None:
    proc, requests, _ = run_key_job(tmp_path, {"/team/update": [500]})
    assert proc.returncode == 1
    assert [path for _, path, _, _ in requests] == ["/health/readiness", "/team/update"]
    assert "team tenant-acme: /team/update returned HTTP 500" in proc.stdout


def test_every_key_job_carries_the_budget_and_pulumi_waits_longer(each_stack: ProgramResult) -> None:
    jobs = [j for j in each_stack.of_type(JOB) if "key-job" in j.urn]
    assert jobs
    for job in jobs:
        spec = job.inputs["spec"]
        assert spec["backoffLimit"] == gk.KEY_JOB_BACKOFF_LIMIT
        assert spec["activeDeadlineSeconds"] == gk.KEY_JOB_DEADLINE
        assert job.custom_timeouts == {"create": "30m", "update": "30m"}


def test_tenant_pods_are_created_after_their_key_is_registered(each_stack: ProgramResult) -> None:
    jobs = {
        j.inputs["metadata"]["labels"]["agent-platform.io/tenant"]: j
        for j in each_stack.of_type(JOB)
        if "key-job" in j.urn
    }
    namespaces = {
        n.name[: -len("-ns")]: n for n in each_stack.of_type("kubernetes:core/v1:Namespace") if "agents:Tenant" in n.urn
    }
    assert namespaces
    assert set(namespaces) == set(jobs)
    for tenant, namespace in namespaces.items():
        assert jobs[tenant].urn in namespace.dependencies  # every tenant object is a child of its namespace


@pytest.mark.parametrize(
    "image",
    [
        "docker.io/curlimages/curl:8.16.0@sha256:" + "a" * 64,
        "docker.io/curlimages/curl@sha256:" + "0123456789abcdef" * 4,
    ],
)
def test_curl_image_may_be_pinned_by_digest(image: str) -> None:
    assert parse_config(curlImage=image).gateway.curl_image == image


def test_a_rotated_key_rolls_the_agents_pods(dev: ProgramResult) -> None:
    """The pod template carries a hash of the tenant's key: a new key is a new template, so a rollout."""
    from components.tenants.agent_builder import LITELLM_KEY_HASH_ANNOTATION, litellm_key_hash

    keys = dev.named("kubernetes:core/v1:Secret", "gateway-key-secret").plain["stringData"]
    deployments = [
        d
        for d in dev.of_type("kubernetes:apps/v1:Deployment")
        if d.inputs["metadata"]["namespace"].startswith("tenant-")
        and d.inputs["metadata"]["labels"]["app.kubernetes.io/name"] != "mcp"  # MCP servers hold no LiteLLM key
    ]
    assert deployments
    for deployment in deployments:
        tenant = deployment.inputs["metadata"]["labels"]["agent-platform.io/tenant"]
        annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
        assert annotations[LITELLM_KEY_HASH_ANNOTATION] == litellm_key_hash(keys[tenant])
        assert keys[tenant] not in str(deployment.plain)
    assert litellm_key_hash("sk-a") != litellm_key_hash("sk-b")
    assert len(litellm_key_hash("sk-a")) == 16


# --------------------------------------------------------------------------------------------
# Config validation


def base_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        **SECRETS,
        "bedrockModels": MODELS,
        "tenants": [
            {"name": "acme", "agents": [{"name": "hermes", "type": "hermes"}], "litellm": {"models": ["claude"]}}
        ],
    }
    values.update(overrides)
    return values


# --------------------------------------------------------------------------------------------
# Tenant key Jobs


def key_jobs(result: ProgramResult) -> dict[str, Registration]:
    return {
        job.inputs["metadata"]["labels"]["agent-platform.io/tenant"]: job
        for job in result.of_type(JOB)
        if "key-job" in job.urn
    }


def test_one_key_job_per_tenant_with_a_spec_hash_in_its_name(each_stack: ProgramResult) -> None:
    jobs = key_jobs(each_stack)
    tenants = {t.inputs["metadata"]["labels"]["agent-platform.io/tenant"] for t in jobs.values()}
    assert set(jobs) == tenants
    assert len(jobs) >= 2
    for tenant, job in jobs.items():
        assert re.fullmatch(rf"litellm-key-{tenant}-[0-9a-f]{{8}}", job.inputs["metadata"]["name"])
        assert job.inputs["metadata"]["namespace"] == "litellm"


def test_key_job_spec_runs_on_core_nodes_restricted(each_stack: ProgramResult) -> None:
    for job in key_jobs(each_stack).values():
        spec = job.inputs["spec"]
        assert "ttlSecondsAfterFinished" not in spec
        assert 0 < spec["backoffLimit"] <= 4
        pod = spec["template"]["spec"]
        assert pod["nodeSelector"] == CORE_NODE_SELECTOR
        assert pod["automountServiceAccountToken"] is False
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        assert container["image"] == default("curlImage")
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["runAsNonRoot"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["readOnlyRootFilesystem"] is True
        env = {e["name"]: e for e in container["env"]}
        assert env["LITELLM_URL"]["value"] == "http://litellm.litellm.svc.cluster.local:4000"
        assert env["MASTER_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "litellm-masterkey", "key": "masterkey"}
        tenant = job.inputs["metadata"]["labels"]["agent-platform.io/tenant"]
        assert env["TENANT_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "litellm-tenant-keys", "key": tenant}
        assert not any(MASK in json.dumps(e) for e in container["env"])  # no secret value inlined


def test_key_job_puts_the_tenant_limits_on_its_team_and_the_key_under_it(dev: ProgramResult) -> None:
    env = {
        e["name"]: e.get("value")
        for e in key_jobs(dev)["acme"].inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env["TEAM_SPEC"]) == {
        "team_id": "tenant-acme",
        "team_alias": "tenant-acme",
        "models": ["claude-sonnet"],
        "max_budget": 50.0,
        "budget_duration": "30d",
        "rpm_limit": 60,
        "tpm_limit": 100000,
        "metadata": {"tenant": "acme", "managed-by": "pulumi"},
        "object_permission": {"mcp_servers": ["acme_kb_tools"]},  # its own MCP server: the key's ceiling
        "blocked": False,  # true once decommissioned (tests/test_lifecycle.py)
    }
    spec = json.loads(env["KEY_SPEC"])
    assert spec == {
        "key_alias": "tenant-acme",
        "team_id": "tenant-acme",
        "models": ["claude-sonnet"],
        "allowed_routes": ["llm_api_routes"],
        "object_permission": {"mcp_servers": ["acme_kb_tools"]},  # its own grant (require_key_mcp_access_defined)
        "metadata": {"tenant": "acme", "managed-by": "pulumi"},
        "max_budget": None,
        "budget_duration": None,
        "rpm_limit": None,
        "tpm_limit": None,
        "blocked": False,
    }  # no key-level budget: spend and limits belong to the team, so a rotated key keeps them
    assert "key" not in spec
    assert env["TEAM_ID"] == "tenant-acme"
    assert env["GRACE"] == "2h"


def test_key_job_name_changes_with_the_spec() -> None:
    from components.config import TenantLitellmConfig

    tenant = PlatformConfig.from_dict("dev", "us-east-1", base_values()).tenants[0]
    models = ("claude",)
    name = keys.key_job_name(tenant, "docker.io/curlimages/curl:8.16.0", models)
    richer = replace(tenant, litellm=TenantLitellmConfig(**{**tenant.litellm.__dict__, "max_budget": 999.0}))
    assert keys.key_job_name(richer, "docker.io/curlimages/curl:8.16.0", models) != name
    assert keys.key_job_name(tenant, "docker.io/curlimages/curl:8.16.0", models) == name
    assert keys.key_job_name(tenant, "docker.io/curlimages/curl:8.17.0", models) != name
    assert keys.key_job_name(tenant, "docker.io/curlimages/curl:8.16.0", (*models, "qwen-small")) != name


def test_key_jobs_run_after_litellm(dev: ProgramResult) -> None:
    litellm = dev.named(RELEASE, "gateway-litellm")
    keys = dev.named(SECRET, "gateway-key-secret")
    for job in key_jobs(dev).values():
        assert litellm.urn in job.dependencies
        assert keys.urn in job.dependencies
