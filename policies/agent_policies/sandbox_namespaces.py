"""sandbox-namespace-runtime-class (stack): what a workload's Namespace implies, decided on the whole stack.

A workload without the sandbox label is still a sandbox when it lands in a Namespace of this stack (same cluster)
labelled as a sandbox namespace, in a configured ``sandboxNamespaces`` namespace that only the stack can tell (its
namespace computed from a Namespace of the stack), or when it is a server-side-apply patch of a sandbox workload of
this stack; it then gets every sandbox pod-spec check (sandbox_checks.SANDBOX_CHECKS). The policy also reports
dedicated-tenant-tolerations (tolerations.py) and gpu-nodes-model-servers-only (gpu_nodes.py), which need the same
pass over the stack's workloads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import SANDBOX_LABEL, Unknowns, config_strings, schema
from .fargate import bound_namespaces, check_fargate_workload, configured_namespaces, defers_to_fargate
from .gpu_nodes import CONFIG_PROPERTIES as GPU_NODES_PROPERTIES
from .gpu_nodes import check_gpu_nodes
from .placement import Resolved
from .pod_checks import SANDBOX_SCOPE
from .sandbox_checks import SANDBOX_CHECKS
from .stack import KubeObject, Stack
from .tolerations import CONFIG_PROPERTIES as TOLERATIONS_PROPERTIES
from .tolerations import check_dedicated_tenant_tolerations
from .workloads import WORKLOAD_KINDS, pod_template, sandbox_namespaces


def _patched_sandbox(workload: Resolved, stack: Stack) -> str | None:
    """For a ``*Patch`` of a workload of this stack that carries the sandbox label: how messages name it."""
    if not workload.patch:
        return None
    target = stack.object(workload).declaration
    template = None if target is None else pod_template(target)
    try:
        if template is not None and template.has_sandbox_label():
            return target.who  # type: ignore[union-attr]
    except UnknownValueError:
        pass
    return None


def _why_sandbox(
    workload: Resolved, stack: Stack, sandbox: Sequence[KubeObject], configured: Sequence[str]
) -> str | None:
    target = _patched_sandbox(workload, stack)
    if target is not None:
        return f" It patches {target}, a sandbox ({SANDBOX_LABEL}=true)."
    owner = stack.owner(workload)
    if owner is not None and owner in sandbox:
        return f" Namespace {owner.name} is a sandbox namespace ({SANDBOX_LABEL}=true)."
    if workload.namespace_source == "dependency" and workload.namespace in configured:
        return f" Namespace {workload.namespace} is a sandbox namespace (sandboxNamespaces)."
    return None


def _check_workload(
    workload: Resolved,
    stack: Stack,
    sandbox: Sequence[KubeObject],
    configured: Sequence[str],
    fargate: set[str],
    config: Mapping[str, Any],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    template = pod_template(workload)
    if template is None:
        return
    checked = False  # a sandbox the resource policies saw as one (label, or a configured namespace they can tell)
    with contextlib.suppress(UnknownValueError):  # cannot tell from the labels: the namespace decides
        checked = template.has_sandbox_label()
    checked = checked or (workload.namespace_source in ("metadata", "provider") and workload.namespace in configured)
    reason = "" if checked else _why_sandbox(workload, stack, sandbox, configured)
    if reason is None:
        return
    # fargate-sandbox-pods: a pod that claims Fargate, or any sandbox pod in a namespace bound to a profile.
    if defers_to_fargate(template, tuple(fargate)) or (
        workload.namespace is not None and workload.namespace in fargate
    ):
        check_fargate_workload(template, fargate, reason, lambda message: report_violation(message, workload.urn))
    if checked:
        return  # the sandbox checks' resource policies judged the rest

    def report(message: str) -> None:
        report_violation(message + reason, workload.urn)

    for check in SANDBOX_CHECKS:
        unknowns.run(check.run, template, config, report, unknowns)


def check_sandbox_namespace_workloads(
    stack: Stack, config: Mapping[str, Any], report_violation: ReportViolation, unknowns: Unknowns
) -> None:
    sandbox = sandbox_namespaces(stack, unknowns)
    configured = config_strings(config, "sandboxNamespaces", ())
    fargate = bound_namespaces(stack, report_violation, unknowns) | set(configured_namespaces(config))
    for workload in stack.of_kinds(WORKLOAD_KINDS):  # every one: a labelled sandbox may claim Fargate anywhere
        unknowns.run(_check_workload, workload, stack, sandbox, configured, fargate, config, report_violation, unknowns)


def sandbox_namespace_runtime_class_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = Unknowns()
    stack = Stack(args.resources)
    config = args.get_config()
    check_sandbox_namespace_workloads(stack, config, report_violation, unknowns)
    check_dedicated_tenant_tolerations(stack, config, report_violation, unknowns)
    check_gpu_nodes(stack, config, report_violation, unknowns)
    unknowns.finish()


sandbox_namespace_runtime_class = StackValidationPolicy(
    name="sandbox-namespace-runtime-class",
    description=(
        "Workloads in a Namespace declared in this stack (on the same cluster) with the label "
        "agent-platform.io/sandbox=true, and server-side-apply patches of a sandbox workload declared "
        "in this stack, must run in a Kata Containers runtime class without host access; a toleration for a "
        "tenant's dedicated nodes is valid only in that tenant's Namespace (dedicated-tenant-tolerations); only "
        "model servers and node DaemonSets may tolerate, request or select GPUs (gpu-nodes-model-servers-only); a "
        "pod without a runtime class only as a Fargate pod in a namespace bound to a Fargate profile "
        "(fargate-sandbox-pods, fargate-profile-selectors)."
    ),
    validate=sandbox_namespace_runtime_class_validator,
    config_schema=schema(
        {
            **{key: spec for check in SANDBOX_CHECKS for key, spec in check.config.items()},
            "sandboxNamespaces": SANDBOX_SCOPE["sandboxNamespaces"],
            **TOLERATIONS_PROPERTIES,
            **GPU_NODES_PROPERTIES,
        }
    ),
)
