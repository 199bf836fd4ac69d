"""The namespaces the platform owns; tenants may not take them (nor kube-*)."""

KUBE_SYSTEM = "kube-system"  # EKS's add-ons (and the AWS Load Balancer Controller)
LITELLM_NAMESPACE = "litellm"
MONITORING_NAMESPACE = "monitoring"
KARPENTER_NAMESPACE = "karpenter"
KATA_NAMESPACE = "kata-system"
AGENT_SANDBOX_NAMESPACE = "agent-sandbox-system"
EGRESS_NAMESPACE = "egress"
MODELS_NAMESPACE = "models"  # the self-hosted model servers (vLLM): the only workloads on GPU nodes
KEDA_NAMESPACE = "keda"  # KEDA: agent schedules (cron scaler) and the model servers' queue (Prometheus scaler)
NVIDIA_NAMESPACE = "nvidia-device-plugin"  # NVIDIA's device plugin DaemonSet, on GPU nodes
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"  # created by the EKS add-on amazon-cloudwatch-observability (opt-in)
CLOUDWATCH_ADDON = "amazon-cloudwatch-observability"
# EKS add-ons that create their own namespace (the render checks count them as created by the stack).
ADDON_NAMESPACES = {CLOUDWATCH_ADDON: CLOUDWATCH_NAMESPACE}
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
    }
)
# Namespaces of EKS add-ons: EKS manages what runs there (node agents tolerating every taint among them).
EKS_ADDON_NAMESPACES = frozenset({KUBE_SYSTEM, CLOUDWATCH_NAMESPACE})
RESERVED_NAMESPACES = PLATFORM_NAMESPACES | EKS_ADDON_NAMESPACES | {"default", "kube-public", "kube-node-lease"}
# Where node DaemonSets may tolerate every tenant's dedicated nodes (operator Exists) and the GPU nodes: the platform's
# namespaces and the EKS add-ons' (aws-node, kube-proxy, the CloudWatch agent tolerate every taint). Both gates:
# policies/, admission.
NODE_DAEMON_NAMESPACES = PLATFORM_NAMESPACES | EKS_ADDON_NAMESPACES
