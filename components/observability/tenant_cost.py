"""Cost per tenant: recording rules that charge each tenant its pods' requests, their Kata pod overhead, its volumes,
its dedicated nodes and its model spend, and an alert per tenant above its monthly budget.

Prices come from OpenCost's exporter (components/observability/monitoring.py installs it): ``node_cpu_hourly_cost`` and
``node_ram_hourly_cost`` per node, ``node_total_hourly_cost``, ``pv_hourly_cost`` per GiB-hour (opencost
pkg/costmodel/metrics.go). OpenCost allocates by container requests and usage and never reads ``kube_pod_overhead_*``
(design.md §6): the RuntimeClass overhead Kata adds to every pod would land in idle cost, so these rules charge it to
the pod's tenant. Model spend is LiteLLM's ``litellm_spend_metric_total`` by team (the open-source edition has no spend
report API). Every series is ``agent_platform:tenant_cost_per_hour{tenant, part}``; details: docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.config import TenantConfig
from components.contracts.labels import DEDICATED_TENANT_KEY, SANDBOX_LABEL, TENANT_LABEL

COST = "agent_platform:tenant_cost_per_hour"  # USD per hour, by tenant and part
PARTS = ("requests", "kata_overhead", "dedicated_nodes", "storage", "models")
BUDGET_WINDOW = "30d"  # the alert's "month": a trailing window (PromQL has no calendar month)


def _label(name: str) -> str:
    """A Kubernetes label as kube-state-metrics exports it on kube_*_labels."""
    return "label_" + "".join(c if c.isalnum() else "_" for c in name)


# namespace -> tenant (value 1) for sandbox namespaces; kube-state-metrics allowlists both labels
_NS_TENANT = (
    f'label_replace(max by (namespace, {_label(TENANT_LABEL)}) (kube_namespace_labels{{{_label(SANDBOX_LABEL)}="true"}}),'
    f' "tenant", "$1", "{_label(TENANT_LABEL)}", "(.+)")'
)
_DEDICATED = f'kube_node_labels{{{_label(DEDICATED_TENANT_KEY)}!=""}}'
# running pods and their node (value 1)
_RUNNING_ON = (
    'max by (namespace, pod, node) (kube_pod_info{node!=""}) * on (namespace, pod) group_left () '
    '(max by (namespace, pod) (kube_pod_status_phase{phase="Running"}) == 1)'
)


def _pod_cost(cpu: str, memory: str) -> str:
    """USD per hour of ``cpu`` cores and ``memory`` bytes per pod (series by namespace, pod) at their node's prices,
    for pods on shared nodes (a dedicated node is charged whole), summed by tenant."""
    per_pod = (
        f"(sum by (namespace, pod) ({cpu}) * on (namespace, pod) group_left (node) ({_RUNNING_ON})"
        " * on (node) group_left () max by (node) (node_cpu_hourly_cost)"
        f" + sum by (namespace, pod) ({memory}) / 1073741824 * on (namespace, pod) group_left (node) ({_RUNNING_ON})"
        " * on (node) group_left () max by (node) (node_ram_hourly_cost))"
    )
    shared = f"({per_pod} unless on (node) {_DEDICATED})"
    return f"sum by (tenant) ({shared} * on (namespace) group_left (tenant) {_NS_TENANT})"


def cost_records() -> list[dict[str, Any]]:
    """One recording rule per part of a tenant's cost."""
    storage = (
        "sum by (tenant) ("
        "max by (persistentvolume) (kube_persistentvolume_capacity_bytes) / 1073741824"
        " * on (persistentvolume) group_left () max by (persistentvolume) (pv_hourly_cost)"
        " * on (persistentvolume) group_left (namespace) label_replace(max by (persistentvolume, claim_namespace)"
        ' (kube_persistentvolume_claim_ref), "namespace", "$1", "claim_namespace", "(.+)")'
        f" * on (namespace) group_left (tenant) {_NS_TENANT})"
    )
    expressions = {
        "requests": _pod_cost(
            'kube_pod_container_resource_requests{resource="cpu"}',
            'kube_pod_container_resource_requests{resource="memory"}',
        ),
        # RuntimeClass overhead (kube-state-metrics exports it only for pods that have one: Kata and gVisor)
        "kata_overhead": _pod_cost("kube_pod_overhead_cpu_cores", "kube_pod_overhead_memory_bytes"),
        "dedicated_nodes": (
            f'sum by (tenant) (label_replace(max by (node, {_label(DEDICATED_TENANT_KEY)}) ({_DEDICATED}), "tenant",'
            f' "$1", "{_label(DEDICATED_TENANT_KEY)}", "(.+)") * on (node) group_left ()'
            " max by (node) (node_total_hourly_cost))"
        ),
        "storage": storage,
        # team_alias is tenant-<name> (components/gateway/keys.py); spend is a counter per replica
        "models": (
            'sum by (tenant) (label_replace(sum by (team_alias) (rate(litellm_spend_metric_total[1h])) * 3600, "tenant",'
            ' "$1", "team_alias", "tenant-(.+)"))'
        ),
    }
    return [{"record": COST, "expr": expressions[part], "labels": {"part": part}} for part in PARTS]


def budget_alerts(tenants: Sequence[TenantConfig]) -> list[dict[str, Any]]:
    """An alert per tenant with a monthly budget, once its cost over the trailing window passes it."""
    return [
        {
            "alert": "TenantOverMonthlyBudget",
            "expr": (
                f'sum by (tenant) (sum_over_time({COST}{{tenant="{t.name}"}}[{BUDGET_WINDOW}:1h])) > {t.monthly_budget:g}'
            ),
            "for": "1h",
            "labels": {"severity": "warning", "tenant": t.name},
            "annotations": {
                "summary": f"Tenant {t.name} passed its monthly budget of {t.monthly_budget:g} USD",
                "description": (
                    f"Its cost over {BUDGET_WINDOW} (compute, Kata overhead, volumes, dedicated nodes, models) passed "
                    f"{t.monthly_budget:g} USD: see the Tenant cost dashboard"
                ),
            },
        }
        for t in tenants
        if t.monthly_budget > 0
    ]


def tenant_cost_rule_spec(tenants: Sequence[TenantConfig]) -> dict[str, Any]:
    groups: list[dict[str, Any]] = [{"name": "agent-platform-tenant-cost", "interval": "1m", "rules": cost_records()}]
    if alerts := budget_alerts(tenants):
        groups.append({"name": "agent-platform-tenant-budgets", "interval": "5m", "rules": alerts})
    return {"groups": groups}
