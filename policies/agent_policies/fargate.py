"""fargate-sandbox-pods (stack): a sandbox pod may go without a runtime class only as a Fargate pod, in a namespace
bound to a Fargate profile; fargate-profile-selectors: a profile binds one namespace exactly, with the tier label.

A namespace is bound when a FargateProfile of the stack selects it by its exact name and exactly the label
``agent-platform.io/isolation=fargate`` (or when the pack's ``fargateNamespaces`` lists it: profiles made elsewhere).
In such a namespace every sandbox pod must be a Fargate pod: no runtime class, not a DaemonSet, the tier label, and
nothing that steers it onto an EC2 node (nodeName, another scheduler, node selectors or affinity, the
``eks.amazonaws.com/compute-type`` annotation). Outside one, a sandbox without a runtime class is refused as always.
The admission policy ``agent-platform-sandbox`` decides the same (components/admission/sandbox_admission.py
fargate_validations); why each condition: docs/fargate.md#the-two-gates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation
from pulumi_policy.proxy import UnknownValueError

from .common import Unknowns, config_strings, dig, get, mapping, string, string_list_property
from .placement import FARGATE_PROFILE, Resolved, fargate_selectors
from .stack import Stack
from .workloads import SHAPES, PodTemplate

ISOLATION_LABEL = "agent-platform.io/isolation"  # components/contracts/labels.py, tested equal
FARGATE = "fargate"
FARGATE_SCHEDULER = "fargate-scheduler"
FARGATE_COMPUTE_TYPE = "eks.amazonaws.com/compute-type"
WILDCARDS = ("*", "?")
FARGATE_NAMESPACES_PROPERTY = string_list_property(
    "Namespaces bound to a Fargate profile made outside this stack (exact namespace and the label "
    f"{ISOLATION_LABEL}={FARGATE}): their sandbox pods must be Fargate pods, and may go without a runtime class.",
    (),
)
WHY = "the namespace is bound to a Fargate profile, so every sandbox pod there must be a Fargate pod"


def configured_namespaces(config: Mapping[str, Any]) -> tuple[str, ...]:
    return config_strings(config, "fargateNamespaces", ())


def claims_fargate(template: PodTemplate) -> bool:
    """No runtime class and the tier label: a pod that says it is a Fargate pod (the stack rule decides whether its
    namespace lets it be one). Raises UnknownValueError when that depends on an unknown value."""
    if template.runtime_class() is not None or get(template.spec, "runtimeClassName") is not None:
        return False
    if template.labels_unknown is not None:
        raise template.labels_unknown
    return get(template.labels, ISOLATION_LABEL) == FARGATE


def defers_to_fargate(template: PodTemplate, configured: Sequence[str]) -> bool:
    """The resource policies leave the runtime class of these to fargate-sandbox-pods (a stack rule: only the stack
    shows which namespaces its profiles bind)."""
    namespace = template.resource.namespace
    if namespace is not None and namespace in configured:
        return True
    try:
        return claims_fargate(template)
    except UnknownValueError:
        return False


def _selector_problems(namespace: str, labels: Mapping[str, Any]) -> Iterable[str]:
    if any(w in namespace for w in WILDCARDS):
        yield f"namespace {namespace!r} has a wildcard: it could capture another namespace, a sandbox one included"
    for key in labels:
        value = string(get(labels, key)) or ""
        if any(w in key or w in value for w in WILDCARDS):
            yield f"label {key}={value} has a wildcard"
    if dict(labels) != {ISOLATION_LABEL: FARGATE}:
        shown = ", ".join(f"{k}={labels[k]}" for k in labels) or "none"
        yield f"labels ({shown}) are not exactly {ISOLATION_LABEL}={FARGATE}"


def bound_namespaces(stack: Stack, report_violation: ReportViolation | None, unknowns: Unknowns) -> set[str]:
    """Namespaces the stack's Fargate profiles bind (exact name, exactly the tier label); with ``report_violation``,
    every selector that does not is reported on its profile (fargate-profile-selectors)."""
    bound: set[str] = set()
    for profile in stack.of_type(FARGATE_PROFILE):
        try:
            for index, (namespace, labels) in enumerate(fargate_selectors(profile)):
                problems = list(_selector_problems(namespace, labels))
                if not problems:
                    bound.add(namespace)
                elif report_violation is not None:
                    report_violation(
                        f"FargateProfile {profile.name}: selectors[{index}]: {'; '.join(problems)}. Select one "
                        f"namespace by its exact name and exactly the label {ISOLATION_LABEL}={FARGATE}: both gates "
                        "accept a pod without a runtime class only there.",
                        profile.urn,
                    )
        except UnknownValueError as error:
            unknowns.record(error)
    return bound


def _annotations(template: PodTemplate) -> Any:
    shape = SHAPES.get(template.resource.kind_key)  # type: ignore[arg-type]
    return None if shape is None else dig(template.resource.props, *shape.labels_path[:-1], "annotations")


def fargate_problems(template: PodTemplate) -> list[str]:
    """What keeps a sandbox pod in a Fargate namespace from being a Fargate pod (the admission policy's rules, in its
    order). A patch is judged on the fields it sets."""
    spec, field, kind = template.spec, template.field, template.resource.kind
    problems = []
    if get(spec, "runtimeClassName") is not None:
        problems.append(f"remove {field('runtimeClassName')}")
    if kind == "DaemonSet":
        problems.append("use a Deployment, not a DaemonSet (Fargate runs no DaemonSets)")
    if not template.patch or template.labels is not None:
        if template.labels_unknown is not None:
            raise template.labels_unknown
        if get(template.labels, ISOLATION_LABEL) != FARGATE:
            problems.append(
                f"label the pod template {ISOLATION_LABEL}={FARGATE}, as the tenant's Fargate profile selects"
            )
    if get(spec, "nodeName") is not None:
        problems.append(f"remove {field('nodeName')} (it skips the scheduler)")
    scheduler = get(spec, "schedulerName")
    if (kind == "Pod" and not template.patch and scheduler != FARGATE_SCHEDULER) or (
        scheduler is not None and scheduler != FARGATE_SCHEDULER
    ):
        problems.append(f"leave {field('schedulerName')} to EKS (a Pod is scheduled by {FARGATE_SCHEDULER})")
    selector = get(spec, "nodeSelector")
    entries = mapping(selector)
    if selector is not None and (
        entries is None or any(key != FARGATE_COMPUTE_TYPE or get(entries, key) != FARGATE for key in entries)
    ):
        problems.append(f"remove {field('nodeSelector')} (only {FARGATE_COMPUTE_TYPE}={FARGATE} is allowed)")
    if get(get(spec, "affinity"), "nodeAffinity") is not None:
        problems.append(f"remove {field('affinity', 'nodeAffinity')}")
    annotation = get(_annotations(template), FARGATE_COMPUTE_TYPE)
    if annotation is not None and annotation != FARGATE:
        problems.append(f"remove the pod annotation {FARGATE_COMPUTE_TYPE}={annotation} (it keeps a pod off Fargate)")
    return problems


def check_fargate_workload(
    template: PodTemplate,
    fargate_namespaces: set[str],
    reason: str,
    report: Callable[[str], None],
) -> None:
    """One sandbox workload: the Fargate rules in a bound namespace; elsewhere, a claim of Fargate is refused."""
    resource: Resolved = template.resource
    namespace = resource.namespace
    if namespace is not None and namespace in fargate_namespaces:
        problems = fargate_problems(template)
        if problems:
            report(f"{template.who}: {'; '.join(problems)}; {WHY} ({namespace}).{reason}")
    elif claims_fargate(template):
        where = f"namespace {namespace}" if namespace else "its namespace"
        report(
            f"{template.who}: set {template.field('runtimeClassName')} to a Kata runtime class; {where} is bound to "
            f"no Fargate profile (exact namespace and {ISOLATION_LABEL}={FARGATE}), so the pod would run on an EC2 "
            f"node without a micro-VM.{reason}"
        )
