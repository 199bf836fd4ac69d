"""What the scaling area (KEDA, components/capacity/keda.py) provides: its namespace, pods and ports (the keda chart
2.20.2's defaults), which the NetworkPolicies name."""

from components.contracts.namespaces import KEDA_NAMESPACE

NAMESPACE = KEDA_NAMESPACE
OPERATOR_PODS = {"app.kubernetes.io/name": "keda-operator"}
METRICS_API_PODS = {"app.kubernetes.io/name": "keda-operator-metrics-apiserver"}
WEBHOOK_PODS = {"app.kubernetes.io/name": "keda-admission-webhooks"}
OPERATOR_GRPC_PORT = 9666  # the metrics API server asks the operator for metric values
METRICS_API_PORT = 6443  # external.metrics.k8s.io, called by the API server (service.portHttpsTarget)
WEBHOOK_PORT = 9443  # the admission webhook, called by the API server
