"""sandbox-runtime-class: a sandbox workload runs in a Kata Containers micro-VM runtime class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import DEFAULT_RUNTIME_CLASSES, Unknowns, config_strings, string_list_property
from .fargate import FARGATE_NAMESPACES_PROPERTY, configured_namespaces, defers_to_fargate
from .pod_checks import PodSpecCheck, Report
from .workloads import PodTemplate


def check_runtime_class(template: PodTemplate, config: Mapping[str, Any], report: Report, _: Unknowns) -> None:
    if defers_to_fargate(template, configured_namespaces(config)):
        return  # fargate-sandbox-pods decides (the stack policy: it sees the stack's Fargate profiles)
    allowed = config_strings(config, "allowedRuntimeClasses", DEFAULT_RUNTIME_CLASSES)
    runtime_class = template.runtime_class()
    if runtime_class is not None and runtime_class in allowed:
        return
    if runtime_class is None and template.patch:
        return  # a server-side-apply patch that leaves runtimeClassName as it is
    field = template.field("runtimeClassName")
    found = f' instead of "{runtime_class}"' if runtime_class is not None else ""
    report(f"{template.who}: set {field} to one of {', '.join(allowed)}{found}.")


RUNTIME_CLASS = PodSpecCheck(
    rule="sandbox-runtime-class",
    description=(
        "Sandbox workloads (pod template label agent-platform.io/sandbox=true, or a configured "
        "sandbox namespace) must run in a Kata Containers micro-VM runtime class (Fargate pods: "
        "fargate-sandbox-pods)."
    ),
    run=check_runtime_class,
    config={
        "allowedRuntimeClasses": string_list_property(
            "RuntimeClass names a sandbox pod may use.", DEFAULT_RUNTIME_CLASSES, minItems=1
        ),
        "fargateNamespaces": FARGATE_NAMESPACES_PROPERTY,
    },
)
sandbox_runtime_class = RUNTIME_CLASS.policy
