"""Labels, taints, selectors and tolerations: what marks a sandbox, a tenant's objects and each kind of node."""

SANDBOX_LABEL = "agent-platform.io/sandbox"  # on sandbox namespaces and every sandbox pod template
TENANT_LABEL = "agent-platform.io/tenant"  # on every tenant Namespace and its objects
AGENT_LABEL = "agent-platform.io/agent"
WORKLOAD_LABEL = "agent-platform.io/workload"  # "deployment" or "warm-pool": keeps selectors disjoint
PART_OF = {"app.kubernetes.io/part-of": "agent-platform"}
CORE_NODE_LABEL = "node-role.agent-platform.io/core"  # core nodes: LiteLLM, monitoring, controllers
KATA_NODE_LABEL = "workload-type"  # = "kata" on Kata nodes (managed group and Karpenter)
KATA_NODE_VALUE = "kata"
KATA_TAINT = {"key": "kata", "value": "true", "effect": "NoSchedule"}
KATA_RUNTIME_LABEL = "katacontainers.io/kata-runtime"  # set to "true" by kata-deploy when a node is ready
# kata-deploy 4.x also marks the nodes its (default) instance finished; its RuntimeClasses require both labels.
KATA_DEPLOY_INSTANCE_LABEL = "kata-deploy.katacontainers.io/default"

GVISOR_NODE_VALUE = "gvisor"  # KATA_NODE_LABEL = "gvisor" on the gVisor pool
GVISOR_TAINT = {"key": "gvisor", "value": "true", "effect": "NoSchedule"}

# GPU nodes (Karpenter's GPU pool): only model servers (and node DaemonSets) run there. The taint key is the extended
# resource's name, as Karpenter's docs taint GPU pools: Kubernetes' ExtendedResourceToleration admission plugin adds a
# toleration of it to any pod that requests nvidia.com/gpu, so both gates refuse the request too. NVIDIA's device
# plugin (its default affinity) runs only on nodes labelled nvidia.com/gpu.present=true.
GPU_NODE_VALUE = "gpu"  # KATA_NODE_LABEL = "gpu" on the GPU pool
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
MODEL_SERVER_LABEL = "agent-platform.io/model-server"  # = the model's name, on every model server pod
# A pod that selects GPU nodes (nodeSelector, or node affinity required or preferred) asks for the GPU pool: refused
# outside the model servers at both gates, like the toleration. Labels only GPU nodes carry (any In, Exists, Gt, Lt on
# them): NVIDIA's presence label and Karpenter's karpenter.k8s.aws/instance-gpu-* (count, name, manufacturer,
# memory: set only on instance types with GPUs, Karpenter's instance-types reference); and values of shared labels
# only the GPU pool's nodes have (In).
GPU_ONLY_LABEL_PREFIX = "karpenter.k8s.aws/instance-gpu-"
GPU_ONLY_LABELS = (GPU_PRESENT_LABEL,)
GPU_NODE_VALUES = {KATA_NODE_LABEL: GPU_NODE_VALUE, "karpenter.sh/nodepool": GPU_NODE_VALUE}  # the NodePool is "gpu"

CORE_NODE_SELECTOR = {CORE_NODE_LABEL: "true"}
GPU_NODE_SELECTOR = {KATA_NODE_LABEL: GPU_NODE_VALUE}
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

# The isolation tier of a tenant (config `isolation`) on its Namespace and, for Fargate, on every pod template: the
# tenant's Fargate profile selects its namespace AND this label, and both gates accept a sandbox pod without a
# runtime class only with it, in a namespace bound to a profile (docs/fargate.md).
ISOLATION_LABEL = "agent-platform.io/isolation"
FARGATE = "fargate"
FARGATE_POD_LABELS = {ISOLATION_LABEL: FARGATE}
# What EKS' Fargate admission webhook sets on a pod that matches a profile (user guide, fargate.html "Fargate
# considerations"/"AWS Fargate"): the scheduler name; a pod may also ask to stay on EC2 with the annotation.
FARGATE_SCHEDULER = "fargate-scheduler"
FARGATE_COMPUTE_TYPE = "eks.amazonaws.com/compute-type"  # node label and pod annotation; "fargate" or "ec2"
# Fargate nodes carry this taint and label (public reports: tigera/operator#2874, terraform-aws-eks#2864): a DaemonSet
# that tolerates it must exclude the label, or it makes a pod for every Fargate node that never runs.
FARGATE_TAINT = {"key": FARGATE_COMPUTE_TYPE, "value": FARGATE, "effect": "NoSchedule"}


def selector_labels(tenant: str, agent: str, workload: str) -> dict[str, str]:
    """What selects one agent's pods of one workload (its Deployment, Service, NetworkPolicies)."""
    return {TENANT_LABEL: tenant, AGENT_LABEL: agent, WORKLOAD_LABEL: workload}
