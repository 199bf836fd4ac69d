"""Every third-party install rendered with the real vendored charts and checked; each deploy-breaking defect
of issue 11, injected back, is reported by name. Skipped (reported) where ../shared is absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import gateway, kata_runtime, observability, sandbox
from components.config import project_schema
from tests.conftest import program_result
from tools.preview import check_installs, kubernetes_version
from tools.program import PLACEHOLDER, run_program
from tools.render import SHARED, catalog, installs, render_all
from tools.render_checks import (
    build_stack,
    check_images,
    check_namespaces,
    check_placement,
    check_schemas,
    check_scrape_targets,
    check_selectors,
    check_values,
    check_versions,
    image_problem,
    lands_on_core,
)

pytestmark = pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")
INSTALLS = {"aws-load-balancer-controller", "karpenter-crd", "karpenter", "kata-deploy", "litellm", "monitoring", "agent-sandbox"}  # fmt: skip


def findings(stack: str = "dev", overrides: dict[str, Any] | None = None, values: bool = False) -> list[str]:
    """Render checks of a fresh program run (the values-effect check only when asked: it renders per key)."""
    result = run_program(stack, overrides)
    kube = kubernetes_version(result)
    rendered = render_all(result, kube)
    objects = build_stack(result, rendered)
    checks = [
        check_versions(rendered),
        check_schemas(objects, kube),
        check_namespaces(objects),
        check_selectors(objects),
        check_scrape_targets(objects, rendered),
        check_placement(objects),
        check_images(objects, rendered),
    ]
    if values:
        checks.append(check_values(rendered, kube))
    return [str(f) for check in checks for f in check]


def wrap(module: Any, name: str, edit: Callable[[dict[str, Any]], None]) -> Callable[..., dict[str, Any]]:
    """``module.name`` (a values builder) with ``edit`` applied to what it returns."""
    original = getattr(module, name)

    def patched(*args: Any, **kwargs: Any) -> dict[str, Any]:
        values = original(*args, **kwargs)
        edit(values)
        return values

    return patched


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_install_renders_and_checks_clean(stack: str, tmp_path: Path) -> None:
    result = program_result(stack)
    found, skipped = check_installs(result, tmp_path)
    assert skipped == ""
    assert [str(f) for f in found] == []
    rendered = {p.stem for p in (tmp_path / "rendered").glob("*.yaml")}
    assert rendered == INSTALLS
    text = "".join(p.read_text() for p in (tmp_path / "rendered").glob("*.yaml"))
    assert "kind: Deployment" in text and PLACEHOLDER not in text  # secrets are masked before rendering


def test_every_pinned_version_is_published_and_a_config_default(dev) -> None:  # noqa: ANN001
    defaults = {str(d.get("default")).lstrip("v") for d in project_schema().values()}
    charts = catalog()["charts"]
    for install in installs(dev):
        assert install.version in charts[install.chart]["known_versions"], install
        assert install.version.lstrip("v") in defaults, f"{install.label}: version not a Pulumi.yaml default"


def test_defect_1_unpublished_chart_version_is_reported() -> None:
    found = findings(overrides={"agent-platform:kubePrometheusStackVersion": "81.4.5"})
    assert any("helm monitoring: version 81.4.5: is not a published version" in f for f in found), found


def test_defect_2_extensions_yaml_alone_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MANIFEST", "extensions.yaml")
    found = findings()
    assert any(
        "manifest agent-sandbox: Deployment agent-sandbox-system/agent-sandbox-controller: namespace "
        "agent-sandbox-system is created by nothing" in f
        for f in found
    ), found


def test_defect_3_withdrawn_bitnami_image_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway, "litellm_values", wrap(gateway, "litellm_values", lambda v: v.update(db={"deployStandalone": True})))  # fmt: skip
    found = findings()
    assert any("StatefulSet litellm/litellm-postgresql container postgresql: image docker.io/bitnami/postgresql" in f and "withdrew" in f for f in found), found  # fmt: skip


def test_defect_4_scraping_a_kata_monitor_that_does_not_run_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kata_runtime, "kata_deploy_values", wrap(kata_runtime, "kata_deploy_values", lambda v: v.pop("monitor")))  # fmt: skip
    found = findings()
    assert any("program: PodMonitor kata-system/kata-monitor: selector" in f and "matches no pod" in f for f in found), found  # fmt: skip


def test_defect_4_a_node_port_scrape_job_without_listener_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    job = {
        "job_name": "kata-monitor",
        "kubernetes_sd_configs": [{"role": "node"}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_node_address_InternalIP"],
                "target_label": "__address__",
                "replacement": "$1:8090",
            }
        ],  # fmt: skip
    }
    edit = lambda v: v["prometheus"]["prometheusSpec"].update(additionalScrapeConfigs=[job])  # noqa: E731
    monkeypatch.setattr(observability, "stack_values", wrap(observability, "stack_values", edit))
    found = findings()
    assert any("additionalScrapeConfigs[kata-monitor]: scrapes port 8090" in f for f in found), found


def test_defect_5_control_plane_monitors_eks_does_not_expose_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    edit = lambda v: [v.pop(k) for k in ("kubeControllerManager", "kubeScheduler", "kubeEtcd")]  # noqa: E731
    monkeypatch.setattr(observability, "stack_values", wrap(observability, "stack_values", edit))
    found = "\n".join(findings())
    for component in ("kube-controller-manager", "kube-scheduler", "kube-etcd"):
        assert f"Service kube-system/monitoring-kube-prometheus-{component}: selector" in found, found


def test_defect_6_selectors_that_match_the_migration_job_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway, "litellm_values", wrap(gateway, "litellm_values", lambda v: v.update(migrationJob={"enabled": True})))  # fmt: skip
    found = "\n".join(findings())
    # the chart's ClusterIP Service (the NLB now targets the tenant gateway) and the program's PDB
    for selector in ("helm litellm: Service litellm/litellm", "program: PodDisruptionBudget litellm/litellm"):
        assert f"{selector}: selector" in found and "also matches the pods of Job litellm/litellm-migrations" in found


def test_defect_7_unpinned_images_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway, "litellm_values", wrap(gateway, "litellm_values", lambda v: v.pop("image")))
    monkeypatch.setattr(kata_runtime, "kata_deploy_values", wrap(kata_runtime, "kata_deploy_values", lambda v: v.pop("kubectlImage")))  # fmt: skip
    found = "\n".join(findings())
    assert "Deployment litellm/litellm container litellm: image ghcr.io/berriai/litellm-database:1.93.0 comes from the defaults of an approximate vendored chart" in found  # fmt: skip
    assert "image quay.io/kata-containers/kubectl:latest uses the moving tag latest" in found


def test_unknown_and_ineffective_values_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(values: dict[str, Any]) -> None:
        values["snapshotter"] = {"setpu": []}  # a typo
        values["debug"] = False  # the chart's default

    monkeypatch.setattr(kata_runtime, "kata_deploy_values", wrap(kata_runtime, "kata_deploy_values", edit))
    found = [f for f in findings(values=True) if "values." in f]
    assert "helm kata-deploy: values.snapshotter.setpu: changes nothing in the rendered output (the chart does not know this key); remove or fix it" in found  # fmt: skip
    assert "helm kata-deploy: values.debug: changes nothing in the rendered output (it equals the chart default or is ignored); remove or fix it" in found  # fmt: skip


def test_a_system_pod_that_may_land_on_kata_nodes_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    edit = lambda v: v.update(nodeSelector={}, tolerations=[{"operator": "Exists"}])  # noqa: E731
    monkeypatch.setattr(gateway, "litellm_values", wrap(gateway, "litellm_values", edit))
    found = "\n".join(findings())
    assert "helm litellm: Deployment litellm/litellm: system pod would not land on core nodes" in found


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, True),  # untainted nodes are core nodes
        ({"nodeSelector": {"node-role.agent-platform.io/core": "true"}}, True),
        ({"nodeSelector": {"workload-type": "kata"}}, False),
        ({"tolerations": [{"key": "kata", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]}, False),
        ({"tolerations": [{"operator": "Exists"}], "nodeSelector": {"node-role.agent-platform.io/core": "true"}}, True),
        ({"tolerations": [{"key": "kata", "operator": "Exists"}]}, False),
    ],
)
def test_lands_on_core(spec: dict[str, Any], expected: bool) -> None:
    assert lands_on_core(spec) is expected


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("bitnami/postgresql:16.2.0", "withdrew"),
        ("k8s.gcr.io/pause:3.9", "frozen"),
        ("quay.io/x/y", "pins no tag"),
        ("quay.io/x/y:latest", "moving tag latest"),
        ("nginx", "pins no tag"),
        ("registry.k8s.io/pause:3.10", None),
        ("ghcr.io/x/y@sha256:" + "0" * 64, None),
        ("localhost:5000/y:1.0", None),
    ],
)
def test_image_problems(image: str, problem: str | None) -> None:
    found = image_problem(image)
    assert (found is None) if problem is None else (problem in (found or ""))
