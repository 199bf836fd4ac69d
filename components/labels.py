"""The platform's contracts: labels, taints, namespaces, ports and names that more than one place uses.

Pulumi-free, so config validation, the components, the offline tools and the tests read one home for each;
tests/test_contracts.py checks that the policy pack (a separate package) agrees where it must.
"""

# --- names
AGENT_TYPES = ("hermes", "openclaw")  # components/agents.py describes each
STORAGE_CLASS = "gp3"  # the cluster's default StorageClass (components/cluster.py): encrypted gp3 via EBS CSI
LITELLM_PORT = 4000  # the model gateway's NLB listener (and LiteLLM's own port)
DISCOVERY_TAG = "karpenter.sh/discovery"  # subnets and security groups Karpenter may use (value: cluster name)
# IPv4 that is not the internet: "this network", RFC 1918, CGNAT, loopback, link-local (instance metadata, Pod
# Identity). Sandboxes reach none of it as "the internet" (NetworkPolicy), nor by name through the egress proxy.
NON_INTERNET_IPV4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
)

# --- namespaces the platform owns; tenants may not take them (nor kube-*)
LITELLM_NAMESPACE = "litellm"
MONITORING_NAMESPACE = "monitoring"
KARPENTER_NAMESPACE = "karpenter"
KATA_NAMESPACE = "kata-system"
AGENT_SANDBOX_NAMESPACE = "agent-sandbox-system"
EGRESS_NAMESPACE = "egress"
PLATFORM_NAMESPACES = frozenset(
    {
        LITELLM_NAMESPACE,
        MONITORING_NAMESPACE,
        KARPENTER_NAMESPACE,
        KATA_NAMESPACE,
        AGENT_SANDBOX_NAMESPACE,
        EGRESS_NAMESPACE,
    }
)
RESERVED_NAMESPACES = PLATFORM_NAMESPACES | {"default", "kube-system", "kube-public", "kube-node-lease"}
# Where node DaemonSets may tolerate every tenant's dedicated nodes (operator Exists): the platform's namespaces and
# kube-system (EKS add-ons such as aws-node and kube-proxy tolerate every taint). Both gates: policies/, admission.py.
NODE_DAEMON_NAMESPACES = PLATFORM_NAMESPACES | {"kube-system"}

# --- labels and taints

SANDBOX_LABEL = "agent-platform.io/sandbox"  # on sandbox namespaces and every sandbox pod template
CORE_NODE_LABEL = "node-role.agent-platform.io/core"  # core nodes: LiteLLM, monitoring, controllers
KATA_NODE_LABEL = "workload-type"  # = "kata" on Kata nodes (managed group and Karpenter)
KATA_NODE_VALUE = "kata"
KATA_TAINT = {"key": "kata", "value": "true", "effect": "NoSchedule"}
KATA_RUNTIME_LABEL = "katacontainers.io/kata-runtime"  # set to "true" by kata-deploy when a node is ready
# kata-deploy 4.x also marks the nodes its (default) instance finished; its RuntimeClasses require both labels.
KATA_DEPLOY_INSTANCE_LABEL = "kata-deploy.katacontainers.io/default"

GVISOR_NODE_VALUE = "gvisor"  # KATA_NODE_LABEL = "gvisor" on the gVisor pool
GVISOR_TAINT = {"key": "gvisor", "value": "true", "effect": "NoSchedule"}

CORE_NODE_SELECTOR = {CORE_NODE_LABEL: "true"}
GVISOR_NODE_SELECTOR = {KATA_NODE_LABEL: GVISOR_NODE_VALUE}
KATA_NODE_SELECTOR = {KATA_NODE_LABEL: KATA_NODE_VALUE}
KATA_TOLERATION = {"key": "kata", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
# Tenants with dedicatedNodes: their own Karpenter NodePool, whose nodes carry this label and taint (value = the
# tenant); only that tenant's pods select and tolerate it. Node DaemonSets tolerate the key with Exists.
DEDICATED_TENANT_KEY = "agent-platform.io/dedicated-tenant"
DEDICATED_TOLERATION_ANY = {"key": DEDICATED_TENANT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def dedicated_taint(tenant: str) -> dict[str, str]:
    return {"key": DEDICATED_TENANT_KEY, "value": tenant, "effect": "NoSchedule"}


def dedicated_toleration(tenant: str) -> dict[str, str]:
    return {"key": DEDICATED_TENANT_KEY, "operator": "Equal", "value": tenant, "effect": "NoSchedule"}


# Low-priority pods that hold Kata capacity for sandboxes (Karpenter keeps their nodes up; sandboxes preempt them).
CAPACITY_PLACEHOLDER_LABEL = "agent-platform.io/capacity-placeholder"
