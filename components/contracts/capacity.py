"""What the capacity area provides the others: KEDA's pods and ports (the chart's defaults), which the NetworkPolicies
name, and the external-metrics API its metrics server registers."""

KEDA_OPERATOR_PODS = {"app.kubernetes.io/name": "keda-operator"}
KEDA_METRICS_SERVER_PODS = {"app.kubernetes.io/name": "keda-operator-metrics-apiserver"}
KEDA_WEBHOOK_PODS = {"app.kubernetes.io/name": "keda-admission-webhooks"}
KEDA_OPERATOR_GRPC_PORT = 9666  # the metrics server asks the operator for metric values
KEDA_METRICS_SERVER_PORT = 6443  # service.portHttpsTarget: the API server calls it for external metrics
KEDA_WEBHOOK_PORT = 9443  # webhooks.port default: the API server calls it to validate ScaledObjects
EXTERNAL_METRICS_API = "v1beta1.external.metrics.k8s.io"  # one backend per cluster: KEDA's metrics server
