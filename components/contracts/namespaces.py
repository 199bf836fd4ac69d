"""The namespaces the platform owns; tenants may not take them (nor kube-*)."""

KUBE_SYSTEM = "kube-system"  # EKS's add-ons (and the AWS Load Balancer Controller)
LITELLM_NAMESPACE = "litellm"
MONITORING_NAMESPACE = "monitoring"
KARPENTER_NAMESPACE = "karpenter"
KATA_NAMESPACE = "kata-system"
AGENT_SANDBOX_NAMESPACE = "agent-sandbox-system"
EGRESS_NAMESPACE = "egress"
MODELS_NAMESPACE = "models"  # the self-hosted model servers (vLLM): the only workloads on GPU nodes
KEDA_NAMESPACE = "keda"  # KEDA, which scales the model servers
NVIDIA_NAMESPACE = "nvidia-device-plugin"  # NVIDIA's device plugin DaemonSet, on GPU nodes
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"  # the EKS CloudWatch observability add-on's (its node agents)
PLATFORM_NAMESPACES = frozenset(
    {
        LITELLM_NAMESPACE,
        MONITORING_NAMESPACE,
        KARPENTER_NAMESPACE,
        KATA_NAMESPACE,
        AGENT_SANDBOX_NAMESPACE,
        EGRESS_NAMESPACE,
        MODELS_NAMESPACE,
        KEDA_NAMESPACE,
        NVIDIA_NAMESPACE,
        CLOUDWATCH_NAMESPACE,
    }
)
RESERVED_NAMESPACES = PLATFORM_NAMESPACES | {"default", KUBE_SYSTEM, "kube-public", "kube-node-lease"}
# Where node DaemonSets may tolerate every tenant's dedicated nodes (operator Exists): the platform's namespaces and
# kube-system (EKS add-ons such as aws-node and kube-proxy tolerate every taint). Both gates: policies/, admission.
NODE_DAEMON_NAMESPACES = PLATFORM_NAMESPACES | {KUBE_SYSTEM}
