"""Checks on what the stack really installs: the program's own objects plus every rendered third-party install.

Each finding names the install (``helm monitoring``, ``program``) and the values key or object, and says what breaks
in a real deploy. One module per family of checks; :func:`run_checks` runs them all over one :class:`Stack`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tools.program import ProgramResult
from tools.render import Rendered
from tools.render_checks.installs import (
    check_api_services,
    check_namespaces,
    check_schemas,
    check_values,
    check_versions,
)
from tools.render_checks.model import Finding, Obj, Pod, Stack, build_stack, matches, pods_of
from tools.render_checks.pods import check_images, check_placement, image_problem, lands_on_core, normalize_image
from tools.render_checks.selectors import check_scrape_targets, check_selectors

__all__ = [
    "Finding",
    "Obj",
    "Pod",
    "Stack",
    "build_stack",
    "check_api_services",
    "check_images",
    "check_namespaces",
    "check_placement",
    "check_schemas",
    "check_scrape_targets",
    "check_selectors",
    "check_values",
    "check_versions",
    "image_problem",
    "lands_on_core",
    "matches",
    "normalize_image",
    "pods_of",
    "run_checks",
]


def run_checks(result: ProgramResult, rendered: Sequence[Rendered], kube_version: str) -> list[Finding]:
    stack = build_stack(result, rendered)
    checks: Iterable[Iterable[Finding]] = (
        check_versions(rendered),
        check_values(rendered, kube_version),
        check_schemas(stack, kube_version),
        check_namespaces(stack),
        check_api_services(stack),
        check_selectors(stack),
        check_scrape_targets(stack, rendered),
        check_placement(stack),
        check_images(stack, rendered),
    )
    return [finding for check in checks for finding in check]
