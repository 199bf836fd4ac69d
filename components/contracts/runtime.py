"""What the runtime area provides the others: where kata-deploy runs and kata-monitor listens (Prometheus scrapes it;
the sandbox nodes' security group admits it)."""

from components.contracts.namespaces import AGENT_SANDBOX_NAMESPACE, KATA_NAMESPACE

NAMESPACE = KATA_NAMESPACE
KATA_MONITOR_PORT = 8090  # kata-monitor's listen port (chart value monitor.port)
KATA_MONITOR_LABELS = {"app.kubernetes.io/name": "kata-monitor", "app.kubernetes.io/instance": "kata-deploy"}
AGENT_SANDBOX_CONTROLLER_NAMESPACE = AGENT_SANDBOX_NAMESPACE
