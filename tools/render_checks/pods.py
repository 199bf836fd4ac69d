"""Placement and images: every system pod lands on core nodes and every model server on the GPU pool, and every image
is pinned, from a registry that still serves it, and set explicitly where the vendored chart is approximate."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from components.contracts.labels import (
    CAPACITY_PLACEHOLDER_LABEL,
    CORE_NODE_SELECTOR,
    FARGATE,
    FARGATE_COMPUTE_TYPE,
    FARGATE_TAINT,
    GPU_NODE_SELECTOR,
    GPU_TAINT,
    GVISOR_TAINT,
    KATA_TAINT,
    MODEL_SERVER_LABEL,
    SANDBOX_LABEL,
)
from tools.render import Rendered, catalog
from tools.render_checks.model import Finding, Pod, Stack, describe

# Registries or repositories whose images are gone or frozen.
WITHDRAWN_IMAGES = {
    "docker.io/bitnami/": "Bitnami withdrew its versioned images from docker.io/bitnami in 2025",
    "k8s.gcr.io/": "k8s.gcr.io is frozen; images moved to registry.k8s.io",
    "gcr.io/google_containers/": "gcr.io/google_containers is frozen; images moved to registry.k8s.io",
}
CORE_NODE_LABELS = {**CORE_NODE_SELECTOR, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
# Labels a Fargate node has (EKS on Fargate is Linux on x86 only): a node selector outside them keeps a pod off it.
FARGATE_NODE_LABELS = {FARGATE_COMPUTE_TYPE: FARGATE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def _tolerates(spec: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    for toleration in spec.get("tolerations") or []:
        key, op = toleration.get("key"), toleration.get("operator", "Equal")
        effect_ok = toleration.get("effect") in (None, "", taint["effect"])
        if effect_ok and (
            (op == "Exists" and key in (None, "", taint["key"]))
            or (key == taint["key"] and toleration.get("value") == taint["value"])
        ):
            return True
    return False


def lands_on_core(spec: Mapping[str, Any]) -> bool:
    """Whether every node the pod may land on is a core node (the only untainted nodes)."""
    selector = spec.get("nodeSelector") or {}
    if any(CORE_NODE_LABELS.get(k) != v for k, v in selector.items()):
        return False
    pinned = all(selector.get(k) == v for k, v in CORE_NODE_SELECTOR.items())
    return pinned or not any(_tolerates(spec, taint) for taint in (KATA_TAINT, GVISOR_TAINT, GPU_TAINT))


def lands_on_gpu_only(spec: Mapping[str, Any]) -> bool:
    """Whether the pod selects the GPU pool's nodes (and tolerates their taint, or it would never run)."""
    selector = spec.get("nodeSelector") or {}
    return all(selector.get(k) == v for k, v in GPU_NODE_SELECTOR.items()) and _tolerates(spec, GPU_TAINT)


def avoids_fargate(spec: Mapping[str, Any]) -> bool:
    """Whether a pod can never be placed on a Fargate node: it does not tolerate the Fargate taint, selects a label a
    Fargate node lacks, or every required node affinity term excludes ``eks.amazonaws.com/compute-type: fargate``."""
    if not _tolerates(spec, FARGATE_TAINT):
        return True
    selector = spec.get("nodeSelector") or {}
    if any(FARGATE_NODE_LABELS.get(k) != v for k, v in selector.items()):
        return True
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []

    def excludes(term: Mapping[str, Any]) -> bool:
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") != FARGATE_COMPUTE_TYPE:
                continue
            values = expression.get("values") or []
            operator = expression.get("operator")
            if (operator == "NotIn" and FARGATE in values) or (operator == "In" and FARGATE not in values):
                return True
            if operator == "DoesNotExist":
                return True
        return False

    return bool(terms) and all(excludes(term) for term in terms)


def check_placement(stack: Stack) -> Iterator[Finding]:
    for pod in stack.pods:
        if MODEL_SERVER_LABEL in pod.labels and not pod.daemon:
            if not lands_on_gpu_only(pod.spec):
                yield Finding(
                    pod.owner.origin,
                    str(pod.owner),
                    f"model server would not land on the GPU pool (nodeSelector "
                    f"{describe(pod.spec.get('nodeSelector') or {})}); select {describe(GPU_NODE_SELECTOR)} and "
                    f"tolerate {describe(GPU_TAINT)}",
                )
            continue
        if pod.daemon and pod.owner.origin != "EKS" and not avoids_fargate(pod.spec):
            yield Finding(
                pod.owner.origin,
                str(pod.owner),
                f"DaemonSet tolerates Fargate nodes' taint ({FARGATE_COMPUTE_TYPE}={FARGATE}) and does not exclude "
                f"them: add node affinity {FARGATE_COMPUTE_TYPE} NotIn [{FARGATE}] (Fargate runs no DaemonSets)",
            )
        if (
            pod.owner.origin == "EKS"
            or pod.daemon
            or "true" in (pod.labels.get(SANDBOX_LABEL), pod.labels.get(CAPACITY_PLACEHOLDER_LABEL))
        ):
            continue  # node agents, sandboxes and Kata capacity placeholders belong on other nodes
        if not lands_on_core(pod.spec):
            yield Finding(
                pod.owner.origin,
                str(pod.owner),
                f"system pod would not land on core nodes (nodeSelector {describe(pod.spec.get('nodeSelector') or {})}, "
                f"tolerations {describe(pod.spec.get('tolerations') or [])}); select {describe(CORE_NODE_SELECTOR)}",
            )


def _images(pod: Pod) -> Iterator[tuple[str, str]]:
    for container in [*(pod.spec.get("containers") or []), *(pod.spec.get("initContainers") or [])]:
        yield container.get("name", "?"), str(container.get("image", ""))


def value_strings(value: Any) -> Iterator[str]:
    """Every string inside a values tree (dicts and lists)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from value_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from value_strings(v)
    elif isinstance(value, str):
        yield value


def normalize_image(image: str) -> str:
    """``bitnami/postgresql:16`` -> ``docker.io/bitnami/postgresql:16`` (Docker Hub's implicit registry)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    return image if "." in first or ":" in first or first == "localhost" else f"docker.io/{image}"


def image_problem(image: str) -> str | None:
    full = normalize_image(image)
    for prefix, why in WITHDRAWN_IMAGES.items():
        if full.startswith(prefix):
            return f"image {image} cannot be pulled: {why}"
    if "@sha256:" in full:
        return None
    name = full.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image} pins no tag"
    if name.endswith(":latest"):
        return f"image {image} uses the moving tag latest; pin a release tag or digest"
    return None


def check_images(stack: Stack, rendered: Sequence[Rendered]) -> Iterator[Finding]:
    approximate = {
        f"helm {r.install.name}": set(value_strings(r.install.values))
        for r in rendered
        if r.install.kind == "helm"
        and not (catalog()["charts"].get(r.install.chart, {}).get("vendored", {}).get(r.install.version) or {}).get(
            "exact", True
        )
    }
    for pod in stack.pods:
        for container, image in _images(pod):
            problem = image_problem(image)
            if problem:
                yield Finding(pod.owner.origin, f"{pod.owner} container {container}", problem)
            elif pod.owner.origin in approximate:
                values = approximate[pod.owner.origin]
                repository, _, tag = image.rpartition(":")
                if image not in values and not (repository in values and tag in values):
                    yield Finding(
                        pod.owner.origin,
                        f"{pod.owner} container {container}",
                        f"image {image} comes from the defaults of an approximate vendored chart; set it explicitly "
                        "(repository and tag from the platform config)",
                    )
