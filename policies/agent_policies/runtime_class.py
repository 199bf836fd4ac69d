"""sandbox-runtime-class: a sandbox workload runs in a Kata Containers micro-VM runtime class."""

from __future__ import annotations

from collections.abc import Sequence

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .common import (
    DEFAULT_RUNTIME_CLASSES,
    SANDBOX_KINDS_PROPERTY,
    SANDBOX_NAMESPACES_PROPERTY,
    applies_to,
    config_strings,
    schema,
    string_list_property,
)
from .fargate import FARGATE_NAMESPACES_PROPERTY, configured_namespaces, defers_to_fargate
from .workloads import PodTemplate, is_workload, sandbox_template

ALLOWED_RUNTIME_CLASSES_PROPERTY = string_list_property(
    "RuntimeClass names a sandbox pod may use.", DEFAULT_RUNTIME_CLASSES, minItems=1
)


def check_runtime_class(
    template: PodTemplate,
    allowed: Sequence[str],
    report_violation: ReportViolation,
    urn: str | None = None,
    reason: str = "",
) -> None:
    runtime_class = template.runtime_class()
    if runtime_class is not None and runtime_class in allowed:
        return
    if runtime_class is None and template.patch:
        return  # a server-side-apply patch that leaves runtimeClassName as it is
    field = template.field("runtimeClassName")
    found = f' instead of "{runtime_class}"' if runtime_class is not None else ""
    report_violation(f"{template.who}: set {field} to one of {', '.join(allowed)}{found}.{reason}", urn)


def sandbox_runtime_class_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = sandbox_template(args)
    if template is None:
        return
    config = args.get_config()
    if defers_to_fargate(template, configured_namespaces(config)):
        return  # fargate-sandbox-pods decides (sandbox-namespace-runtime-class: it sees the stack's Fargate profiles)
    allowed = config_strings(config, "allowedRuntimeClasses", DEFAULT_RUNTIME_CLASSES)
    check_runtime_class(template, allowed, report_violation)


sandbox_runtime_class = ResourceValidationPolicy(
    name="sandbox-runtime-class",
    description=(
        "Sandbox workloads (pod template label agent-platform.io/sandbox=true, or a configured "
        "sandbox namespace) must run in a Kata Containers micro-VM runtime class (Fargate pods: "
        "fargate-sandbox-pods)."
    ),
    validate=sandbox_runtime_class_validator,
    config_schema=schema(
        {
            "allowedRuntimeClasses": ALLOWED_RUNTIME_CLASSES_PROPERTY,
            "sandboxNamespaces": SANDBOX_NAMESPACES_PROPERTY,
            "sandboxKinds": SANDBOX_KINDS_PROPERTY,
            "fargateNamespaces": FARGATE_NAMESPACES_PROPERTY,
        }
    ),
)
applies_to(sandbox_runtime_class, is_workload)
