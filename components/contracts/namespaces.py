"""The namespaces the platform owns; tenants may not take them (nor kube-*)."""

KUBE_SYSTEM = "kube-system"  # EKS's add-ons (and the AWS Load Balancer Controller)
LITELLM_NAMESPACE = "litellm"
MONITORING_NAMESPACE = "monitoring"
KARPENTER_NAMESPACE = "karpenter"
KATA_NAMESPACE = "kata-system"
AGENT_SANDBOX_NAMESPACE = "agent-sandbox-system"
EGRESS_NAMESPACE = "egress"
KEDA_NAMESPACE = "keda"  # agent schedules (KEDA cron scaler), installed when an agent has one
PLATFORM_NAMESPACES = frozenset(
    {
        LITELLM_NAMESPACE,
        MONITORING_NAMESPACE,
        KARPENTER_NAMESPACE,
        KATA_NAMESPACE,
        AGENT_SANDBOX_NAMESPACE,
        EGRESS_NAMESPACE,
        KEDA_NAMESPACE,
    }
)
RESERVED_NAMESPACES = PLATFORM_NAMESPACES | {"default", KUBE_SYSTEM, "kube-public", "kube-node-lease"}
# Where node DaemonSets may tolerate every tenant's dedicated nodes (operator Exists): the platform's namespaces and
# kube-system (EKS add-ons such as aws-node and kube-proxy tolerate every taint). Both gates: policies/, admission.
NODE_DAEMON_NAMESPACES = PLATFORM_NAMESPACES | {KUBE_SYSTEM}
