"""Observability: kube-prometheus-stack on core nodes, node-exporter everywhere, LiteLLM and kata-monitor
scraping, Grafana admin secret, and the platform dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.contracts import gateway as gwc
from components.contracts.labels import CORE_NODE_SELECTOR
from components.observability import monitoring as obs
from tests.configs import default
from tests.conftest import FEATURES, program_result, rendered_installs
from tests.schemas import validate_object
from tests.tokens import RELEASE
from tools.program import MASK, PLACEHOLDER, ProgramResult, Registration
from tools.render import SHARED

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
DASHBOARDS = sorted((Path(obs.__file__).parent / "dashboards").glob("*.json"))
EXPECTED = {"dev": ("7d", 20), "staging": ("15d", 50), "prod": ("30d", 200)}


def stack_values(result: ProgramResult) -> dict[str, Any]:
    return result.named(RELEASE, "observability-stack").inputs["values"]


def observability_children(result: ProgramResult) -> list[Registration]:
    return [r for r in result.registrations if "agent-platform:observability:Observability" in r.urn]


def test_release_is_the_pinned_chart_in_monitoring(each_stack: ProgramResult) -> None:
    release = each_stack.named(RELEASE, "observability-stack")
    assert release.inputs["chart"] == "kube-prometheus-stack"
    assert release.inputs["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert release.inputs["version"] == default("kubePrometheusStackVersion")
    assert release.inputs["namespace"] == "monitoring"
    assert release.provider.endswith("::cluster-k8s")


def test_every_component_runs_on_core_nodes(each_stack: ProgramResult) -> None:
    values = stack_values(each_stack)
    assert values["prometheus"]["prometheusSpec"]["nodeSelector"] == CORE_NODE_SELECTOR
    assert values["alertmanager"]["alertmanagerSpec"]["nodeSelector"] == CORE_NODE_SELECTOR
    assert values["grafana"]["nodeSelector"] == CORE_NODE_SELECTOR
    assert values["prometheusOperator"]["nodeSelector"] == CORE_NODE_SELECTOR
    assert values["prometheusOperator"]["admissionWebhooks"]["patch"]["nodeSelector"] == CORE_NODE_SELECTOR
    assert values["kube-state-metrics"]["nodeSelector"] == CORE_NODE_SELECTOR


def test_node_exporter_tolerates_every_taint_to_reach_kata_nodes(each_stack: ProgramResult) -> None:
    exporter = stack_values(each_stack)["prometheus-node-exporter"]
    assert exporter["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in exporter


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_retention_and_gp3_storage_follow_config(stack: str) -> None:
    spec = stack_values(program_result(stack))["prometheus"]["prometheusSpec"]
    retention, gib = EXPECTED[stack]
    assert spec["retention"] == retention
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3"
    assert claim["resources"]["requests"]["storage"] == f"{gib}Gi"


def test_prometheus_selects_monitors_outside_the_release(each_stack: ProgramResult) -> None:
    spec = stack_values(each_stack)["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert "serviceMonitorNamespaceSelector" not in spec  # the chart's default {}: every namespace


def test_kata_monitor_is_scraped_with_a_pod_monitor_when_it_runs(each_stack: ProgramResult) -> None:
    """kata-monitor listens on its pod IP (a PodMonitor, not a node job) and runs only with a Go-runtime shim."""
    assert "additionalScrapeConfigs" not in stack_values(each_stack)["prometheus"]["prometheusSpec"]
    assert not [m for m in each_stack.of_type(POD_MONITOR) if "kata" in m.name]  # runtime-rs only: nothing to see
    fc = program_result("dev", FEATURES)
    monitor = fc.named(POD_MONITOR, "observability-kata-monitor").inputs
    assert monitor["metadata"]["namespace"] == "kata-system"
    assert monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "kata-monitor", "app.kubernetes.io/instance": "kata-deploy"}
    }
    assert monitor["spec"]["podMetricsEndpoints"] == [{"portNumber": 8090, "path": "/metrics", "interval": "30s"}]
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"  # job="kata-monitor"


def test_control_plane_monitors_are_off_on_eks(each_stack: ProgramResult) -> None:
    values = stack_values(each_stack)
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):
        assert values[component] == {"enabled": False}


def test_kube_state_metrics_exports_the_sandbox_and_node_labels(each_stack: ProgramResult) -> None:
    allowlist = stack_values(each_stack)["kube-state-metrics"]["metricLabelsAllowlist"]
    assert "pods=[agent-platform.io/sandbox]" in allowlist
    # the tenant of a namespace and of a dedicated node: the cost per tenant joins on them (tenant_cost.py)
    assert "namespaces=[agent-platform.io/sandbox,agent-platform.io/tenant]" in allowlist
    assert "nodes=[workload-type,katacontainers.io/kata-runtime,agent-platform.io/dedicated-tenant]" in allowlist


@pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_kube_state_metrics_cannot_read_secrets(stack: str) -> None:
    """Its secrets collector lists and watches every Secret of the cluster (tenant keys, bot tokens) to export
    kube_secret_* series that no dashboard or alert reads: off, and the chart's ClusterRole loses the grant."""
    (monitoring,) = [r for r in rendered_installs(stack) if r.install.name == "monitoring"]
    ksm = [
        o
        for o in monitoring.objects
        if (o.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/name") == "kube-state-metrics"
    ]
    roles = [o for o in ksm if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role.get("rules", []):
            assert "secrets" not in rule.get("resources", []), rule
            assert "*" not in rule.get("resources", []), rule
    (deployment,) = [o for o in ksm if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (resources,) = [a for a in container["args"] if a.startswith("--resources=")]
    assert "secrets" not in resources.removeprefix("--resources=").split(",")
    # Nothing reads kube_secret_*: neither the chart's rules and dashboards nor the platform's.
    assert "kube_secret" not in monitoring.text
    assert not [path.name for path in DASHBOARDS if "kube_secret" in path.read_text()]


def test_grafana_admin_password_comes_from_a_secret(each_stack: ProgramResult) -> None:
    grafana = stack_values(each_stack)["grafana"]
    assert grafana["admin"] == {"existingSecret": "grafana-admin"}  # keys admin-user/admin-password: defaults
    assert "adminPassword" not in grafana
    secret = each_stack.named("kubernetes:core/v1:Secret", "observability-grafana-admin")
    assert secret.inputs["metadata"] == {"name": "grafana-admin", "namespace": "monitoring"}
    assert secret.inputs["stringData"]["admin-password"] == MASK
    assert secret.plain["stringData"]["admin-user"] == "admin"
    assert secret.plain["stringData"]["admin-password"] == PLACEHOLDER
    assert secret.urn in each_stack.named(RELEASE, "observability-stack").dependencies
    assert "grafanaAdminPassword" not in each_stack.outputs
    assert PLACEHOLDER not in json.dumps(each_stack.outputs)


def test_litellm_service_monitor(each_stack: ProgramResult) -> None:
    monitor = each_stack.named(SERVICE_MONITOR, "observability-litellm-monitor")
    inputs = monitor.inputs
    assert (inputs["apiVersion"], inputs["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert inputs["metadata"]["namespace"] == "litellm"
    assert inputs["metadata"]["name"] == "litellm"
    spec = inputs["spec"]
    assert spec["selector"] == {"matchLabels": gwc.SELECTOR}
    assert spec["namespaceSelector"] == {"matchNames": ["litellm"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics/"
    # a key of its own that may only call /metrics, never the master key (the operator copies the token into
    # Prometheus' config Secret): tests/test_gateway_metrics.py
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "litellm-metrics-key", "key": "token"},
    }
    assert gwc.MASTER_KEY_SECRET not in json.dumps(inputs)
    assert each_stack.named(RELEASE, "observability-stack").urn in monitor.dependencies  # the CRD
    assert each_stack.named("kubernetes:core/v1:Namespace", "gateway-ns").urn in monitor.dependencies
    # the NLB Service does not carry the chart's labels, so LiteLLM is not scraped twice
    nlb = each_stack.named("kubernetes:core/v1:Service", "gateway-nlb")
    assert not set(gwc.SELECTOR.items()) <= set((nlb.inputs["metadata"].get("labels") or {}).items())


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_are_valid_json_with_panels_and_targets(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"]
    assert dashboard["title"].startswith("Agent platform /")
    assert dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["refId"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboards_cover_sandboxes_kata_capacity_and_litellm_per_key() -> None:
    exprs = {
        path.stem: " ".join(t["expr"] for p in json.loads(path.read_text())["panels"] for t in p["targets"])
        for path in DASHBOARDS
    }
    assert set(exprs) == {"sandboxes", "kata-capacity", "litellm", "egress", "tenant-cost", "model-servers"}
    for part in ("requests", "kata_overhead", "dedicated_nodes", "storage", "models"):
        assert part in exprs["tenant-cost"]  # the parts of agent_platform:tenant_cost_per_hour (test_tenant_cost.py)
    assert 'label_agent_platform_io_sandbox="true"' in exprs["sandboxes"]
    assert "kube_pod_info" in exprs["sandboxes"]
    assert "by (node)" in exprs["sandboxes"]
    assert "by (namespace)" in exprs["sandboxes"]
    assert 'label_workload_type="kata"' in exprs["kata-capacity"]
    assert "kube_node_status_allocatable" in exprs["kata-capacity"]
    assert "node_memory_MemAvailable_bytes" in exprs["kata-capacity"]
    for metric in (
        "litellm_proxy_total_requests_metric_total",
        "litellm_spend_metric_total",
        "litellm_request_total_latency_metric_bucket",
    ):
        assert metric in exprs["litellm"]
    assert "by (api_key_alias)" in exprs["litellm"]
    # model servers: the queue KEDA scales on, latency, tokens/s, replicas against KEDA's maximum, GPU nodes
    for metric in (
        "vllm:num_requests_waiting",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:generation_tokens_total",
        "kube_horizontalpodautoscaler_spec_max_replicas",
        'kube_node_status_allocatable{resource="nvidia_com_gpu"}',
    ):
        assert metric in exprs["model-servers"]


def test_dashboards_ship_as_sidecar_configmaps(each_stack: ProgramResult) -> None:
    maps = {r.inputs["metadata"]["name"]: r for r in each_stack.of_type(CONFIGMAP) if "observability" in r.urn}
    assert set(maps) == {f"agent-platform-{p.stem}" for p in DASHBOARDS}
    for path in DASHBOARDS:
        configmap = maps[f"agent-platform-{path.stem}"]
        assert configmap.inputs["metadata"]["namespace"] == "monitoring"
        assert configmap.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(configmap.inputs["data"][f"{path.stem}.json"]) == json.loads(path.read_text())
    sidecar = stack_values(each_stack)["grafana"]["sidecar"]["dashboards"]
    assert sidecar == {"searchNamespace": "monitoring"}  # on by default, label grafana_dashboard="1"


def test_every_observability_object_is_a_valid_kubernetes_object(each_stack: ProgramResult) -> None:
    kinds = set()
    for registration in observability_children(each_stack):
        if not registration.type.startswith("kubernetes:") or registration.type in (
            RELEASE,
            SERVICE_MONITOR,
            POD_MONITOR,
        ):
            continue  # validated against the CRDs the stack installs by the render checks (test_render)
        validate_object(registration.plain)
        kinds.add(registration.plain["kind"])
        assert registration.provider.endswith("::cluster-k8s")
    assert kinds == {"Namespace", "Secret", "ConfigMap", "PrometheusRule"}  # the tenant cost rules


def test_monitoring_namespace_allows_node_exporter(dev: ProgramResult) -> None:
    ns = dev.named("kubernetes:core/v1:Namespace", "observability-ns")
    assert ns.inputs["metadata"]["name"] == "monitoring"
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
