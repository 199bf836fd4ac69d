"""Every Grafana dashboard query names only metrics the platform really exports.

A misspelt metric or an unexported label is no error in Grafana, only an empty panel, so the names are checked
here against what the scrape targets export: the egress proxy's mtail program (parsed), and pinned, cited lists
of kube-state-metrics, node-exporter and LiteLLM at the versions the program installs, and vLLM's as a live server
exports them (tests/fixtures/exported_metrics.json, written by the real-vLLM lab; the last test fails when those
versions move).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from components.config.reader import safe_load
from components.egress.squid import MTAIL_PROGRAM
from components.observability import monitoring as obs
from components.observability.tenant_cost import cost_records
from tests.tokens import RELEASE
from tools.program import ProgramResult
from tools.render import SHARED

EXPORTED = json.loads((Path(__file__).parent / "fixtures" / "exported_metrics.json").read_text())
DASHBOARDS = {stem: json.loads(body) for stem, body in obs.dashboards().items()}

# PromQL words that look like identifiers but name no metric (functions are told apart by the "(" that follows).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "atan2", "bool"}
KEYWORDS |= {"offset", "inf", "nan", "Inf", "NaN"}
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside strings, matchers, ranges and label lists
    that no "(" follows (functions, aggregations) and that are no keyword."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # label values, label_replace arguments
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($tenant, ${node}, $__range)
    expr = re.sub(r"\{[^{}]*\}", "{}", expr)  # label matchers
    expr = re.sub(r"\[[^\[\]]*\]", "", expr)  # ranges and subqueries
    expr = LABEL_LISTS.sub(" ", expr)  # by (...), on (...) and the like: label names
    return {name for name, call in IDENTIFIER.findall(expr) if not call and name not in KEYWORDS}


def variable_query_names(query: str) -> set[str]:
    """Metric names of a Prometheus template variable query (``label_values(<selector>, <label>)`` or PromQL)."""
    if match := re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query):
        return metric_names(match[1])
    if re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", query):
        return set()
    return metric_names(query)


def mtail_series(program: str) -> set[str]:
    """Series an mtail program exports: its declared counters and gauges as named (``as "..."`` renames them),
    histograms with their _bucket/_sum/_count series."""
    names: set[str] = set()
    for kind, name, alias in re.findall(
        r'^\s*(counter|gauge|timer|histogram)\s+(\w+)(?:.*\bas\s+"([^"]+)")?', program, re.M
    ):
        exported = alias or name
        names |= {f"{exported}{s}" for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {exported}
    return names


def client_python_series(metrics: dict[str, list[str]]) -> set[str]:
    """Series prometheus_client (which LiteLLM uses) exposes for declared counters, gauges and histograms."""
    names = set(metrics.get("gauge", []))
    names |= {f"{name.removesuffix('_total')}_total" for name in metrics.get("counter", [])}
    names |= {f"{name}{s}" for name in metrics.get("histogram", []) for s in ("_bucket", "_sum", "_count")}
    return names


def exported_series() -> dict[str, set[str]]:
    return {
        "egress proxy (mtail)": mtail_series(MTAIL_PROGRAM),
        "kube-state-metrics": set(EXPORTED["kube-state-metrics"]["names"]),
        "node-exporter": set(EXPORTED["node-exporter"]["names"]),
        "prometheus (every target)": set(EXPORTED["prometheus"]["names"]),
        "litellm": client_python_series(EXPORTED["litellm"]),
        "vllm": client_python_series(EXPORTED["vllm"]),
        "opencost": set(EXPORTED["opencost"]["names"]),
        "platform recording rules": {rule["record"] for rule in cost_records()},
    }


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """(where, query, metric names) for every panel target and every query variable."""
    queries = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"], metric_names(target["expr"]))
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            queries.append((f"variable ${variable['name']}", query, variable_query_names(query)))
    return queries


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (tenant) (rate(egress_requests_total{decision="denied",tenant=~"$tenant"}[5m]))',
            {"egress_requests_total"},
        ),
        ("histogram_quantile(0.95, sum by (le, key) (rate(lat_bucket[$__rate_interval])))", {"lat_bucket"}),
        (
            'a * on (node) group_left (phase) b{x="y"} and on (n) label_replace(c, "n", "$1", "node", "(.*)")',
            {"a", "b", "c"},
        ),
        ("1 - avg(rate(cpu_total[5m] offset 1h)) > 1e3 unless ignoring (mode) up == bool 0", {"cpu_total", "up"}),
        ('max_over_time(sum without (pod) (x:recorded:rate5m{a="b{c}"})[1h:5m])', {"x:recorded:rate5m"}),
    ],
)
def test_metric_names_are_the_selected_metrics_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_mtail_declarations_become_series() -> None:
    program = (
        'counter a_total by x\ngauge b\nhistogram lat by y buckets 1, 2\ncounter c as "d_total"\n/x/ { a_total++ }\n'
    )
    assert mtail_series(program) == {"a_total", "b", "lat_bucket", "lat_sum", "lat_count", "d_total"}
    assert mtail_series("hidden counter x\ntext y\n") == set()  # hidden variables are not exported


@pytest.mark.parametrize("stem", sorted(DASHBOARDS))
def test_every_dashboard_query_names_only_exported_metrics(stem: str) -> None:
    exported = set().union(*exported_series().values())
    queries = dashboard_queries(DASHBOARDS[stem])
    assert all(names for _, _, names in queries), queries  # the parser found a metric in each
    unknown = {where: sorted(names - exported) for where, _, names in queries if names - exported}
    assert not unknown, f"{stem}.json queries metrics no scrape target exports: {unknown}"


def test_every_alert_rule_names_only_exported_metrics(each_stack: ProgramResult) -> None:
    """An alert on a metric nobody exports never fires: the platform's PrometheusRules get the same check."""
    exported = set().union(*exported_series().values())
    rules = [
        rule
        for resource in each_stack.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
        for group in resource.inputs["spec"]["groups"]
        for rule in group["rules"]
    ]
    assert rules
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule
        assert names <= exported, f"{rule.get('alert') or rule.get('record')}: {sorted(names - exported)}"


def test_kube_state_metrics_label_matchers_are_in_the_allowlist(dev: ProgramResult) -> None:
    """kube_<kind>_labels only carries the Kubernetes labels the program allowlists (label_<sanitized name>)."""
    values = dev.named(RELEASE, "observability-stack").inputs["values"]["kube-state-metrics"]
    allowed = {}
    for entry in values["metricLabelsAllowlist"]:
        kind, labels = re.fullmatch(r"(\w+)=\[(.*)\]", entry).groups()
        allowed[kind] = {f"label_{obs.prometheus_label(label)}" for label in labels.split(",")}
    kinds = {"kube_pod_labels": "pods", "kube_namespace_labels": "namespaces", "kube_node_labels": "nodes"}
    used = 0
    for _, query, _ in (q for dashboard in DASHBOARDS.values() for q in dashboard_queries(dashboard)):
        for metric, matchers in re.findall(r"(kube_\w+_labels)\{([^}]*)\}", query):
            for label in re.findall(r"\b(label_\w+)\s*[=!]", matchers):
                used += 1
                assert label in allowed[kinds[metric]], f"{metric}{{{label}}} is not allowlisted: {values}"
    assert used  # the dashboards select sandboxes and Kata nodes by label


def test_pinned_metric_lists_are_of_the_installed_versions(dev: ProgramResult) -> None:
    image = dev.named(RELEASE, "gateway-litellm").inputs["values"]["image"]
    assert image["tag"] == f"v{EXPORTED['litellm']['version']}"
    chart = SHARED / "charts" / f"kube-prometheus-stack-{dev.named(RELEASE, 'observability-stack').inputs['version']}"
    if not chart.is_dir():
        pytest.skip(f"the vendored chart is not present at {chart}")
    for exporter, subchart in (
        ("kube-state-metrics", "kube-state-metrics"),
        ("node-exporter", "prometheus-node-exporter"),
    ):
        sub = chart / "charts" / subchart / "Chart.yaml"
        if not sub.is_file():  # vendored without its subcharts: it cannot render (tests/test_render.py reports it)
            pytest.skip(f"{sub} not vendored")
        app_version = safe_load(sub.read_text())["appVersion"]
        assert app_version.lstrip("v") == EXPORTED[exporter]["version"].lstrip("v"), exporter
    opencost = SHARED / "charts" / f"opencost-{dev.named(RELEASE, 'observability-opencost').inputs['version']}"
    assert safe_load((opencost / "Chart.yaml").read_text())["appVersion"] == EXPORTED["opencost"]["version"]
