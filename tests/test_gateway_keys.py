"""Tenant teams and keys: the Job's time budget fits inside Pulumi's wait; rotation keeps spend on the team."""

from __future__ import annotations

import re

import pytest

from components import gateway_keys as gk
from tests.configs import parse_config
from tools.program import ProgramResult

JOB = "kubernetes:batch/v1:Job"


def seconds(duration: str) -> int:
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def test_the_job_fails_before_pulumi_stops_waiting() -> None:
    """Pulumi's wait > activeDeadlineSeconds >= every try at its slowest plus Kubernetes' back-off."""
    assert gk.key_job_try_seconds() == 30 * (5 + 5) + 7 * 20 == 440
    assert gk.key_job_worst_case_seconds() == 3 * 440 + 10 + 20 == 1350
    assert gk.key_job_worst_case_seconds() <= gk.KEY_JOB_DEADLINE < seconds(gk.KEY_JOB_PULUMI_TIMEOUT)


def test_the_script_uses_the_budgeted_timeouts() -> None:
    script = gk.KEY_JOB_SCRIPT
    assert not re.search(r"@[A-Z_]+@", script)  # every placeholder replaced
    assert f"--max-time {gk.CURL_TIMEOUT} " in script and f"--max-time {gk.READY_TIMEOUT} " in script
    assert f'[ "$i" -lt {gk.READY_TRIES} ]' in script and f"sleep {gk.READY_SLEEP}" in script
    calls = len(re.findall(r"\b(?:post|call) ", script.split("done", 1)[1]))
    assert calls == gk.MAX_CALLS  # the API calls one try can make, each bounded by CURL_TIMEOUT


def test_every_key_job_carries_the_budget_and_pulumi_waits_longer(each_stack: ProgramResult) -> None:
    jobs = [j for j in each_stack.of_type(JOB) if "key-job" in j.urn]
    assert jobs
    for job in jobs:
        spec = job.inputs["spec"]
        assert spec["backoffLimit"] == gk.KEY_JOB_BACKOFF_LIMIT
        assert spec["activeDeadlineSeconds"] == gk.KEY_JOB_DEADLINE
        assert job.custom_timeouts == {"create": "30m", "update": "30m"}


def test_tenant_pods_are_created_after_their_key_is_registered(each_stack: ProgramResult) -> None:
    jobs = {j.inputs["metadata"]["labels"]["agent-platform.io/tenant"]: j for j in each_stack.of_type(JOB) if "key-job" in j.urn}  # fmt: skip
    namespaces = {n.name[: -len("-ns")]: n for n in each_stack.of_type("kubernetes:core/v1:Namespace") if "agents:Tenant" in n.urn}  # fmt: skip
    assert namespaces and set(namespaces) == set(jobs)
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
    from components.agents import LITELLM_KEY_HASH_ANNOTATION, litellm_key_hash

    keys = dev.named("kubernetes:core/v1:Secret", "gateway-tenant-keys").plain["stringData"]
    deployments = [d for d in dev.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["namespace"].startswith("tenant-")]  # fmt: skip
    assert deployments
    for deployment in deployments:
        tenant = deployment.inputs["metadata"]["labels"]["agent-platform.io/tenant"]
        annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
        assert annotations[LITELLM_KEY_HASH_ANNOTATION] == litellm_key_hash(keys[tenant])
        assert keys[tenant] not in str(deployment.plain)
    assert litellm_key_hash("sk-a") != litellm_key_hash("sk-b") and len(litellm_key_hash("sk-a")) == 16
