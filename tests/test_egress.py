"""Egress allowlists: config parsing, the rendered squid.conf, the proxy component, the tenant NetworkPolicies,
proxy settings, metrics and audit logs in every stack (the real Squid: tests/test_egress_live.py; the policy:
tests/test_egress_policy.py)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest

from components.config.reader import safe_load
from components.contracts import egress as egc
from components.contracts.egress import PROXY_PORT
from components.egress import squid as sq
from components.k8s.nlb import NLB_ANNOTATIONS
from components.observability.monitoring import DASHBOARD_DIR
from components.tenants.agent_pod import proxy_secret_data
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.base import PROXY_ENV
from components.tenants.sandbox_network import SandboxEgress, sandbox_egress_rules
from tests.configs import default, parse_config
from tests.conftest import program_result
from tests.schemas import CRD_DIR, crd_sets, validate_object
from tests.tokens import DEPLOYMENT, NETPOL, SECRET, SERVICE, TEMPLATE
from tools.program import MASK

STACKS = ("dev", "staging", "prod")


def tenant(**fields: Any) -> dict[str, Any]:
    return {"name": "acme", "agents": [{"name": "hermes", "type": "hermes"}], **fields}


# --------------------------------------------------------------------------------------------
# Config


def test_agent_type_defaults_and_tenant_widening() -> None:
    cfg = parse_config(
        tenants=[
            tenant(
                egress={"domains": ["pypi.org", "*.PythonHosted.org."], "cidrs": ["203.0.113.0/24"]},
                agents=[
                    {"name": "hermes", "type": "hermes"},
                    {"name": "claw", "type": "openclaw", "egress": {"domains": ["api.github.com"]}},
                ],
            )
        ]
    )
    t = cfg.tenants[0]
    hermes, claw = t.agents
    assert t.agent_domains(hermes) == (*AGENT_TYPES["hermes"].egress_defaults, "pypi.org", "*.pythonhosted.org")
    assert t.agent_domains(claw) == ("slack.com", "*.slack.com", "pypi.org", "*.pythonhosted.org", "api.github.com")
    assert "api.telegram.org" in t.egress_domains
    assert "*.slack.com" in t.egress_domains
    assert t.egress_cidrs == ("203.0.113.0/24",)
    assert cfg.egress.mode == "allowlist"
    assert cfg.egress.allowlist


def test_type_defaults_can_be_dropped_per_tenant_and_restored_per_agent() -> None:
    t = parse_config(
        tenants=[
            tenant(
                egress={"typeDefaults": False, "domains": ["api.telegram.org"]},
                agents=[
                    {"name": "a", "type": "hermes"},
                    {"name": "b", "type": "openclaw", "egress": {"typeDefaults": True}},
                ],
            )
        ]
    ).tenants[0]
    assert t.agent_domains(t.agents[0]) == ("api.telegram.org",)
    assert t.agent_domains(t.agents[1]) == ("slack.com", "*.slack.com", "api.telegram.org")


# --------------------------------------------------------------------------------------------
# Rendering


def test_wildcards_become_leading_dots_and_covered_names_are_dropped() -> None:
    domains = ["slack.com", "*.slack.com", "wss-primary.slack.com", "*.a.slack.com", "x.org", "*.y.org"]
    assert sq.squid_domains(domains) == [".slack.com", "x.org", ".y.org"]
    assert sq.squid_domains(["api.telegram.org"]) == ["api.telegram.org"]


def test_rendered_conf_denies_by_default_and_names_every_tenant() -> None:
    conf = sq.squid_conf(
        [sq.ProxyTenant("acme", ("a.com",), ("203.0.113.0/24",)), sq.ProxyTenant("glo-bex", ("*.b.com",))]
    )
    lines = conf.splitlines()
    access = [line for line in lines if line.startswith("http_access")]
    assert access[-1] == "http_access deny egress_denied"
    assert "acl t_glo_bex_user proxy_auth glo-bex" in lines
    assert "acl t_glo_bex_domains dstdomain -n .b.com" in lines
    # The manager first; raw IPs: the blocked ranges before the tenant's cidrs; names: the tenant's list before
    # the blocked ranges (whose dst check resolves the name), so a refused name is never resolved.
    assert access[0] == "http_access deny manager egress_denied"
    assert "cachemgr_passwd disable all" in lines
    order = [
        "http_access deny !authenticated",
        "http_access deny !tenant_users egress_denied",
        "http_access deny raw_ip blocked_destinations egress_denied",
        "http_access allow t_acme_user raw_ip t_acme_cidrs",
        "http_access deny raw_ip egress_denied",
        "http_access deny t_acme_user !t_acme_domains egress_denied",
        "http_access deny t_glo_bex_user !t_glo_bex_domains egress_denied",
        "http_access deny blocked_destinations egress_denied",
        "http_access allow t_acme_user t_acme_domains",
    ]
    assert [access.index(line) for line in order] == sorted(access.index(line) for line in order)
    assert "acl SSL_ports port 443" in lines
    assert "cache deny all" in lines
    assert "via off" in lines
    assert "deny_info 403:ERR_EGRESS_DENIED egress_denied" in lines
    blocked = next(line for line in lines if line.startswith("acl blocked_destinations dst"))
    for needed in ("169.254.0.0/16", "100.64.0.0/10", "10.0.0.0/8", "fc00::/7", "::/128", "64:ff9b::/96"):
        assert needed in blocked.split()
    assert "%un" in next(line for line in lines if line.startswith("logformat egress"))


def test_md5_crypt_matches_openssl() -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    expected = subprocess.run(
        [openssl, "passwd", "-1", "-salt", "abcdefgh", "s3cret pw"], capture_output=True, text=True, check=True
    )
    assert sq.md5_crypt("s3cret pw", "abcdefgh") == expected.stdout.strip()
    line = sq.htpasswd_line("acme", "pw")
    assert line == sq.htpasswd_line("acme", "pw")
    assert line != sq.htpasswd_line("globex", "pw")


# --------------------------------------------------------------------------------------------
# The program: proxy component, NetworkPolicies and proxy settings in every stack


def netpol_egress(result: Any) -> list[list[dict[str, Any]]]:
    # the sandboxes' policies (the platform namespaces' own are tests/test_network_policies.py's)
    rules = [
        r.inputs["spec"]["egress"]
        for r in result.of_type(NETPOL)
        if "PlatformNetworkPolicies" not in r.urn and "Egress" in r.inputs["spec"]["policyTypes"]
    ]
    rules += [r.inputs["spec"]["networkPolicy"]["egress"] for r in result.of_type(TEMPLATE)]
    return rules


@pytest.mark.parametrize("stack", STACKS)
def test_no_sandbox_policy_allows_the_internet_in_any_stack(stack: str) -> None:
    result = program_result(stack)
    cfg_cidr = result.of_type("aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"]
    policies = netpol_egress(result)
    assert policies
    for egress in policies:
        for rule in egress:
            assert rule.get("to"), rule  # no rule without "to" (that would be anywhere)
            for peer in rule["to"]:
                net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                assert net.prefixlen > 0
        ports = {(p["protocol"], p["port"]) for rule in egress for p in rule.get("ports", [])}
        assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 4000), ("TCP", PROXY_PORT)}
        proxy = next(r for r in egress if r.get("ports") == [{"protocol": "TCP", "port": PROXY_PORT}])
        assert proxy["to"] == [{"ipBlock": {"cidr": cfg_cidr}}]


@pytest.mark.parametrize("stack", STACKS)
def test_every_tenant_pod_carries_the_proxy_settings(stack: str) -> None:
    result = program_result(stack)
    templates = [
        r.inputs["spec"]["template"]
        for r in result.of_type(DEPLOYMENT)
        if r.inputs["metadata"]["namespace"].startswith("tenant-")
    ]
    templates += [r.inputs["spec"]["podTemplate"] for r in result.of_type(TEMPLATE)]
    assert templates
    for template in templates:
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        for name in PROXY_ENV:
            assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "egress-proxy", "key": name}}
        assert env["NODE_USE_ENV_PROXY"]["value"] == "1"
    secrets = [r for r in result.of_type(SECRET) if r.inputs["metadata"]["name"] == "egress-proxy"]
    assert {s.inputs["metadata"]["namespace"] for s in secrets} == {
        r.inputs["metadata"]["name"]
        for r in result.of_type("kubernetes:core/v1:Namespace")
        if r.inputs["metadata"]["name"].startswith("tenant-")
    }
    for s in secrets:
        assert set(s.inputs["stringData"]) == set(PROXY_ENV)
        assert all(v == MASK for v in s.inputs["stringData"].values())  # secrets stay secrets


def test_proxy_secret_values() -> None:
    data = proxy_secret_data(
        "http://acme:pw@internal-k8s-egress.elb.amazonaws.com:3128",
        ["http://internal-k8s-litellm.elb.amazonaws.com:4000"],
    )
    assert data["HTTPS_PROXY"] == data["http_proxy"] == "http://acme:pw@internal-k8s-egress.elb.amazonaws.com:3128"
    assert data["NO_PROXY"] == "localhost,127.0.0.1,::1,internal-k8s-litellm.elb.amazonaws.com"


def test_proxy_deployment_is_hardened_and_behind_a_cross_zone_nlb(dev: Any) -> None:
    component = dev.of_type("agent-platform:egress:EgressProxy")[0]
    deployment = dev.named(DEPLOYMENT, "egress-squid").inputs
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.agent-platform.io/core": "true"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == sq.SQUID_UID
    container = pod["containers"][0]
    assert container["image"] == default("squidImage")
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    service = dev.named(SERVICE, "egress-nlb").inputs
    assert service["metadata"]["annotations"] == NLB_ANNOTATIONS
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.1.0.0/16"]
    assert service["spec"]["ports"][0]["port"] == PROXY_PORT
    pdb = dev.named("kubernetes:policy/v1:PodDisruptionBudget", "egress-pdb").inputs
    assert pdb["spec"]["minAvailable"] == 1
    htpasswd = dev.named(SECRET, "egress-htpasswd").inputs
    assert htpasswd["stringData"] == {"htpasswd": MASK}
    conf = dev.named("kubernetes:core/v1:ConfigMap", "egress-config").inputs["data"]["squid.conf"]
    assert "acl t_acme_user proxy_auth acme" in conf
    assert "acl t_globex_user proxy_auth globex" in conf
    assert (
        "acl t_acme_domains dstdomain -n api.telegram.org cdn.discordapp.com discord.com .discord.gg media.discordapp.net"
        in conf
    )
    assert "acl t_globex_domains dstdomain -n .slack.com" in conf
    for r in dev.registrations:
        if r.type.startswith("kubernetes:") and "egress" in r.name and r.name.startswith("egress-"):
            assert component.urn in (r.parent,) or r.parent.startswith(component.urn.rsplit("::", 1)[0])
    for name in ("egress-squid", "egress-nlb", "egress-pdb", "egress-config"):
        obj = next(r for r in dev.registrations if r.name == name).inputs
        validate_object(obj)


def policy_allows(spec: dict[str, Any], ip: str, port: int) -> bool:
    """Whether an egress NetworkPolicy spec lets its pods open TCP ``port`` to ``ip`` (ipBlock peers only)."""
    address = ipaddress.ip_address(ip)
    for rule in spec.get("egress", []):
        if rule.get("ports") and not any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"]):
            continue
        for peer in rule.get("to") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]:
            block = peer.get("ipBlock")
            if block is None or address not in ipaddress.ip_network(block["cidr"]):
                continue
            if not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


@pytest.mark.parametrize("stack", STACKS)
def test_the_proxy_itself_reaches_only_internet_addresses_on_80_and_443(stack: str) -> None:
    """Squid's ACLs decide the domains; its own NetworkPolicy keeps it off the cluster's services (ClusterIPs),
    the VPC, the metadata and every other non-internet range, whatever Squid is talked into."""
    result = program_result(stack)
    (policy,) = [
        r.inputs["spec"]
        for r in result.of_type(NETPOL)
        if (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) == (egc.NAMESPACE, "egress-proxy")
    ]
    service_cidr = ipaddress.ip_network(
        result.of_type("eks:index:Cluster")[0].inputs["kubernetesServiceIpAddressRange"]
    )
    vpc_cidr = ipaddress.ip_network(result.of_type("aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"])
    for port in (80, 443):
        assert policy_allows(policy, "52.94.0.10", port)  # a public address
        for ip in (
            service_cidr.network_address + 1,  # the API server's ClusterIP
            service_cidr.network_address + 10,  # CoreDNS' ClusterIP
            service_cidr.broadcast_address - 1,
            vpc_cidr.network_address + 2,
            "169.254.169.254",
            "169.254.170.23",
            "10.255.0.1",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "127.0.0.1",
        ):
            assert not policy_allows(policy, str(ip), port), (ip, port)
    assert not policy_allows(policy, "52.94.0.10", 22)


def test_open_mode_keeps_the_previous_behaviour() -> None:
    result = program_result("dev", {"agent-platform:egressMode": "open"})
    assert not result.of_type("agent-platform:egress:EgressProxy")
    for egress in netpol_egress(result):
        https = next(r for r in egress if r.get("ports") == [{"protocol": "TCP", "port": 443}])
        assert https["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    for r in result.of_type(DEPLOYMENT):
        env = {e["name"] for e in r.inputs["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert not env & set(PROXY_ENV)


def test_sandbox_egress_rules_in_allowlist_mode() -> None:
    network = parse_config(vpcCidr="10.9.0.0/16").network
    rules = sandbox_egress_rules(network, SandboxEgress(allowlist=True, cidrs=("203.0.113.0/24", "198.51.100.0/24")))
    assert rules[2] == {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    assert rules[3] == {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "198.51.100.0/24"}}]}
    assert len(rules) == 4


def test_proxy_metrics_are_scraped_alerted_and_charted(dev: Any) -> None:
    pod = dev.named(DEPLOYMENT, "egress-squid").inputs["spec"]["template"]["spec"]
    mtail = next(c for c in pod["containers"] if c["name"] == "mtail")
    assert mtail["image"] == "ghcr.io/google/mtail:3.0.9"
    assert mtail["securityContext"]["runAsNonRoot"] is True
    assert mtail["securityContext"]["readOnlyRootFilesystem"]
    assert {"name": "logs", "mountPath": sq.LOG_DIR, "readOnly": True} in mtail["volumeMounts"]
    monitor = dev.named("kubernetes:monitoring.coreos.com/v1:PodMonitor", "egress-monitor").inputs
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    rule = dev.named("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "egress-rules").inputs
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    burst = alerts["EgressDeniedBurst"]
    assert burst["expr"] == 'sum by (tenant) (increase(egress_requests_total{decision="denied"}[5m])) > 30'
    assert "{{ $labels.tenant }}" in burst["annotations"]["summary"]
    dashboard = json.loads((DASHBOARD_DIR / "egress.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert 'decision="denied"' in exprs
    assert 'decision="allowed"' in exprs
    assert "egress_bytes_total" in exprs
    assert "by (tenant)" in exprs
    # Last: the prometheus-operator CRDs (shared/, skipped when absent) of the version the chart ships.
    crds = CRD_DIR / crd_sets()["kube-prometheus-stack"]
    if not crds.is_dir():
        pytest.skip(f"prometheus-operator CRDs not present at {crds}")
    for obj, file in ((monitor, "crd-podmonitors.yaml"), (rule, "crd-prometheusrules.yaml")):
        crd = safe_load((crds / file).read_text())
        schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1")
        jsonschema.Draft7Validator(schema).validate(obj)  # no metaschema check: the CRD uses (?i) patterns


# --------------------------------------------------------------------------------------------
# Audit trail: VPC Flow Logs and Route 53 Resolver query logs


@pytest.mark.parametrize(("stack", "days"), [("dev", 14), ("staging", 30), ("prod", 365)])
def test_flow_logs_and_resolver_query_logs_per_stack(stack: str, days: int) -> None:
    result = program_result(stack)
    groups = {r.inputs["name"]: r.inputs for r in result.of_type("aws:cloudwatch/logGroup:LogGroup")}
    cluster = f"agents-{stack}"
    flow_group = groups[f"/agent-platform/{cluster}/vpc-flow-logs"]
    query_group = groups[f"/agent-platform/{cluster}/resolver-query-logs"]
    assert flow_group["retentionInDays"] == query_group["retentionInDays"] == days
    (flow,) = result.of_type("aws:ec2/flowLog:FlowLog")
    vpc = result.of_type("aws:ec2/vpc:Vpc")[0]
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
    assert "${pkt-srcaddr}" in flow.inputs["logFormat"]
    assert "${flow-direction}" in flow.inputs["logFormat"]
    role = result.named("aws:iam/role:Role", "network-flow-logs").inputs
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "vpc-flow-logs.amazonaws.com"
    }
    statement = json.loads(result.named("aws:iam/rolePolicy:RolePolicy", "network-flow-logs").inputs["policy"])[
        "Statement"
    ][0]
    arn = statement["Resource"][0]  # the flow log group's ARN (the mock engine's), and its streams
    assert "vpc-flow-logs" in arn
    assert statement["Resource"] == [arn, f"{arn}:*"]
    assert flow.inputs["logDestination"] == arn
    (association,) = result.of_type("aws:route53/resolverQueryLogConfigAssociation:ResolverQueryLogConfigAssociation")
    assert association.inputs["resourceId"] == flow.inputs["vpcId"]
    assert vpc.urn in association.dependencies or association.inputs["resourceId"].startswith("vpc-")
    (config,) = result.of_type("aws:route53/resolverQueryLogConfig:ResolverQueryLogConfig")
    assert "resolver-query-logs" in config.inputs["destinationArn"]
    policy = json.loads(
        result.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")[0].inputs["policyDocument"]
    )
    assert policy["Statement"][0]["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert "aws:SourceAccount" in policy["Statement"][0]["Condition"]["StringEquals"]
