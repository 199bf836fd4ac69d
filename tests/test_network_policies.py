"""Platform NetworkPolicies (components/network/network_policies.py): what the rendered stacks let a sandbox reach.

The reachability questions run over the rendered dev and prod stacks (the program's objects plus every
third-party chart rendered offline, tools/render.py) with the evaluator in tests/reachability.py; they skip
where ../shared (the vendored charts) is absent. The pure builders are checked everywhere.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import pkgutil
import re
from functools import cache
from typing import Any

import pytest

from components import contracts
from components.cluster.eks import VPC_CNI_CONFIGURATION
from components.contracts import egress as egc
from components.contracts import gateway as gwc
from components.contracts import namespaces
from components.contracts import observability as obsc
from components.contracts import runtime as rtc
from components.contracts.labels import SANDBOX_LABEL
from components.contracts.sandboxes import SANDBOX_SERVICES
from components.contracts.services import SANDBOXES, Pods, Service
from components.gateway import tenant_gateway as gp
from components.k8s import network_policy as netpol
from components.network import network_policies as np
from components.runtime import kata_deploy as kata
from tests.conftest import FEATURES, program_result, rendered_installs
from tests.reachability import Reachability, pods_with
from tests.tokens import DEPLOYMENT, NETPOL, TEMPLATE
from tools.render import SHARED
from tools.render_checks import Pod, Stack, build_stack

RENDERED = pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")
STACKS = ("dev", "prod")
KATA_FC = "dev+kata-fc"  # dev with kata-fc: kata-monitor runs only with a Go-runtime shim


@cache
def rendered(stack: str) -> tuple[Stack, Reachability]:
    name, overrides = ("dev", FEATURES) if stack == KATA_FC else (stack, None)
    result = program_result(name, overrides)
    objects = build_stack(result, rendered_installs(name, overrides))
    vpc = result.named("aws:ec2/vpc:Vpc", "network-vpc").inputs["cidrBlock"]
    return objects, Reachability(objects, vpc)


@RENDERED
def test_no_route_from_any_sandbox_to_kata_monitor() -> None:
    objects, reach = rendered(KATA_FC)
    targets = pods_with(objects, kata.NAMESPACE, rtc.KATA_MONITOR_LABELS)
    assert targets
    for source in sandboxes(objects):
        for target in targets:
            assert reach.open_ports(source, target) == [], f"{source.owner} reaches kata-monitor"


def one_of(stack: Stack, namespace: str, selector: dict[str, str]) -> Pod:
    found = pods_with(stack, namespace, selector)
    assert found, f"no pod {selector} in {namespace}"
    return found[0]


POSTGRES = (gwc.NAMESPACE, gwc.POSTGRES_LABELS)
# The platform workloads the routes below are about: (namespace, pod selector).
WORKLOADS = {
    "litellm": (gwc.NAMESPACE, gwc.SELECTOR),
    "nginx": (gwc.NAMESPACE, gp.SELECTOR),
    "prometheus": (obsc.NAMESPACE, obsc.PROMETHEUS_PODS),
    "alertmanager": (obsc.NAMESPACE, obsc.ALERTMANAGER_PODS),
    "grafana": (obsc.NAMESPACE, obsc.GRAFANA_PODS),
    "kube-state-metrics": (obsc.NAMESPACE, obsc.KUBE_STATE_METRICS_PODS),
    "egress-proxy": (egc.NAMESPACE, egc.SELECTOR),
    "dns": ("kube-system", netpol.DNS_PODS),
}


def workloads(stack: Stack, *names: str) -> list[Pod]:
    """One pod of each named workload."""
    return [one_of(stack, *WORKLOADS[name]) for name in names]


def sandboxes(stack: Stack) -> list[Pod]:
    found = [p for p in stack.pods if p.labels.get(SANDBOX_LABEL) == "true"]
    assert found
    return found


# --------------------------------------------------------------------------------------------
# No route from a sandbox to the platform


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    ("namespace", "selector", "what"),
    [
        (gwc.NAMESPACE, gwc.SELECTOR, "LiteLLM (master key, every tenant key, the Bedrock role)"),
        (obsc.NAMESPACE, obsc.PROMETHEUS_PODS, "Prometheus (unauthenticated :9090)"),
        (obsc.NAMESPACE, obsc.ALERTMANAGER_PODS, "Alertmanager (unauthenticated :9093)"),
        (obsc.NAMESPACE, obsc.GRAFANA_PODS, "Grafana"),
        (obsc.NAMESPACE, obsc.KUBE_STATE_METRICS_PODS, "kube-state-metrics"),
        (obsc.NAMESPACE, obsc.OPERATOR_PODS, "the Prometheus operator"),
    ],
)
def test_no_route_from_any_sandbox_to_platform_pods(
    stack: str, namespace: str, selector: dict[str, str], what: str
) -> None:
    objects, reach = rendered(stack)
    targets = pods_with(objects, namespace, selector)
    assert targets, f"{what}: no pod in the rendered {stack} stack"
    for source in sandboxes(objects):
        for target in targets:
            assert reach.open_ports(source, target) == [], f"{source.owner} reaches {what} ({target.owner})"


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_no_route_from_a_sandbox_to_the_database_or_the_instance_metadata(stack: str) -> None:
    objects, reach = rendered(stack)
    postgres = pods_with(objects, *POSTGRES)
    for source in sandboxes(objects):
        assert all(reach.open_ports(source, p, extra=(gwc.POSTGRES_PORT,)) == [] for p in postgres)
        for port in (80, 443, 8080):
            assert not reach.egress_allows_ip(source, "169.254.169.254", port)


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_sandboxes_reach_the_tenant_gateway_which_alone_reaches_litellm(stack: str) -> None:
    """The allowed path works (the evaluator is not vacuous), and only through nginx."""
    objects, reach = rendered(stack)
    nginx, litellm, prometheus = workloads(objects, "nginx", "litellm", "prometheus")
    for source in sandboxes(objects):
        assert reach.open_ports(source, nginx) == [gp.LISTEN_PORT]
    assert reach.open_ports(nginx, litellm) == [gwc.PORT]
    assert reach.connects(prometheus, litellm, gwc.PORT)  # the ServiceMonitor's scrape
    for job in pods_with(objects, gwc.NAMESPACE, gwc.KEY_JOB_SELECTOR):
        assert reach.open_ports(job, litellm) == [gwc.PORT]
        assert reach.open_ports(job, nginx) == []
    # nginx reaches nothing else of the platform
    for target in (*workloads(objects, "prometheus", "alertmanager"), *pods_with(objects, *POSTGRES)):
        assert reach.open_ports(nginx, target, extra=(gwc.POSTGRES_PORT,)) == []


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_litellm_reaches_only_bedrock_its_database_dns_and_pod_identity(stack: str) -> None:
    objects, reach = rendered(stack)
    litellm, dns = workloads(objects, "litellm", "dns")
    assert reach.connects(litellm, dns, 53, "UDP")
    assert reach.connects(litellm, dns, 53, "TCP")
    assert reach.egress_allows_ip(litellm, "52.94.0.10", 443)  # a public Bedrock endpoint address
    assert reach.egress_allows_ip(litellm, "169.254.170.23", netpol.POD_IDENTITY_PORT)
    # SSRF through server-side fetches (image_url...): nothing private, no metadata, no other port
    for ip, port in (
        ("169.254.169.254", 80),
        ("10.1.2.3", 443),
        ("10.1.2.3", 80),
        ("172.20.0.1", 443),
        ("192.168.1.1", 443),
        ("52.94.0.10", 80),
        ("100.64.0.1", 443),
    ):
        assert not reach.egress_allows_ip(litellm, ip, port), (ip, port)
    for target in workloads(objects, "prometheus", "alertmanager", "grafana", "egress-proxy"):
        assert reach.open_ports(litellm, target) == [], target.owner
    postgres = pods_with(objects, *POSTGRES)
    if postgres:  # in-cluster database (dev): LiteLLM and the migrations, nobody else
        assert reach.connects(litellm, postgres[0], gwc.POSTGRES_PORT)
        migrations = one_of(objects, gwc.NAMESPACE, gwc.MIGRATION_LABELS)
        assert reach.connects(migrations, postgres[0], gwc.POSTGRES_PORT)
        assert reach.open_ports(migrations, litellm) == []
    else:  # external database (prod): 5432 in the VPC
        assert reach.egress_allows_ip(litellm, str(reach.vpc.network_address + 1000), gwc.POSTGRES_PORT)


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_and_alertmanager_answer_only_inside_monitoring(stack: str) -> None:
    objects, reach = rendered(stack)
    prometheus, alertmanager, grafana = workloads(objects, "prometheus", "alertmanager", "grafana")
    assert reach.connects(grafana, prometheus, obsc.PROMETHEUS_PORT)
    assert reach.connects(grafana, alertmanager, obsc.ALERTMANAGER_PORT)
    assert reach.connects(prometheus, alertmanager, obsc.ALERTMANAGER_PORT)
    outside = [p for p in objects.pods if p.namespace != obsc.NAMESPACE and not p.host_network]
    assert outside
    for source in outside:
        for target, port in ((prometheus, obsc.PROMETHEUS_PORT), (alertmanager, obsc.ALERTMANAGER_PORT)):
            assert not reach.connects(source, target, port), f"{source.owner} reaches {target.owner}:{port}"
    # from the VPC at large (a node, an NLB, a VPC endpoint): nothing either
    assert not reach.ingress_allows(None, prometheus, obsc.PROMETHEUS_PORT, source_ip="10.0.0.10")


@RENDERED
@pytest.mark.parametrize("stack", [*STACKS, KATA_FC])
def test_every_platform_pod_keeps_dns_and_what_prometheus_scrapes(stack: str) -> None:
    """Strict mode: a pod that loses DNS or its scrape breaks silently; check them for every platform pod."""
    objects, reach = rendered(stack)
    assert bool(pods_with(objects, kata.NAMESPACE, rtc.KATA_MONITOR_LABELS)) == (stack == KATA_FC)
    dns, prometheus, litellm, kube_state_metrics = workloads(
        objects, "dns", "prometheus", "litellm", "kube-state-metrics"
    )
    platform = [p for p in objects.pods if p.namespace in namespaces.PLATFORM_NAMESPACES and not p.host_network]
    assert platform
    for pod in platform:
        assert reach.connects(pod, dns, 53, "UDP"), f"{pod.owner} cannot resolve names"
    targets = [(litellm, gwc.PORT), (kube_state_metrics, 8080)]
    targets += [(pod, rtc.KATA_MONITOR_PORT) for pod in pods_with(objects, kata.NAMESPACE, rtc.KATA_MONITOR_LABELS)[:1]]
    targets += [(pod, egc.MTAIL_PORT) for pod in pods_with(objects, *WORKLOADS["egress-proxy"])[:1]]
    for target, port in targets:
        assert reach.connects(prometheus, target, port), f"Prometheus cannot scrape {target.owner}:{port}"


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_controllers_reach_https_and_pod_identity_but_not_instance_metadata(stack: str) -> None:
    objects, reach = rendered(stack)
    karpenter = one_of(objects, "karpenter", {"app.kubernetes.io/name": "karpenter"})
    assert reach.egress_allows_ip(karpenter, "52.94.0.10", 443)  # EC2, SQS, SSM, pricing
    assert reach.egress_allows_ip(karpenter, "169.254.170.23", netpol.POD_IDENTITY_PORT)
    assert not any(reach.egress_allows_ip(karpenter, "169.254.169.254", p) for p in (80, 443))
    env = {e["name"]: e.get("value") for c in karpenter.spec["containers"] for e in c.get("env") or []}
    assert env["AWS_REGION"]  # so it never asks instance metadata for its region


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_every_platform_namespace_has_a_default_deny_policy(stack: str) -> None:
    objects, reach = rendered(stack)
    tenant_namespaces = {
        o.name
        for o in objects.objects
        if o.kind == "Namespace" and (o.body["metadata"].get("labels") or {}).get(SANDBOX_LABEL) == "true"
    }
    platform = {o.name for o in objects.objects if o.kind == "Namespace"} - tenant_namespaces
    assert {gwc.NAMESPACE, obsc.NAMESPACE, kata.NAMESPACE, "karpenter"} <= platform
    for namespace in platform:
        deny = [
            p
            for p in reach.policies
            if p.namespace == namespace
            and p.body["spec"]["podSelector"] == {}
            and set(p.body["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p.body["spec"].get("ingress")
            and not p.body["spec"].get("egress")
        ]
        assert deny, f"namespace {namespace} has no default-deny NetworkPolicy"
    # every pod of a platform namespace is isolated both ways
    for pod in objects.pods:
        if pod.namespace in platform and not pod.host_network:
            assert reach.selecting(pod, "Ingress"), pod.owner
            assert reach.selecting(pod, "Egress"), pod.owner


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_nlb_targets_are_the_proxy_pods_only(stack: str) -> None:
    objects, _ = rendered(stack)
    (nlb,) = [o for o in objects.objects if o.kind == "Service" and o.name == gwc.TENANT_GATEWAY.name]
    selected = pods_with(objects, gwc.NAMESPACE, nlb.body["spec"]["selector"])
    assert selected
    assert all(all(p.labels.get(k) == v for k, v in gp.SELECTOR.items()) for p in selected)
    assert not any(all(p.labels.get(k) == v for k, v in gwc.SELECTOR.items()) for p in selected)


# --------------------------------------------------------------------------------------------
# Builders, program and add-on


def test_builders_name_their_namespaces_and_refuse_unknown_ones() -> None:
    bodies = np.platform_policies(namespaces.PLATFORM_NAMESPACES, "10.0.0.0/16", external_database=False)
    assert {b["metadata"]["namespace"] for b in bodies} == set(namespaces.PLATFORM_NAMESPACES)
    for ns in namespaces.PLATFORM_NAMESPACES:
        assert netpol.default_deny(ns) in bodies
        assert netpol.allow_dns(ns) in bodies
    with pytest.raises(ValueError, match="tenant-acme"):
        np.platform_policies(["tenant-acme"], "10.0.0.0/16", external_database=False)


def test_litellm_egress_excludes_every_private_range() -> None:
    (litellm,) = [b for b in np.litellm_policies("10.0.0.0/16", False) if b["metadata"]["name"] == "litellm"]
    internet: dict[str, Any] = litellm["spec"]["egress"][0]
    assert internet["ports"] == [{"protocol": "TCP", "port": 443}]
    assert set(internet["to"][0]["ipBlock"]["except"]) >= {
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
    }


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_program_creates_the_policies_after_the_namespaces_only(stack: str) -> None:
    result = program_result(stack)
    policies = [r for r in result.registrations if r.type == NETPOL and "PlatformNetworkPolicies" in r.urn]
    namespaces = {r.inputs["metadata"]["namespace"] for r in policies}
    assert {gwc.NAMESPACE, obsc.NAMESPACE, kata.NAMESPACE, "karpenter", "kube-system"} <= namespaces
    workloads = {
        r.urn
        for r in result.registrations
        if r.type in ("kubernetes:helm.sh/v3:Release", "kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job")
    }
    for policy in policies:
        assert not set(policy.dependencies) & workloads, policy.name  # strict mode: workloads need them first


def test_vpc_cni_enforces_policies_from_pod_start() -> None:
    assert VPC_CNI_CONFIGURATION["env"]["NETWORK_POLICY_ENFORCING_MODE"] == "strict"
    assert VPC_CNI_CONFIGURATION["enableNetworkPolicy"] == "true"


# --------------------------------------------------------------------------------------------
# Every declared service (components/contracts/): its callers reach it, nobody else, nothing outside the VPC


def declared_services() -> list[Service]:
    """Every service the areas' contracts declare (module-level ``Service`` objects under components/contracts/)."""
    found: dict[tuple[str, str], Service] = {}
    for info in pkgutil.iter_modules(contracts.__path__):
        module = importlib.import_module(f"{contracts.__name__}.{info.name}")
        found |= {(v.namespace, v.name): v for v in vars(module).values() if isinstance(v, Service)}
    return sorted(found.values(), key=lambda s: (s.namespace, s.name))


def caller_pods(stack: Stack, service: Service, caller: Pods) -> list[Pod]:
    if caller == SANDBOXES:
        return sandboxes(stack)
    return pods_with(stack, caller.namespace or service.namespace, caller.labels)


INTERNET_ADDRESS = "198.51.100.7"  # TEST-NET-2: anywhere outside the VPC


@RENDERED
@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_service_admits_its_callers_and_nobody_else(stack: str) -> None:
    """For each service a contract declares (components/contracts/services.py) and the stack runs: every declared
    caller connects (through the VPC to an NLB-fronted one), no pod that is not a caller connects to a ClusterIP
    one, and nothing outside the VPC reaches the serving pods."""
    objects, reach = rendered(stack)
    vpc_address = str(next(ipaddress.ip_network(reach.vpc_cidr).hosts()))
    checked = []
    for service in declared_services():
        servers = pods_with(objects, service.namespace, service.selector)
        if not servers:
            continue  # not in this stack (the in-cluster stores when RDS and ElastiCache serve)
        checked.append(service.name)
        server = servers[0]
        allowed = {id(p) for p in servers}
        for caller in service.callers:
            pods = caller_pods(objects, service, caller)
            assert pods, f"{service.name}: no pod of its caller {caller} in the {stack} stack"
            allowed |= {id(p) for p in pods}
            for pod in pods:
                if service.nlb:
                    assert reach.egress_allows_ip(pod, vpc_address, service.port), f"{pod.owner} -> {service.name}"
                    assert reach.ingress_allows(None, server, service.pod_port, source_ip=vpc_address), service.name
                else:
                    assert reach.connects(pod, server, service.pod_port), f"{pod.owner} cannot reach {service.name}"
        assert not reach.ingress_allows(None, server, service.pod_port, source_ip=INTERNET_ADDRESS), (
            f"{service.name}: its pods admit addresses outside the VPC"
        )
        if not service.nlb:
            intruders = [
                p.owner for p in objects.pods if id(p) not in allowed and reach.connects(p, server, service.pod_port)
            ]
            assert not intruders, f"{service.name} is reached by pods that are not its callers: {intruders}"
    assert {gwc.TENANT_GATEWAY.name, gwc.LITELLM.name} <= set(checked)


def test_sandboxes_call_platform_services_through_nlbs_only() -> None:
    for service in SANDBOX_SERVICES:
        assert service.nlb, f"{service.name}: Kata pods reach no ClusterIP"
        assert SANDBOXES in service.callers, service.name
    for service in declared_services():
        assert service in SANDBOX_SERVICES or SANDBOXES not in service.callers, (
            f"{service.name}: add it to SANDBOX_SERVICES"
        )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_load_balancer_waits_for_the_lb_controller(stack: str) -> None:
    """A LoadBalancer Service admitted before the AWS Load Balancer Controller's webhook runs is handled by the legacy
    in-tree controller (a classic ELB, public by default): each one depends on the controller's release."""
    result = program_result(stack)
    (controller,) = [
        r.urn for r in result.of_type("kubernetes:helm.sh/v3:Release") if "LoadBalancerController" in r.urn
    ]
    balancers = [
        r for r in result.of_type("kubernetes:core/v1:Service") if r.inputs["spec"].get("type") == "LoadBalancer"
    ]
    assert balancers
    for service in balancers:
        assert controller in service.dependencies, f"{service.name} does not wait for the LB controller"


URL = re.compile(r"https?://(?:[^@/\s]+@)?([A-Za-z0-9.-]+)")


def in_vpc(host: str, vpc: str) -> bool:
    """An internal load balancer (AWS names them internal-...), a cluster name or an address of the VPC."""
    if host.startswith("internal-") or host.endswith(".cluster.local"):
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(vpc)
    except ValueError:
        return False


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_sandboxes_bypass_the_proxy_for_every_platform_url_they_are_given(stack: str) -> None:
    """Every URL inside the VPC an agent is given (config files, environment) is in its NO_PROXY: the egress proxy
    refuses every non-internet destination, so an agent sending it there would fail."""
    result = program_result(stack)
    vpc = result.named("aws:ec2/vpc:Vpc", "network-vpc").inputs["cidrBlock"]
    proxies = [r for r in result.of_type("kubernetes:core/v1:Secret") if r.inputs["metadata"]["name"] == "egress-proxy"]
    assert proxies
    for proxy in proxies:
        namespace = proxy.inputs["metadata"]["namespace"]
        bypass = set(proxy.plain["stringData"]["NO_PROXY"].split(","))
        given = [
            r.plain
            for r in result.registrations
            if r.type in ("kubernetes:core/v1:ConfigMap", DEPLOYMENT, TEMPLATE)
            and r.inputs["metadata"].get("namespace") == namespace
        ]
        hosts = {h for text in (json.dumps(g) for g in given) for h in URL.findall(text) if in_vpc(h, vpc)}
        assert hosts, f"{namespace}: no platform URL found (the LiteLLM one at least)"
        assert hosts <= bypass, f"{namespace}: {sorted(hosts - bypass)} would go through the egress proxy"


@RENDERED
def test_only_litellm_reaches_a_tenant_s_mcp_servers() -> None:
    """Each MCP server (dev: acme's on 8080, globex's on 9000) answers LiteLLM's pods on its own port, and nobody
    else: not its own tenant's agents, not another tenant's, not the tenant gateway."""
    objects, reach = rendered("dev")
    servers = [p for p in sandboxes(objects) if p.labels.get("app.kubernetes.io/name") == "mcp"]
    assert {(p.namespace, p.labels["agent-platform.io/agent"]) for p in servers} == {
        ("tenant-acme", "kb-tools"),
        ("tenant-globex", "crm-tools"),
    }
    litellm, nginx = workloads(objects, "litellm", "nginx")
    ports = {"tenant-acme": 8080, "tenant-globex": 9000}
    for server in servers:
        assert reach.open_ports(litellm, server, extra=(8080, 9000)) == [ports[server.namespace]]
        for source in [*sandboxes(objects), nginx]:
            assert reach.open_ports(source, server, extra=(8080, 9000)) == [], source
