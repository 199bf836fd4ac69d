"""sandbox-no-host-access: a sandbox pod shares none of the node's namespaces, devices or paths."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, dig, get, is_true, item_label, items, mapping
from .pod_checks import PodSpecCheck, Report
from .workloads import PodTemplate

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


def check_host_access(template: PodTemplate, _: Mapping[str, Any], report: Report, unknowns: Unknowns) -> None:
    """Host namespaces, privileged containers and hostPath volumes; a patch is judged on the fields it sets."""
    for flag in _HOST_NAMESPACES:
        unknowns.run(_check_host_namespace, template, flag, report)
    for list_name in _CONTAINER_LISTS:
        unknowns.run(_check_privileged, template, list_name, report, unknowns)
    unknowns.run(_check_host_path, template, report, unknowns)


HOST_ACCESS = PodSpecCheck(
    rule="sandbox-no-host-access",
    description="Sandbox pods must not be privileged or use hostNetwork, hostPID, hostIPC or hostPath volumes.",
    run=check_host_access,
)
sandbox_no_host_access = HOST_ACCESS.policy
