"""Every third-party install rendered with the real vendored charts and checked; each deploy-breaking defect
of issue 11, injected back, is reported by name. Skipped (reported) where ../shared is absent."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, project_schema
from components.config.versions import VERSION_KEYS
from components.gateway import values as gateway
from components.observability import monitoring as observability
from components.runtime import agent_sandbox as sandbox
from components.runtime import kata_deploy as kata_runtime
from tests.conftest import FEATURES, all_renders, program_result, rendered_installs, skip_unrenderable, unrenderable
from tools.preview import check_installs, kubernetes_version
from tools.preview import main as preview_main
from tools.program import PLACEHOLDER, load_stack, run_program
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
from tools.render_checks.model import Obj, Stack

pytestmark = pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")
INSTALLS = {
    "aws-load-balancer-controller",
    "karpenter-crd",
    "karpenter",
    "kata-deploy",
    "litellm",
    "monitoring",
    "opencost",  # cost per tenant (components/observability/tenant_cost.py)
    "agent-sandbox",
}


def findings(stack: str = "dev", overrides: dict[str, Any] | None = None, values: bool = False) -> list[str]:
    """Render checks of a fresh program run (the values-effect check only when asked: it renders per key)."""
    result = run_program(stack, overrides)  # fresh: the defect tests patch the components under it
    kube = kubernetes_version(result)
    rendered = render_all(result, kube)
    skip_unrenderable(unrenderable(rendered))
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


def test_every_install_renders() -> None:
    """The one report of an install Helm cannot render (a bumped chart vendored without its subcharts, say): every
    test that needs it skips, naming it."""
    variants = {"dev": None, "staging": None, "prod": None, "dev+features": FEATURES}
    broken = {name: unrenderable(all_renders(name.split("+")[0], o)) for name, o in variants.items()}
    assert not any(broken.values()), broken


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_install_renders_and_checks_clean(stack: str, tmp_path: Path) -> None:
    rendered_installs(stack)  # skips when an install cannot be rendered (test_every_install_renders)
    result = program_result(stack)
    found, skipped = check_installs(result, tmp_path)
    assert skipped == ""
    assert [str(f) for f in found] == []
    rendered = {p.stem for p in (tmp_path / "rendered").glob("*.yaml")}
    assert rendered == INSTALLS | ({"keda"} if stack == "staging" else set())  # staging schedules an agent
    text = "".join(p.read_text() for p in (tmp_path / "rendered").glob("*.yaml"))
    assert "kind: Deployment" in text
    assert PLACEHOLDER not in text


def test_every_optional_feature_renders_clean(tmp_path: Path) -> None:
    """kata-fc (kata-monitor), the gVisor tier and the Kata managed node group, all on: still 0 findings."""
    rendered_installs("dev", FEATURES)
    found, skipped = check_installs(program_result("dev", FEATURES), tmp_path)
    assert skipped == ""
    assert [str(f) for f in found] == []


def test_every_pinned_version_is_published_and_a_config_default(dev) -> None:  # noqa: ANN001
    defaults = {str(d.get("default")).lstrip("v") for d in project_schema().values()}
    charts = catalog()["charts"]
    for install in installs(dev):
        assert install.version in charts[install.chart]["known_versions"], install
        assert install.version.lstrip("v") in defaults, f"{install.label}: version not a Pulumi.yaml default"


def test_every_install_version_comes_from_a_checked_version_key() -> None:
    """Each install (every optional feature on) is in VERSION_KEYS under the key that sets its version, so a bad
    version is a config error naming that key, never only a render finding."""
    schema = project_schema()
    for install in installs(program_result("dev", FEATURES)):
        keys = [key for key, refs in VERSION_KEYS.items() if install.chart in refs]
        assert keys, f"{install.label}: add the config key that sets its version to VERSION_KEYS"
        assert install.version.lstrip("v") == str(schema[keys[0]]["default"]).lstrip("v"), install.label


# The seven defects of issue 11, injected back: one program run for defects 2 to 7, one test per defect. Defect 1
# (a chart version that is not published) is a configuration error now, naming the key that set it.


@pytest.fixture(scope="module")
def defects_b() -> str:
    scrape_job = {
        "job_name": "kata-monitor",
        "kubernetes_sd_configs": [{"role": "node"}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_node_address_InternalIP"],
                "target_label": "__address__",
                "replacement": "$1:8090",
            }
        ],
    }

    def litellm(values: dict[str, Any]) -> None:
        values["db"] = {"deployStandalone": True}  # defect 3: the Bitnami subchart
        values["migrationJob"] = {"enabled": True}  # defect 6: the chart's Job shares the proxy pods' labels
        del values["image"]  # defect 7: the chart's default image
        values.update(nodeSelector={}, tolerations=[{"operator": "Exists"}])  # may land on Kata nodes

    def monitoring(values: dict[str, Any]) -> None:
        values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"] = [scrape_job]  # defect 4 (node job)
        for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):  # defect 5
            del values[component]

    def kata(values: dict[str, Any]) -> None:
        del values["monitor"]  # defect 4: a PodMonitor for a kata-monitor that does not run
        del values["kubectlImage"]  # defect 7: kubectl:latest

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sandbox, "MANIFEST", "extensions.yaml")  # defect 2
        monkeypatch.setattr(gateway, "litellm_values", wrap(gateway, "litellm_values", litellm))
        monkeypatch.setattr(observability, "stack_values", wrap(observability, "stack_values", monitoring))
        monkeypatch.setattr(kata_runtime, "kata_deploy_values", wrap(kata_runtime, "kata_deploy_values", kata))
        return "\n".join(findings(overrides={"agent-platform:kataFirecracker": True}))  # kata-fc: kata-monitor runs


def test_defect_1_unpublished_chart_version_is_a_config_error_naming_its_key() -> None:
    with pytest.raises(ConfigError) as error:
        load_stack("dev", {"agent-platform:kubePrometheusStackVersion": "81.4.5"})
    assert str(error.value).startswith(
        "agent-platform:kubePrometheusStackVersion: 81.4.5 is not a published version of kube-prometheus-stack"
    )


def test_the_render_check_still_names_an_install_at_an_unpublished_version() -> None:
    """Behind the config check, for a version set anywhere else: the render check reports it by install."""
    item = next(r for r in rendered_installs("dev") if r.install.name == "monitoring")
    odd = dataclasses.replace(item, install=dataclasses.replace(item.install, version="81.4.5"))
    assert any("helm monitoring: version 81.4.5: is not a published version" in str(f) for f in check_versions([odd]))


def test_defect_2_extensions_yaml_alone_is_reported(defects_b: str) -> None:
    assert (
        "manifest agent-sandbox: Deployment agent-sandbox-system/agent-sandbox-controller: namespace "
        "agent-sandbox-system is created by nothing"
    ) in defects_b


def test_defect_3_withdrawn_bitnami_image_is_reported(defects_b: str) -> None:
    assert (
        "StatefulSet litellm/litellm-postgresql container postgresql: image docker.io/bitnami/postgresql" in defects_b
    )
    assert "Bitnami withdrew its versioned images" in defects_b


def test_defect_4_scraping_a_kata_monitor_that_does_not_run_is_reported(defects_b: str) -> None:
    assert "program: PodMonitor kata-system/kata-monitor: selector" in defects_b
    assert (
        "additionalScrapeConfigs[kata-monitor]: scrapes port 8090 (node discovery) but no hostNetwork DaemonSet"
        in defects_b
    )


def test_defect_5_control_plane_monitors_eks_does_not_expose_are_reported(defects_b: str) -> None:
    for component in ("kube-controller-manager", "kube-scheduler", "kube-etcd"):
        assert f"Service kube-system/monitoring-kube-prometheus-{component}: selector" in defects_b


def test_defect_6_selectors_that_match_the_migration_job_are_reported(defects_b: str) -> None:
    # the chart's ClusterIP Service (the NLB now targets the tenant gateway) and the program's PDB
    for selector in ("helm litellm: Service litellm/litellm", "program: PodDisruptionBudget litellm/litellm"):
        assert f"{selector}: selector" in defects_b
    assert "also matches the pods of Job litellm/litellm-migrations" in defects_b


def test_defect_7_unpinned_images_are_reported(defects_b: str) -> None:
    assert (
        "Deployment litellm/litellm container litellm: image ghcr.io/berriai/litellm-database:1.93.0 comes from the defaults of an approximate vendored chart"
        in defects_b
    )
    assert "image quay.io/kata-containers/kubectl:latest uses the moving tag latest" in defects_b


def test_a_system_pod_that_may_land_on_kata_nodes_is_reported(defects_b: str) -> None:
    assert "helm litellm: Deployment litellm/litellm: system pod would not land on core nodes" in defects_b


def test_unknown_and_ineffective_values_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(values: dict[str, Any]) -> None:
        values["snapshotter"] = {"setpu": []}  # a typo
        values["debug"] = False  # the chart's default

    monkeypatch.setattr(kata_runtime, "kata_deploy_values", wrap(kata_runtime, "kata_deploy_values", edit))
    found = [f for f in findings(values=True) if "values." in f]
    assert (
        "helm kata-deploy: values.snapshotter.setpu: changes nothing in the rendered output (the chart does not know this key); remove or fix it"
        in found
    )
    assert (
        "helm kata-deploy: values.debug: changes nothing in the rendered output (it equals the chart default or is ignored); remove or fix it"
        in found
    )


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


def test_a_render_finding_fails_the_preview(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """`make preview` (tools.preview.main) exits 1 on a render finding and prints it; the report names it."""
    monkeypatch.setattr(sandbox, "MANIFEST", "extensions.yaml")
    assert preview_main(["--stack", "dev", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "[render] manifest agent-sandbox: Deployment agent-sandbox-system/agent-sandbox-controller" in out
    report = json.loads((tmp_path / "render-report.json").read_text())
    assert report["skipped"] is None
    assert any("agent-sandbox-system" in f["key"] for f in report["findings"])


def test_a_daemon_set_that_would_follow_pods_onto_fargate_is_reported() -> None:
    """Fargate runs no DaemonSets: one that tolerates every taint makes a pod per Fargate node that stays Pending,
    unless its affinity excludes Fargate nodes (as the node-exporter chart's default does)."""

    def found(spec: dict[str, Any]) -> list[str]:
        body = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "monitoring"},
            "spec": {"template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}},
        }
        return [f.message for f in check_placement(Stack([Obj("monitoring", body, "monitoring")]))]

    every = {"tolerations": [{"operator": "Exists"}]}
    assert "tolerates Fargate nodes' taint" in found(every)[0]
    not_fargate = {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [not_fargate]}]
            }
        }
    }
    assert found({**every, "affinity": affinity}) == []
    assert found({**every, "nodeSelector": {"workload-type": "kata"}}) == []
    assert found({"tolerations": [{"key": "kata", "operator": "Exists"}]}) == []
    assert found({**every, "nodeSelector": {"kubernetes.io/os": "linux"}})  # Fargate nodes are linux too
