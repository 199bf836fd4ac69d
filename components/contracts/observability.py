"""What the observability area provides the others: kube-prometheus-stack's pods and ports (its chart defaults), which
the NetworkPolicies name as callers (Prometheus scrapes) and servers."""

from components.contracts.namespaces import MONITORING_NAMESPACE

NAMESPACE = MONITORING_NAMESPACE
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager"}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
KUBE_STATE_METRICS_PODS = {"app.kubernetes.io/name": "kube-state-metrics"}
OPERATOR_PODS = {"app.kubernetes.io/name": "kube-prometheus-stack-prometheus-operator"}  # and its webhook Jobs
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_MESH_PORT = 9094
GRAFANA_PORT = 3000
RELOADER_PORT = 8080  # config-reloader sidecars of Prometheus and Alertmanager
KUBE_STATE_METRICS_PORTS = (8080, 8081)
OPERATOR_PORT = 10250  # the operator's metrics and admission webhook (HTTPS)
RELEASE = "monitoring"  # kube-prometheus-stack's release name
# Prometheus' Service: <release>-kube-prometheus-prometheus (the chart's fullname; release "monitoring"); KEDA's
# Prometheus scaler queries it for the model servers' queue (components/models/vllm.py).
PROMETHEUS_SERVICE = "monitoring-kube-prometheus-prometheus"
PROMETHEUS_URL = f"http://{PROMETHEUS_SERVICE}.{NAMESPACE}.svc:{PROMETHEUS_PORT}"
OPENCOST_PODS = {"app.kubernetes.io/name": "opencost"}  # the OpenCost chart's selector labels
OPENCOST_PORT = 9003  # its API and /metrics (opencost.exporter.apiPort)
