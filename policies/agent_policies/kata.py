"""Cloud Hypervisor (kata-clh) cannot start init containers."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .common import (
    Unknowns,
    applies_to,
    config_strings,
    get,
    item_label,
    items,
    schema,
    string_list_property,
)
from .workloads import is_workload, workload_template


def kata_clh_no_init_containers_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = workload_template(args)
    if template is None:
        return
    runtime_class = template.runtime_class()
    if runtime_class is None or runtime_class not in config_strings(args.get_config(), "runtimeClasses", ("kata-clh",)):
        return
    unknowns = Unknowns()
    names = [item_label(c, i) for i, c in enumerate(items(get(template.spec, "initContainers"), unknowns))]
    if names:
        report_violation(
            f"{template.who}: remove {template.field('initContainers')} ({', '.join(names)}) "
            f"and move that work into the entrypoint, or use runtimeClassName kata-qemu; "
            f"{runtime_class} (Cloud Hypervisor) fails to start init containers with "
            '"File exists (os error 17)".'
        )
    unknowns.finish()


kata_clh_no_init_containers = ResourceValidationPolicy(
    name="kata-clh-no-init-containers",
    description=(
        'Pods on Cloud Hypervisor (kata-clh) must not use initContainers: they fail with "File exists (os error 17)".'
    ),
    validate=kata_clh_no_init_containers_validator,
    enforcement_level=EnforcementLevel.ADVISORY,
    config_schema=schema(
        {"runtimeClasses": string_list_property("RuntimeClass names backed by Cloud Hypervisor.", ("kata-clh",))}
    ),
)
applies_to(kata_clh_no_init_containers, is_workload)
