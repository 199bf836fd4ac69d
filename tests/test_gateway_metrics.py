"""The LiteLLM scrape credential (components/gateway/metrics_key.py) and Grafana's namespaced RBAC: finding "Grafana
(chart ClusterRole) can read every Secret; the LiteLLM master key doubles as the Prometheus scrape credential"."""

from __future__ import annotations

import json

import pytest

from components.contracts import gateway as gwc
from components.gateway import keys
from components.gateway import metrics_key as gm
from tests.conftest import program_result, rendered_installs
from tests.tokens import JOB, SECRET
from tools.program import MASK
from tools.render import SHARED

STACKS = ("dev", "staging", "prod")


def test_metrics_key_may_call_metrics_only() -> None:
    spec = gm.metrics_key_spec()
    assert spec["allowed_routes"] == ["/metrics"]
    assert "models" not in spec
    assert "key" not in spec
    pod = gm.metrics_job_pod_spec("docker.io/curlimages/curl:8.16.0")
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert json.loads(env["KEY_SPEC"]["value"]) == spec
    assert env["TENANT_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": gwc.METRICS_KEY_SECRET,
        "key": gwc.METRICS_KEY_KEY,
    }
    assert env["MASTER_KEY"]["valueFrom"]["secretKeyRef"] == {"name": gwc.MASTER_KEY_SECRET, "key": gwc.MASTER_KEY_KEY}
    assert pod["containers"][0]["command"] == ["/bin/sh", "-c", keys.KEY_JOB_SCRIPT]  # the tested idempotent script


@pytest.mark.parametrize("stack", STACKS)
def test_metrics_key_is_generated_secret_and_registered_after_litellm(stack: str) -> None:
    result = program_result(stack)
    password = result.named("random:index/randomPassword:RandomPassword", "gateway-metrics-key-value")
    assert int(password.inputs["length"]) >= 48
    secret = result.named(SECRET, "gateway-metrics-key-secret")
    assert secret.inputs["metadata"]["name"] == gwc.METRICS_KEY_SECRET
    assert secret.inputs["stringData"] == {gwc.METRICS_KEY_KEY: MASK}
    assert secret.plain["stringData"][gwc.METRICS_KEY_KEY] == "sk-" + "r" * int(password.inputs["length"])
    job = result.named(JOB, "gateway-metrics-key-registration")
    assert result.named("kubernetes:helm.sh/v3:Release", "gateway-litellm").urn in job.dependencies
    assert job.inputs["spec"]["template"]["metadata"]["labels"] == gm.JOB_LABELS


@pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_grafana_gets_a_role_in_its_namespace_not_a_cluster_role(stack: str) -> None:
    (monitoring,) = [r for r in rendered_installs(stack) if r.install.name == "monitoring"]
    grafana_rbac = [
        o
        for o in monitoring.objects
        if o.get("kind") in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
        and (o.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/name") == "grafana"
    ]
    kinds = {o["kind"] for o in grafana_rbac}
    assert kinds == {"Role", "RoleBinding"}, kinds
    for role in (o for o in grafana_rbac if o["kind"] == "Role"):
        assert role["metadata"]["namespace"] == "monitoring"
