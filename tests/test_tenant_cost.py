"""The tenant cost rules (components/observability/tenant_cost.py) unit-tested with the real ``promtool test rules``
(Debian's prometheus package) on series as kube-state-metrics, OpenCost and LiteLLM export them, Kata pod overhead
included: each tenant is charged its running pods' requests and overhead at its node's prices, a dedicated node whole,
its volumes and its model spend; the budget alert fires above the configured budget."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.observability.tenant_cost import COST, tenant_cost_rule_spec
from tests.configs import parse_config

GIB = 1073741824
ACME = {"namespace": "tenant-acme", "label_agent_platform_io_sandbox": "true", "label_agent_platform_io_tenant": "acme"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    return {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


def inputs() -> list[dict[str, str]]:
    hermes = {"namespace": "tenant-acme", "pod": "hermes-1"}
    pending = {"namespace": "tenant-acme", "pod": "hermes-2"}
    claw = {"namespace": "tenant-globex", "pod": "openclaw-1"}
    globex = {**ACME, "namespace": "tenant-globex", "label_agent_platform_io_tenant": "globex"}
    return [
        # OpenCost: a shared Kata node at 0.04 USD/core-hour and 0.005 USD/GiB-hour; globex's dedicated node
        series("node_cpu_hourly_cost", {"node": "kata-1", "instance_type": "m8i.2xlarge"}, "0.04x300"),
        series("node_ram_hourly_cost", {"node": "kata-1", "instance_type": "m8i.2xlarge"}, "0.005x300"),
        series("node_cpu_hourly_cost", {"node": "kata-2"}, "0.04x300"),
        series("node_ram_hourly_cost", {"node": "kata-2"}, "0.005x300"),
        series("node_total_hourly_cost", {"node": "kata-2"}, "0.5x300"),
        series("pv_hourly_cost", {"persistentvolume": "pv-1", "volumename": "vol-1"}, "0.0001x300"),
        # kube-state-metrics
        series("kube_namespace_labels", ACME, "1x300"),
        series("kube_namespace_labels", globex, "1x300"),
        series("kube_node_labels", {"node": "kata-2", "label_agent_platform_io_dedicated_tenant": "globex"}, "1x300"),
        series("kube_node_labels", {"node": "kata-1"}, "1x300"),
        series("kube_pod_info", {**hermes, "node": "kata-1"}, "1x300"),
        series("kube_pod_status_phase", {**hermes, "phase": "Running"}, "1x300"),
        series("kube_pod_status_phase", {**hermes, "phase": "Pending"}, "0x300"),
        series("kube_pod_container_resource_requests", {**hermes, "container": "hermes", "resource": "cpu"}, "2x300"),
        series(
            "kube_pod_container_resource_requests",
            {**hermes, "container": "hermes", "resource": "memory"},
            f"{4 * GIB}x300",
        ),
        series("kube_pod_overhead_cpu_cores", hermes, "0.25x300"),  # kata-clh: 250m / 130Mi
        series("kube_pod_overhead_memory_bytes", hermes, "136314880x300"),
        # a pod not yet scheduled costs nothing
        series("kube_pod_info", {**pending, "node": ""}, "1x300"),
        series("kube_pod_status_phase", {**pending, "phase": "Pending"}, "1x300"),
        series("kube_pod_container_resource_requests", {**pending, "container": "hermes", "resource": "cpu"}, "2x300"),
        series("kube_pod_overhead_cpu_cores", pending, "0.25x300"),
        # globex's pod on its dedicated node: the node is charged, not the pod
        series("kube_pod_info", {**claw, "node": "kata-2"}, "1x300"),
        series("kube_pod_status_phase", {**claw, "phase": "Running"}, "1x300"),
        series("kube_pod_container_resource_requests", {**claw, "container": "openclaw", "resource": "cpu"}, "1x300"),
        series("kube_pod_overhead_cpu_cores", claw, "0.25x300"),
        series("kube_persistentvolume_capacity_bytes", {"persistentvolume": "pv-1"}, f"{10 * GIB}x300"),
        series(
            "kube_persistentvolume_claim_ref",
            {"persistentvolume": "pv-1", "claim_namespace": "tenant-acme", "name": "hermes-data"},
            "1x300",
        ),
        # LiteLLM: acme's team spends 0.06 USD a minute (3.6 USD an hour)
        series(
            "litellm_spend_metric_total",
            {"team": "tenant-acme", "team_alias": "tenant-acme", "model": "m"},
            "0+0.06x300",
        ),
    ]


def expected(tenant: str, part: str, value: float) -> tuple[str, float]:
    return f'{{part="{part}",tenant="{tenant}"}}', value


def close_to(labels: str, value: float, aggregation: str = "") -> dict[str, object]:
    """A promtool check that the series ``labels`` of ``COST`` (optionally aggregated) is ``value`` at 1 h."""
    selector = f"{aggregation}({COST}{labels})"
    return {
        "expr": f"abs({selector} - {value!r}) < bool 1e-9",
        "eval_time": "60m",
        "exp_samples": [{"labels": labels, "value": 1}],
    }


def test_rules_charge_each_tenant_its_pods_overhead_volumes_nodes_and_models(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing (apt-get install prometheus)")
    cfg = parse_config(
        tenants=[
            {"name": "acme", "monthlyBudget": 5, "agents": [{"name": "hermes", "type": "hermes"}]},
            {"name": "globex", "monthlyBudget": 1000, "agents": [{"name": "openclaw", "type": "openclaw"}]},
        ]
    )
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(tenant_cost_rule_spec(cfg.tenants)))
    overhead = 0.25 * 0.04 + 130 / 1024 * 0.005
    cost_at_1h = [
        expected("acme", "requests", 2 * 0.04 + 4 * 0.005),
        expected("acme", "kata_overhead", overhead),
        expected("globex", "dedicated_nodes", 0.5),
        expected("acme", "storage", 10 * 0.0001),
        expected("acme", "models", 3.6),
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs(),
                # promtool 2.42 compares floats exactly: each value within 1e-9 of what it should be
                "promql_expr_test": [
                    {"expr": f"count({COST})", "eval_time": "60m", "exp_samples": [{"labels": "{}", "value": 5}]},
                    *(close_to(labels, value) for labels, value in cost_at_1h),
                    close_to('{tenant="acme"}', 0.1 + overhead + 0.001 + 3.6, "sum by (tenant) "),
                    close_to('{tenant="globex"}', 0.5, "sum by (tenant) "),
                ],
                "alert_rule_test": [
                    {"alertname": "TenantOverMonthlyBudget", "eval_time": "30m", "exp_alerts": []},
                    {
                        "alertname": "TenantOverMonthlyBudget",
                        "eval_time": "250m",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "tenant": "acme"},
                                "exp_annotations": {
                                    "summary": "Tenant acme passed its monthly budget of 5 USD",
                                    "description": (
                                        "Its cost over 30d (compute, Kata overhead, volumes, dedicated nodes, models) "
                                        "passed 5 USD: see the Tenant cost dashboard"
                                    ),
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run(
        [promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
