"""gpu-nodes-model-servers-only: nothing from tenants ever lands on the GPU nodes.

The GPU pool's nodes are tainted ``nvidia.com/gpu=true:NoSchedule`` (components/contracts/labels.py GPU_TAINT) and run
the platform's model servers. A pod may land there when it tolerates that taint, or when it requests ``nvidia.com/gpu``
(Kubernetes' ExtendedResourceToleration admission plugin then adds the toleration itself, and only GPU nodes have
the resource). A pod that selects GPU nodes by their labels (nodeSelector, node affinity) asks for them too: without
a toleration it would stay Pending, so it is refused with the others rather than left waiting, and stays off GPU
nodes even if the taint were ever lost. All three are valid only in the model servers' namespace, or on a node
DaemonSet (or a Pod a DaemonSet controls) in a platform namespace, such as NVIDIA's device plugin. A toleration with
no key (or an empty one) and ``operator: Exists`` tolerates every taint: dedicated-tenant-tolerations refuses it
outside node DaemonSets. The admission policy ``agent-platform-gpu-nodes``
decides the same (docs/admission.md).

A stack rule reported as ``sandbox-namespace-runtime-class``, like dedicated-tenant-tolerations (tolerations.py): a
policy of its own would cost the SDK another decoding of every resource (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation

from .common import (
    Unknowns,
    config_str,
    config_strings,
    dig,
    get,
    human_list,
    item_label,
    items,
    string,
    string_list_property,
)
from .placement import Resolved
from .stack import Stack
from .tolerations import PLATFORM_NAMESPACES, node_daemon, tolerated
from .workloads import WORKLOAD_KINDS, PodTemplate, known_pod_template

GPU_RESOURCE = "nvidia.com/gpu"  # components/contracts/labels.py GPU_RESOURCE: the taint key and the resource
GPU_TAINT_VALUE = "true"  # components/contracts/labels.py GPU_TAINT
GPU_TAINT_EFFECT = "NoSchedule"
MODEL_NAMESPACES: tuple[str, ...] = ("models",)  # components/contracts/namespaces.py MODELS_NAMESPACE
# Node labels that select GPU nodes (components/contracts/labels.py GPU_ONLY_LABEL_PREFIX, GPU_ONLY_LABELS,
# GPU_NODE_VALUES): any In, Exists, Gt or Lt on a label only GPU nodes carry; In with the GPU pool's value of a shared one.
GPU_ONLY_LABEL_PREFIX = "karpenter.k8s.aws/instance-gpu-"
GPU_ONLY_LABELS = ("nvidia.com/gpu.present",)
GPU_NODE_VALUES = {"workload-type": "gpu", "karpenter.sh/nodepool": "gpu"}
SELECTING_OPERATORS = ("In", "Exists", "Gt", "Lt")

CONFIG_PROPERTIES: dict[str, dict[str, Any]] = {
    "gpuResource": {
        "type": "string",
        "minLength": 1,
        "description": "The GPU nodes' taint key and extended resource (its taint value is true).",
        "default": GPU_RESOURCE,
    },
    "modelNamespaces": string_list_property(
        "Namespaces whose workloads may run on GPU nodes (the model servers).", MODEL_NAMESPACES
    ),
}


def tolerates_gpu(toleration: Any, key: str) -> bool:
    """Whether the toleration tolerates ``key=true:NoSchedule`` with that key named (Kubernetes'
    ``Toleration.ToleratesTaint``); one with no key tolerates every taint and is judged by
    dedicated-tenant-tolerations."""
    found = tolerated(toleration, key, GPU_TAINT_EFFECT)
    if found is None or (string(get(toleration, "key")) or "") != key:
        return False
    every_value, value = found
    return every_value or value == GPU_TAINT_VALUE


def selects_gpu_nodes(key: Any, operator: Any, values: Any) -> bool:
    """Whether a node selector requirement (or a nodeSelector entry: In, one value) selects GPU nodes."""
    if not isinstance(key, str):
        return False
    if key in GPU_ONLY_LABELS or key.startswith(GPU_ONLY_LABEL_PREFIX):
        return operator in SELECTING_OPERATORS
    return operator == "In" and key in GPU_NODE_VALUES and GPU_NODE_VALUES[key] in list(items(values))


def _gpu_selections(template: PodTemplate, unknowns: Unknowns) -> list[str]:
    """``nodeSelector`` entries and node affinity expressions (required or preferred) that select GPU nodes."""
    found = []
    selector = get(template.spec, "nodeSelector")
    if isinstance(selector, Mapping):
        found += [
            f"{template.field('nodeSelector')}[{key}]"
            for key in selector
            if selects_gpu_nodes(key, "In", [selector[key]])
        ]
    affinity = dig(template.spec, "affinity", "nodeAffinity")
    terms = [
        (f"requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]", term)
        for i, term in enumerate(
            items(dig(affinity, "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"), unknowns)
        )
    ]
    terms += [
        (f"preferredDuringSchedulingIgnoredDuringExecution[{i}].preference", get(preferred, "preference"))
        for i, preferred in enumerate(items(get(affinity, "preferredDuringSchedulingIgnoredDuringExecution"), unknowns))
    ]
    for where, term in terms:
        for expression in items(get(term, "matchExpressions"), unknowns):
            if selects_gpu_nodes(get(expression, "key"), get(expression, "operator"), get(expression, "values")):
                found.append(f"{template.field('affinity.nodeAffinity', where)} ({get(expression, 'key')})")
    return found


def _gpu_requests(template: PodTemplate, key: str, unknowns: Unknowns) -> list[str]:
    """``<list>[<container>].resources.<requests|limits>`` for every container asking for the GPU resource."""
    found = []
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(items(get(template.spec, list_name), unknowns)):
            resources = get(container, "resources")
            for part in ("requests", "limits"):
                amounts = get(resources, part)
                if isinstance(amounts, Mapping) and key in amounts:
                    found.append(f"{template.field(list_name)}[{item_label(container, index)}].resources.{part}")
    return found


def _allowed(workload: Resolved, stack: Stack, models: Sequence[str], platform: Sequence[str]) -> bool:
    """In a model namespace, or a node DaemonSet in a platform namespace; raises UnknownValueError when the
    namespace cannot be told."""
    if workload.namespace_unknown is not None:
        raise workload.namespace_unknown
    return workload.namespace in models or (node_daemon(workload, stack) and workload.namespace in platform)


def _check_workload(
    workload: Resolved,
    stack: Stack,
    key: str,
    models: Sequence[str],
    platform: Sequence[str],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    template = known_pod_template(workload)
    if template is None:
        return
    field = template.field("tolerations")
    offending = [
        f"{field}[{index}] ({key})"
        for index, toleration in enumerate(items(get(template.spec, "tolerations"), unknowns))
        if tolerates_gpu(toleration, key)
    ]
    offending += [f"the {key} request in {where}" for where in _gpu_requests(template, key, unknowns)]
    offending += [f"the GPU node selection {where}" for where in _gpu_selections(template, unknowns)]
    if not offending or _allowed(workload, stack, models, platform):
        return
    report_violation(
        f"{workload.who}: remove {human_list(offending, 'and')}: only model servers (namespace "
        f"{human_list(list(models))}) and node DaemonSets in {human_list(list(platform))} may run on or select GPU "
        f"nodes (a pod requesting {key} is given a toleration of their taint).",
        workload.urn,
    )


def check_gpu_nodes(
    stack: Stack, config: Mapping[str, Any], report_violation: ReportViolation, unknowns: Unknowns
) -> None:
    key = config_str(config, "gpuResource", GPU_RESOURCE)
    models = config_strings(config, "modelNamespaces", MODEL_NAMESPACES)
    platform = config_strings(config, "platformNamespaces", PLATFORM_NAMESPACES)
    for workload in stack.of_kinds(WORKLOAD_KINDS):
        unknowns.run(_check_workload, workload, stack, key, models, platform, report_violation, unknowns)
