"""Observability: kube-prometheus-stack on core nodes (Prometheus, Alertmanager, Grafana, operator,
kube-state-metrics), node-exporter on every node including Kata nodes, LiteLLM and kata-monitor scraping,
and the platform's Grafana dashboards (components/observability/dashboards/*.json) as sidecar-loaded ConfigMaps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import ObservabilityConfig, TenantConfig
from components.contracts.cluster import STORAGE_CLASS
from components.contracts.gateway import METRICS_KEY_KEY, METRICS_KEY_SECRET
from components.contracts.gateway import NAMESPACE as LITELLM_NAMESPACE
from components.contracts.gateway import SELECTOR as LITELLM_SELECTOR
from components.contracts.labels import (
    CORE_NODE_SELECTOR,
    DEDICATED_TENANT_KEY,
    KATA_NODE_LABEL,
    KATA_RUNTIME_LABEL,
    PART_OF,
    SANDBOX_LABEL,
    TENANT_LABEL,
)
from components.contracts.observability import NAMESPACE, PROMETHEUS_PORT, PROMETHEUS_SERVICE, RELEASE
from components.contracts.runtime import KATA_MONITOR_LABELS, KATA_MONITOR_PORT
from components.contracts.runtime import NAMESPACE as KATA_NAMESPACE
from components.k8s.resources import child_options, platform_namespace
from components.observability.tenant_cost import tenant_cost_rule_spec

CHART = "kube-prometheus-stack"
REPO = "https://prometheus-community.github.io/helm-charts"
GRAFANA_ADMIN_SECRET = "grafana-admin"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DASHBOARD_LABEL = "grafana_dashboard"  # the chart's grafana.sidecar.dashboards.label default
OPENCOST_CHART = "oci://ghcr.io/opencost/charts/opencost"


def prometheus_label(name: str) -> str:
    """Kubernetes label -> the name kube-state-metrics and service discovery give it (``a.b/c-d`` -> ``a_b_c_d``)."""
    return "".join(c if c.isalnum() else "_" for c in name)


def kata_monitor_pod_monitor_spec() -> dict[str, Any]:
    """kata-monitor pods (kata-deploy 4.x, one per Kata node) on their pod IP; job label ``kata-monitor``."""
    return {
        "jobLabel": "app.kubernetes.io/name",
        "selector": {"matchLabels": dict(KATA_MONITOR_LABELS)},
        "namespaceSelector": {"matchNames": [KATA_NAMESPACE]},
        "podMetricsEndpoints": [{"portNumber": KATA_MONITOR_PORT, "path": "/metrics", "interval": "30s"}],
    }


def stack_values(cfg: ObservabilityConfig) -> dict[str, Any]:
    core = dict(CORE_NODE_SELECTOR)
    return {
        "prometheusOperator": {"nodeSelector": core, "admissionWebhooks": {"patch": {"nodeSelector": core}}},
        "prometheus": {
            "prometheusSpec": {
                "nodeSelector": core,
                "retention": cfg.retention,
                # Select every ServiceMonitor/PodMonitor/rule, not only those labelled with this release.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": STORAGE_CLASS,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{cfg.storage_gib}Gi"}},
                        }
                    }
                },
                "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
            }
        },
        # EKS runs the control plane itself: these components are not reachable, their targets would stay down.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "alertmanager": {"alertmanagerSpec": {"nodeSelector": core}},
        "grafana": {
            "nodeSelector": core,
            # keys admin-user / admin-password (the chart's defaults)
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET},
            # The chart default searches ALL namespaces; only the platform's namespace may add dashboards.
            # The sidecar (on by default) loads ConfigMaps labelled DASHBOARD_LABEL="1" (the chart's defaults).
            "sidecar": {"dashboards": {"searchNamespace": NAMESPACE}},
            # A Role in its own namespace instead of the chart's ClusterRole (which reads every Secret).
            "rbac": {"namespaced": True},
        },
        "kube-state-metrics": {
            "nodeSelector": core,
            # Its secrets collector lists and watches every Secret in the cluster (tenant keys, bot tokens) for
            # kube_secret_* series nothing here reads: off, and the chart's ClusterRole drops the grant with it.
            "collectorsExclude": ["secrets"],
            # Exported as label_agent_platform_io_sandbox / label_workload_type for the dashboards; the tenant of a
            # namespace and of a dedicated node for the cost per tenant (tenant_cost.py).
            "metricLabelsAllowlist": [
                f"pods=[{SANDBOX_LABEL}]",
                f"namespaces=[{SANDBOX_LABEL},{TENANT_LABEL}]",
                f"nodes=[{KATA_NODE_LABEL},{KATA_RUNTIME_LABEL},{DEDICATED_TENANT_KEY}]",
            ],
        },
        # A DaemonSet that must also run on Kata nodes (tainted): tolerate every taint.
        "prometheus-node-exporter": {"tolerations": [{"operator": "Exists"}]},
    }


def opencost_values() -> dict[str, Any]:
    """OpenCost's exporter on the platform's Prometheus: node and volume prices for the cost per tenant. On AWS it
    reads on-demand list prices from the public price list (no credentials; opencost.io/docs/configuration/aws)."""
    return {
        "opencost": {
            "mcp": {"enabled": False},  # its bundled MCP server (on by default): nothing here uses it
            "ui": {"enabled": False},  # Grafana shows the cost; the UI would be one more endpoint to guard
            "prometheus": {
                "internal": {  # enabled by default
                    "serviceName": PROMETHEUS_SERVICE,
                    "namespaceName": NAMESPACE,
                    "port": PROMETHEUS_PORT,
                }
            },
            "metrics": {"serviceMonitor": {"enabled": True}},  # Prometheus selects every ServiceMonitor
            "nodeSelector": dict(CORE_NODE_SELECTOR),
        }
    }


def dashboards() -> dict[str, str]:
    """File stem -> dashboard JSON (compact), for every components/observability/dashboards/*.json."""
    return {path.stem: json.dumps(json.loads(path.read_text())) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def litellm_service_monitor_spec() -> dict[str, Any]:
    return {
        "selector": {"matchLabels": dict(LITELLM_SELECTOR)},
        "namespaceSelector": {"matchNames": [LITELLM_NAMESPACE]},
        "endpoints": [
            {
                "port": "http",
                "path": "/metrics/",
                "interval": "30s",
                "scheme": "http",
                # LiteLLM runs with require_auth_for_metrics_endpoint: the scrape presents a virtual key that
                # may call /metrics only (components/gateway/metrics_key.py), never the master key, since the
                # operator copies it into Prometheus' config Secret.
                "authorization": {
                    "type": "Bearer",
                    "credentials": {"name": METRICS_KEY_SECRET, "key": METRICS_KEY_KEY},
                },
            }
        ],
    }


@dataclass(frozen=True)
class ObservabilityArgs:
    config: ObservabilityConfig
    admin_password: pulumi.Input[str]  # secret
    litellm_namespace: pulumi.Resource | None = None  # the gateway's Namespace, for the ServiceMonitor
    kata_monitor: pulumi.Resource | None = (
        None  # the kata-deploy 4.x release (runs kata-monitor): scraped by a PodMonitor
    )
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    tenants: Sequence[TenantConfig] = ()  # their monthly budgets become alerts (tenant_cost.py)


class Observability(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:observability:Observability", name, None, opts)

        k8s_opts = child_options(self)

        # node-exporter needs the host network, PID namespace and root filesystem.
        ns = platform_namespace(name, NAMESPACE, {"enforce": "privileged"}, k8s_opts(*args.depends_on))
        self.namespace = ns  # NetworkPolicies wait for it (components/network/network_policies.py)
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": pulumi.Output.secret(args.admin_password)},
            opts=k8s_opts(ns),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-stack",
            name=RELEASE,
            namespace=NAMESPACE,
            chart=CHART,
            repository_opts={"repo": REPO},
            version=args.config.chart_version,
            values=stack_values(args.config),
            timeout=900,
            opts=k8s_opts(ns, admin),
        )
        for stem, body in dashboards().items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{stem}",
                metadata={
                    "name": f"agent-platform-{stem}",
                    "namespace": NAMESPACE,
                    "labels": {DASHBOARD_LABEL: "1", "app.kubernetes.io/part-of": "agent-platform"},
                },
                data={f"{stem}.json": body},
                opts=k8s_opts(ns),
            )
        # Cost per tenant: OpenCost's prices (its ServiceMonitor needs the CRD) and the rules that charge tenants.
        k8s.helm.v3.Release(
            f"{name}-opencost",
            name="opencost",
            namespace=NAMESPACE,
            chart=OPENCOST_CHART,
            version=args.config.opencost_version,
            values=opencost_values(),
            timeout=600,
            opts=k8s_opts(ns, self.release),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-tenant-cost",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "tenant-cost", "namespace": NAMESPACE, "labels": dict(PART_OF)},
            spec=tenant_cost_rule_spec(args.tenants),
            opts=k8s_opts(ns, self.release),
        )
        # The ServiceMonitor CRD comes with the release.
        after = [self.release] + ([args.litellm_namespace] if args.litellm_namespace is not None else [])

        def monitor(
            resource: str, kind: str, monitor_name: str, namespace: str, spec: dict[str, Any], *after: pulumi.Resource
        ) -> None:
            k8s.apiextensions.CustomResource(
                f"{name}-{resource}",
                api_version="monitoring.coreos.com/v1",
                kind=kind,
                metadata={"name": monitor_name, "namespace": namespace, "labels": dict(PART_OF)},
                spec=spec,
                opts=k8s_opts(*after),
            )

        monitor(
            "litellm-monitor", "ServiceMonitor", "litellm", LITELLM_NAMESPACE, litellm_service_monitor_spec(), *after
        )
        if args.kata_monitor is not None:
            spec = kata_monitor_pod_monitor_spec()
            monitor("kata-monitor", "PodMonitor", "kata-monitor", KATA_NAMESPACE, spec, self.release, args.kata_monitor)
        self.register_outputs({"namespace": NAMESPACE})
