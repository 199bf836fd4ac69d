"""Version keys checked against facts: the Kubernetes versions EKS offers and the pinned Karpenter supports, and
the chart and manifest versions upstream published (and ../shared vendored, so the offline preview can render them).

A bump moves the table and the pin together: ``KARPENTER_KUBERNETES`` is keyed by Karpenter minor version, the
Pulumi.yaml descriptions of ``kubernetesVersion`` and ``karpenterVersion`` quote the range it gives for the default
(tests/test_config_errors.py fails when they drift).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from components.config.reader import PROJECT_FILE, check

# Kubernetes minor versions EKS offers (December 2026; docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions
# and the release calendar): 1.31 and older left extended support; 1.32-1.34 are in extended support (extra cost per
# cluster hour), 1.35-1.37 in standard support.
EKS_KUBERNETES: dict[str, str] = {
    "1.32": "extended support (extra cost) until 2027-03-23",
    "1.33": "extended support (extra cost) until 2027-07-29",
    "1.34": "extended support (extra cost) until 2027-12-02",
    "1.35": "standard support until 2027-03-27",
    "1.36": "standard support until 2027-08",
    "1.37": "standard support until 2027-12",
}

# Karpenter minor version -> (oldest, newest) Kubernetes it runs on: MinK8sVersion/MaxK8sVersion in
# aws/karpenter-provider-aws pkg/providers/version/version.go at each tag (v1.13.0 ... v1.14.1), as its
# hack/docs/compatibilitymatrix_gen/compatibility.yaml lists them. Karpenter refuses to run outside the range.
KARPENTER_KUBERNETES: dict[str, tuple[str, str]] = {
    "1.13": ("1.26", "1.36"),
    "1.14": ("1.26", "1.36"),
}


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def kubernetes_range(karpenter_version: str) -> tuple[str, str]:
    """(oldest, newest) Kubernetes minor version a cluster with this Karpenter may run: EKS's offer and Karpenter's
    range intersected. Raises ConfigError on ``karpenterVersion`` when the table has no entry for it."""
    minor = ".".join(map(str, _minor(karpenter_version)))
    check(
        "karpenterVersion",
        minor in KARPENTER_KUBERNETES,
        f"{karpenter_version}: no Kubernetes range recorded for Karpenter {minor}; add it to KARPENTER_KUBERNETES in "
        "components/config/versions.py (MinK8sVersion/MaxK8sVersion in its pkg/providers/version/version.go)",
    )
    karpenter_lo, karpenter_hi = KARPENTER_KUBERNETES[minor]
    eks = sorted(EKS_KUBERNETES, key=_minor)
    lo = max(eks[0], karpenter_lo, key=_minor)
    hi = min(eks[-1], karpenter_hi, key=_minor)
    return lo, hi


def check_kubernetes_version(version: str, karpenter_version: str) -> None:
    lo, hi = kubernetes_range(karpenter_version)
    key = "kubernetesVersion"
    if version not in EKS_KUBERNETES:
        oldest, newest = min(EKS_KUBERNETES, key=_minor), max(EKS_KUBERNETES, key=_minor)
        when = "no longer offered" if _minor(version) < _minor(oldest) else f"not offered yet (newest: {newest})"
        check(key, False, f"{version} is {when} by EKS; use {lo} to {hi}")
    check(
        key,
        _minor(lo) <= _minor(version) <= _minor(hi),
        f"{version} is not supported by Karpenter {karpenter_version} (karpenterVersion), which runs on Kubernetes up "
        f"to {KARPENTER_KUBERNETES['.'.join(map(str, _minor(karpenter_version)))][1]}; use {lo} to {hi}",
    )


# Chart and manifest version keys -> the ../shared/charts/catalog.json entries they set (the catalog's chart keys,
# as tools/render.py derives them from the program's Helm releases and manifest URLs; tests check the mapping).
VERSION_KEYS: dict[str, tuple[str, ...]] = {
    "karpenterVersion": (
        "oci://public.ecr.aws/karpenter/karpenter",
        "oci://public.ecr.aws/karpenter/karpenter-crd",
    ),
    "awsLoadBalancerControllerVersion": ("https://aws.github.io/eks-charts/aws-load-balancer-controller",),
    "litellmChartVersion": ("oci://ghcr.io/berriai/litellm-helm",),
    "kubePrometheusStackVersion": ("https://prometheus-community.github.io/helm-charts/kube-prometheus-stack",),
    "opencostVersion": ("oci://ghcr.io/opencost/charts/opencost",),
    "kataDeployVersion": ("oci://ghcr.io/kata-containers/kata-deploy-charts/kata-deploy",),
    "agentSandboxVersion": ("kubernetes-sigs/agent-sandbox (helm/ source chart)",),
    "kedaVersion": ("https://kedacore.github.io/charts/keda",),
    "nvidiaDevicePluginVersion": ("https://nvidia.github.io/k8s-device-plugin/nvidia-device-plugin",),
}
# Absent in a clone elsewhere (design.md section 5): the check is then skipped, and says so (catalog_note()).
CATALOG_FILE = PROJECT_FILE.parent.parent / "shared" / "charts" / "catalog.json"


@cache
def _catalog(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text())["charts"] if path.is_file() else None


def catalog_note(path: Path = CATALOG_FILE) -> str:
    """Why chart and manifest versions were not checked ("" when they were)."""
    if _catalog(path) is not None:
        return ""
    return f"{path} not found: chart and manifest versions not checked against what upstream published"


def _same(a: str, b: str) -> bool:
    return a.lstrip("v") == b.lstrip("v")


def check_published(values: Mapping[str, Any], path: Path = CATALOG_FILE) -> None:
    """Every chart and manifest version key names a version upstream published and ../shared vendored."""
    charts = _catalog(path)
    if charts is None:
        return
    for key, refs in VERSION_KEYS.items():
        version = str(values[key])
        for ref in refs:
            entry = charts.get(ref) or {}
            published = entry.get("known_versions") or []
            name = ref.split(" (")[0].rsplit("/", 1)[-1]
            check(
                key,
                any(_same(version, v) for v in published),
                f"{version} is not a published version of {name} (newest published: "
                f"{published[-1] if published else 'none recorded'}; ../shared/charts/catalog.json)",
            )
            vendored = sorted(v for v in entry.get("vendored") or {} if any(_same(v, p) for p in published))
            check(
                key,
                any(_same(version, v) for v in vendored),
                f"{version} of {name} is published but not vendored in ../shared, so it cannot be rendered and checked "
                f"offline; vendored: {', '.join(vendored) or 'none'} (ask for it to be vendored)",
            )
