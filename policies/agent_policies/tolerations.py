"""dedicated-tenant-tolerations: a tenant's dedicated nodes are kept by a taint, so tolerating it is the boundary.

Tenants with dedicated nodes get a Karpenter NodePool whose nodes carry the taint
``agent-platform.io/dedicated-tenant=<tenant>:NoSchedule`` (components/contracts/labels.py). A pod that tolerates it may run
there, next to that tenant's micro-VMs. So a toleration of that key with a value is valid only in a Namespace
labelled ``agent-platform.io/tenant: <the same tenant>``, and one that tolerates every value (``operator: Exists``,
with the key or with no key at all) only on a node DaemonSet (or a Pod a DaemonSet controls) in a platform
namespace. The admission policy ``agent-platform-dedicated-nodes`` decides the same (docs/admission.md).

A stack rule (the Namespace's labels are needed), reported as ``sandbox-namespace-runtime-class``: each policy of
the pack costs the SDK a full decoding of every resource (docs/benchmarks.md), so it rides that policy's pass over
the stack's workloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation
from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, config_str, config_strings, dig, get, human_list, items, string, string_list_property
from .placement import Resolved
from .stack import Stack
from .workloads import WORKLOAD_KINDS, known_pod_template, owned_by_daemon_set

DEDICATED_TENANT_KEY = "agent-platform.io/dedicated-tenant"  # components/contracts/labels.py DEDICATED_TENANT_KEY
DEDICATED_TAINT_EFFECT = "NoSchedule"  # components/contracts/labels.py dedicated_taint()
TENANT_LABEL = "agent-platform.io/tenant"  # components/contracts/labels.py TENANT_LABEL, on every tenant Namespace
# components/contracts/namespaces.py NODE_DAEMON_NAMESPACES: the platform's namespaces and kube-system (EKS add-ons).
PLATFORM_NAMESPACES: tuple[str, ...] = (
    "agent-sandbox-system",
    "amazon-cloudwatch",
    "egress",
    "karpenter",
    "kata-system",
    "keda",
    "kube-system",
    "litellm",
    "models",
    "monitoring",
    "nvidia-device-plugin",
)

CONFIG_PROPERTIES: dict[str, dict[str, Any]] = {
    "dedicatedTenantKey": {
        "type": "string",
        "minLength": 1,
        "description": "Taint key of tenants' dedicated nodes (its value is the tenant).",
        "default": DEDICATED_TENANT_KEY,
    },
    "tenantLabel": {
        "type": "string",
        "minLength": 1,
        "description": "Namespace label naming the tenant a namespace belongs to.",
        "default": TENANT_LABEL,
    },
    "platformNamespaces": string_list_property(
        "Namespaces whose node DaemonSets may tolerate every tenant's dedicated nodes (operator Exists).",
        PLATFORM_NAMESPACES,
    ),
}


def tolerated(toleration: Any, key: str, effect: str = DEDICATED_TAINT_EFFECT) -> tuple[bool, str] | None:
    """(every value, the value) when the toleration tolerates a ``key:<effect>`` taint; None when it does not.

    Kubernetes' ``Toleration.ToleratesTaint``: the effect must be empty or the taint's; an empty key with ``Exists``
    tolerates every taint; ``Exists`` tolerates every value of its key; ``Equal`` (or no operator) only its value.
    The one reading of a toleration the rules share (dedicated nodes here, GPU nodes in gpu_nodes.py).
    """
    if (string(get(toleration, "effect")) or "") not in ("", effect):
        return None  # e.g. NoExecute with tolerationSeconds, as the EBS CSI controller has: another taint
    toleration_key = string(get(toleration, "key")) or ""
    exists = get(toleration, "operator") == "Exists"
    if toleration_key == "":
        return (True, "") if exists else None
    if toleration_key != key:
        return None
    return (True, "") if exists else (False, string(get(toleration, "value")) or "")


def node_daemon(workload: Resolved, stack: Stack) -> bool:
    """A DaemonSet, or a Pod a DaemonSet controls."""
    if workload.kind == "DaemonSet":
        return True
    return workload.kind == "Pod" and owned_by_daemon_set(stack.object(workload).obj)


def _tenant_of(workload: Resolved, stack: Stack, label: str) -> tuple[str | None, str]:
    """The tenant the workload's Namespace belongs to, and how to say where it is when it is not the right one."""
    owner = stack.owner(workload)
    if owner is None:
        return None, f"namespace {workload.namespace} is not a Namespace declared in this stack"
    tenant = string(get(dig(owner.obj, "metadata", "labels"), label))
    if tenant is None:
        return None, f"Namespace {owner.name} has no {label} label"
    return tenant, f"Namespace {owner.name} belongs to tenant {tenant}"


def _why_not_here(
    workload: Resolved, stack: Stack, every: bool, tenant: str, key: str, label: str, platform: Sequence[str]
) -> str | None:
    """Why the toleration is not valid where the workload lands, or None when it is; raises UnknownValueError when
    that cannot be told."""
    if every:
        if node_daemon(workload, stack):
            if workload.namespace_unknown is not None:
                raise workload.namespace_unknown  # a platform namespace or not cannot be told
            if workload.namespace in platform:
                return None
        return (
            f"(operator Exists): it tolerates every tenant's dedicated nodes ({key}); only node DaemonSets in "
            f"{human_list(list(platform))} may, other pods tolerate {key}=<their tenant> in that tenant's namespace."
        )
    owner_tenant, where = _tenant_of(workload, stack, label)
    if owner_tenant is None and workload.namespace_unknown is not None:
        raise workload.namespace_unknown  # which Namespace it lands in cannot be told
    if owner_tenant == tenant and tenant:
        return None
    return (
        f"({key}={tenant}): only pods in a namespace labelled {label}={tenant} may run on tenant {tenant}'s "
        f"dedicated nodes, and {where}."
    )


def _check_workload(
    workload: Resolved,
    stack: Stack,
    key: str,
    label: str,
    platform: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    template = known_pod_template(workload)
    if template is None:
        return
    field = template.field("tolerations")
    for index, toleration in enumerate(items(get(template.spec, "tolerations"), unknowns)):
        try:
            found = tolerated(toleration, key)
            why = None if found is None else _why_not_here(workload, stack, *found, key, label, platform)
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        if why is not None:
            report_violation(f"{workload.who}: remove {field}[{index}] {why}", workload.urn)


def check_dedicated_tenant_tolerations(
    stack: Stack, config: Mapping[str, Any], report_violation: ReportViolation, unknowns: Unknowns
) -> None:
    key = config_str(config, "dedicatedTenantKey", DEDICATED_TENANT_KEY)
    label = config_str(config, "tenantLabel", TENANT_LABEL)
    platform = config_strings(config, "platformNamespaces", PLATFORM_NAMESPACES)
    for workload in stack.of_kinds(WORKLOAD_KINDS):
        unknowns.run(_check_workload, workload, stack, key, label, platform, report_violation, unknowns)
