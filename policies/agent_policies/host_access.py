"""sandbox-no-host-access: a sandbox pod shares none of the node's namespaces, devices or paths."""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .common import (
    SANDBOX_KINDS_PROPERTY,
    SANDBOX_NAMESPACES_PROPERTY,
    Unknowns,
    applies_to,
    dig,
    get,
    is_true,
    item_label,
    items,
    mapping,
    schema,
)
from .workloads import PodTemplate, is_workload, sandbox_template

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def _check_host_namespace(template: PodTemplate, flag: str, report_violation: Callable[[str], None]) -> None:
    if is_true(get(template.spec, flag)):
        report_violation(
            f"{template.who}: remove {template.field(flag)} (set it to false); "
            "sandbox pods must not share the node's namespaces."
        )


def _check_privileged(
    template: PodTemplate, list_name: str, report_violation: Callable[[str], None], unknowns: Unknowns
) -> None:
    for index, container in enumerate(items(get(template.spec, list_name), unknowns)):
        if mapping(container) is None:
            continue
        try:
            privileged = is_true(dig(container, "securityContext", "privileged"))
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        if privileged:
            report_violation(
                f"{template.who}: set {template.field(list_name)}[{item_label(container, index)}]"
                ".securityContext.privileged to false; sandbox containers must not be privileged."
            )


def _check_host_path(template: PodTemplate, report_violation: Callable[[str], None], unknowns: Unknowns) -> None:
    for index, volume in enumerate(items(get(template.spec, "volumes"), unknowns)):
        if mapping(volume) is None:
            continue
        try:
            host_path = get(volume, "hostPath")
        except UnknownValueError:
            host_path = True  # present, contents unknown: still a hostPath volume
        if host_path is None:
            continue
        report_violation(
            f'{template.who}: remove the hostPath volume "{item_label(volume, index)}" from '
            f"{template.field('volumes')}; sandbox pods must not mount node paths "
            "(use emptyDir or a PersistentVolumeClaim)."
        )


def check_host_access(template: PodTemplate, report: Callable[[str], None], unknowns: Unknowns) -> None:
    """Host namespaces, privileged containers and hostPath volumes; a patch is judged on the fields it sets."""
    for flag in _HOST_NAMESPACES:
        unknowns.run(_check_host_namespace, template, flag, report)
    for list_name in _CONTAINER_LISTS:
        unknowns.run(_check_privileged, template, list_name, report, unknowns)
    unknowns.run(_check_host_path, template, report, unknowns)


def sandbox_no_host_access_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = sandbox_template(args)
    if template is None:
        return
    unknowns = Unknowns()
    check_host_access(template, report_violation, unknowns)
    unknowns.finish()


sandbox_no_host_access = ResourceValidationPolicy(
    name="sandbox-no-host-access",
    description=("Sandbox pods must not be privileged or use hostNetwork, hostPID, hostIPC or hostPath volumes."),
    validate=sandbox_no_host_access_validator,
    config_schema=schema(
        {
            "sandboxNamespaces": SANDBOX_NAMESPACES_PROPERTY,
            "sandboxKinds": SANDBOX_KINDS_PROPERTY,
        }
    ),
)
applies_to(sandbox_no_host_access, is_workload)
