"""CrossGuard policies for the agent sandbox platform.

``policies/__main__.py`` builds the PolicyPack from :func:`all_policies`. The rules are listed once, in
:data:`RULES`: each names the policy that reports it and the ValidatingAdmissionPolicies that enforce the same
decision in the cluster (components/admission/sandbox_admission.py); the sandbox pod-spec checks come from their
own list (sandbox_checks.py). The pack's policies, the README's tables, the admission policies and the parity
corpus are tested against these lists (tests/policies/test_pack.py, tests/test_admission.py). Every rule reads
resources through the resolution layer (placement.py); how to add one: policies/README.md#adding-a-rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from pulumi_policy import Policy

from .dns import kata_dns
from .egress import sandbox_egress_allowlist
from .kata import kata_clh_no_init_containers
from .mcp import mcp_servers_closed
from .network import nlb_cross_zone
from .node_capacity import kata_node_capacity
from .nodes import nested_virtualization_nodes
from .sandbox_checks import SANDBOX_CHECKS
from .sandbox_namespaces import sandbox_namespace_runtime_class

POLICY_PACK_NAME = "agent-platform-policies"
SANDBOX_ADMISSION = "agent-platform-sandbox"
KATA_DNS_ADMISSION = "agent-platform-kata-dns"
DEDICATED_NODES_ADMISSION = "agent-platform-dedicated-nodes"
GPU_NODES_ADMISSION = "agent-platform-gpu-nodes"


@dataclass(frozen=True)
class Rule:
    """One decision of the pack: the policy that reports it, and its counterpart at admission."""

    name: str
    policy: Policy  # reports it (a stack rule may ride another rule's policy: each policy costs a full decode)
    admission: tuple[str, ...] = ()  # ValidatingAdmissionPolicies deciding the same for what reaches the cluster
    deploy_time_only: str = ""  # why there is no admission counterpart

    def __post_init__(self) -> None:
        if bool(self.admission) == bool(self.deploy_time_only):
            raise ValueError(f"rule {self.name}: name its admission policies or say why it has none")


RULES: tuple[Rule, ...] = (
    *(Rule(check.rule, check.policy, (SANDBOX_ADMISSION,)) for check in SANDBOX_CHECKS),
    Rule("sandbox-namespace-runtime-class", sandbox_namespace_runtime_class, (SANDBOX_ADMISSION,)),
    Rule("kata-dns", kata_dns, (KATA_DNS_ADMISSION,)),
    Rule("nlb-cross-zone", nlb_cross_zone, deploy_time_only="load balancers are the platform's own objects"),
    Rule(
        "kata-clh-no-init-containers",
        kata_clh_no_init_containers,
        deploy_time_only="advisory: such a pod fails to start, it breaks nothing else",
    ),
    Rule("nested-virtualization-nodes", nested_virtualization_nodes, deploy_time_only="AWS launch templates"),
    Rule("kata-node-capacity", kata_node_capacity, deploy_time_only="AWS node groups, Karpenter node pools"),
    Rule(
        "sandbox-egress-allowlist",
        sandbox_egress_allowlist,
        deploy_time_only="the tenant NetworkPolicies and SandboxTemplates are the platform's own objects",
    ),
    Rule(
        "mcp-servers-closed",
        mcp_servers_closed,
        deploy_time_only="LiteLLM reads its MCP registration from a ConfigMap's YAML, which admission CEL cannot parse",
    ),
    Rule("fargate-sandbox-pods", sandbox_namespace_runtime_class, (SANDBOX_ADMISSION,)),
    Rule(
        "fargate-profile-selectors",
        sandbox_namespace_runtime_class,
        deploy_time_only="Fargate profiles are AWS resources; admission holds its Fargate namespaces as a list",
    ),
    Rule("dedicated-tenant-tolerations", sandbox_namespace_runtime_class, (DEDICATED_NODES_ADMISSION,)),
    Rule("gpu-nodes-model-servers-only", sandbox_namespace_runtime_class, (GPU_NODES_ADMISSION,)),
)

# The pack's policies, once each, in the order of the rules.
POLICIES: tuple[Policy, ...] = tuple(dict.fromkeys(rule.policy for rule in RULES))


def all_policies() -> list[Policy]:
    """The pack's policies, run by the unmodified pulumi-policy SDK."""
    return list(POLICIES)


__all__ = ["POLICIES", "POLICY_PACK_NAME", "RULES", "SANDBOX_CHECKS", "Rule", "all_policies"]
