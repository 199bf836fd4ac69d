"""The sandbox nodes' own security group (issue 14: core and Kata nodes shared one group, so after a VM escape
the host could reach every core node port). Rules are checked as a whole: anything added or widened fails."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from components.config.reader import safe_load
from tests.configs import parse_config
from tests.conftest import program_result
from tests.tokens import LAUNCH_TEMPLATE
from tools.program import ProgramResult

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"
VPC = {"dev": "10.1.0.0/16", "staging": "10.2.0.0/16", "prod": "10.3.0.0/16"}


FIRECRACKER = "agent-platform:kataFirecracker"  # kata-fc is a Go-runtime shim: kata-monitor runs


def managed_with_cidrs() -> ProgramResult:
    """dev with the Kata managed node group, kata-monitor (Firecracker) and a tenant that reaches
    198.51.100.7/32 directly."""

    from components.config import PROJECT_FILE

    tenants = safe_load((PROJECT_FILE.parent / "Pulumi.dev.yaml").read_text())["config"]["agent-platform:tenants"]
    tenants[0]["egress"] = {"cidrs": ["198.51.100.7/32"]}
    overrides = {"agent-platform:kataManagedNodeGroup": True, "agent-platform:tenants": tenants, FIRECRACKER: True}
    return program_result("dev", overrides)


def sandbox_sg(result: ProgramResult) -> str:
    return result.named(INGRESS, "sandbox-nodes-in-kubelet-from-cluster").inputs["securityGroupId"]


def rules(result: ProgramResult) -> set[tuple[Any, ...]]:
    """(direction, group, protocol, from, to, peer) of every security group rule that involves the sandbox
    nodes' group (the database's and the cache's groups admit only the core nodes: tested with them)."""
    sandbox, found = sandbox_sg(result), set()
    for kind, direction in ((INGRESS, "in"), (EGRESS, "out")):
        for r in result.of_type(kind):
            i = r.inputs
            peer = i.get("referencedSecurityGroupId") or i.get("cidrIpv4")
            if sandbox in (i["securityGroupId"], peer):
                found.add((direction, i["securityGroupId"], i["ipProtocol"], i.get("fromPort"), i.get("toPort"), peer))
    return found


def expected(result: ProgramResult, stack: str, *, allowlist: bool, monitor: bool, cidrs: tuple[str, ...] = ()) -> set:
    sandbox, cluster = sandbox_sg(result), result.outputs["clusterSecurityGroupId"]
    vpc = VPC[stack]
    resolver = f"{ipaddress.ip_network(vpc).network_address + 2}/32"
    want = {
        ("in", sandbox, "tcp", 10250, 10250, cluster),
        ("in", sandbox, "tcp", 9100, 9100, cluster),
        ("in", sandbox, "tcp", 10249, 10249, cluster),
        ("in", cluster, "tcp", 443, 443, sandbox),
        ("in", cluster, "udp", 53, 53, sandbox),
        ("in", cluster, "tcp", 53, 53, sandbox),
        ("out", sandbox, "tcp", 443, 443, "0.0.0.0/0"),
        ("out", sandbox, "tcp", 80, 80, "0.0.0.0/0"),
        ("out", sandbox, "tcp", 4000, 4000, vpc),
        ("out", sandbox, "udp", 53, 53, resolver),
        ("out", sandbox, "tcp", 53, 53, resolver),
        ("out", sandbox, "udp", 53, 53, cluster),
        ("out", sandbox, "tcp", 53, 53, cluster),
    }
    if allowlist:
        want.add(("out", sandbox, "tcp", 3128, 3128, vpc))
    if monitor:
        want.add(("in", sandbox, "tcp", 8090, 8090, cluster))
    want |= {("out", sandbox, "-1", None, None, c) for c in cidrs}
    return want


@pytest.mark.parametrize("stack", list(VPC))
def test_sandbox_nodes_get_only_the_rules_they_need(stack: str) -> None:
    result = program_result(stack)
    assert not parse_config().kata.monitor  # the stacks run runtime-rs shims only: no kata-monitor, no 8090
    assert rules(result) == expected(result, stack, allowlist=True, monitor=False)


def test_tenant_cidrs_and_the_managed_kata_group() -> None:
    result = managed_with_cidrs()
    assert rules(result) == expected(result, "dev", allowlist=True, monitor=True, cidrs=("198.51.100.7/32",))
    sandbox = sandbox_sg(result)
    lt = result.named(LAUNCH_TEMPLATE, "kata-lt").inputs
    assert lt["vpcSecurityGroupIds"] == [sandbox]
    assert result.named(LAUNCH_TEMPLATE, "cluster-core-lt").inputs["vpcSecurityGroupIds"] == [
        result.outputs["clusterSecurityGroupId"]
    ]
    group = result.named("aws:eks/nodeGroup:NodeGroup", "kata-nodes")
    all_rules = {r.urn for kind in (INGRESS, EGRESS) for r in result.of_type(kind) if "FargateTier$" not in r.urn}
    assert all_rules <= set(group.dependencies)  # nodes start once their group's rules exist


def test_open_mode_has_no_proxy_rule() -> None:
    result = program_result("dev", {"agent-platform:egressMode": "open"})
    assert rules(result) == expected(result, "dev", allowlist=False, monitor=False)


def test_every_sandbox_node_class_uses_only_the_sandbox_group(each_stack: ProgramResult) -> None:
    sandbox = sandbox_sg(each_stack)
    classes = [r for r in each_stack.registrations if r.inputs.get("kind") == "EC2NodeClass"]
    assert classes
    for node_class in classes:
        assert node_class.inputs["spec"]["securityGroupSelectorTerms"] == [{"id": sandbox}], node_class.name


def test_the_sandbox_group_does_not_carry_the_load_balancer_cluster_tag(each_stack: ProgramResult) -> None:
    (group,) = [g for g in each_stack.of_type(SG) if g.name == "sandbox-nodes-sg"]
    tags = group.inputs.get("tags", {})
    assert not [k for k in tags if k.startswith("kubernetes.io/cluster/")]
    assert group.inputs["vpcId"] == each_stack.outputs["vpcId"]
    assert group.inputs["revokeRulesOnDelete"] is True
    assert not [r for r in each_stack.of_type(SG) if r.inputs.get("ingress") or r.inputs.get("egress")]  # no inline


def test_no_sandbox_rule_opens_a_core_host_port() -> None:
    """From the sandbox group into the cluster group: the API server and DNS, nothing else."""
    result = program_result("prod")
    sandbox, cluster = sandbox_sg(result), result.outputs["clusterSecurityGroupId"]
    into_core = {(p, f, t) for d, g, p, f, t, peer in rules(result) if d == "in" and g == cluster and peer == sandbox}
    assert into_core == {("tcp", 443, 443), ("udp", 53, 53), ("tcp", 53, 53)}


def test_the_monitoring_ports_match_what_prometheus_scrapes() -> None:
    """The node ports the sandbox group admits are the ones kube-prometheus-stack scrapes on every node."""

    from components.network import node_security
    from tools.render import SHARED

    version = parse_config().observability.chart_version
    chart = SHARED / "charts" / f"kube-prometheus-stack-{version}"
    if not chart.is_dir():
        pytest.skip(f"{chart} not present")
    values = safe_load((chart / "values.yaml").read_text())
    assert values["kubeProxy"]["enabled"] is True
    assert values["kubeProxy"]["service"]["port"] == node_security.KUBE_PROXY_METRICS_PORT
    assert values["kubelet"]["enabled"] is True
    assert node_security.KUBELET_PORT == 10250
    subchart = chart / "charts" / "prometheus-node-exporter" / "values.yaml"
    if not subchart.is_file():  # vendored without its subcharts: it cannot render (tests/test_render.py reports it)
        pytest.skip(f"{subchart} not vendored")
    exporter = safe_load(subchart.read_text())
    assert exporter["service"]["port"] == node_security.NODE_EXPORTER_PORT
    assert exporter["hostNetwork"] is True
