"""Stack configuration: defaults from Pulumi.yaml, typed parsing, one clear error per bad input."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError, PlatformConfig, decode_raw, project_schema
from tests.configs import MODELS, config_error, parse_config
from tools.program import stack_config

TENANT = {"name": "acme", "agents": [{"name": "hermes", "type": "hermes"}], "litellm": {"models": ["claude"]}}


def parse(**values: Any) -> PlatformConfig:
    return parse_config(**{"tenants": [TENANT], **values})


def test_defaults_come_from_pulumi_yaml() -> None:
    cfg = parse()
    schema = project_schema()
    assert cfg.network.cidr == schema["vpcCidr"]["default"]
    assert cfg.network.az_count == schema["azCount"]["default"]
    assert cfg.cluster.name == "agents-dev"
    assert cfg.karpenter.version == schema["karpenterVersion"]["default"]
    assert cfg.kata.runtime_classes == ("kata-clh", "kata-qemu")
    assert cfg.tenants[0].namespace == "tenant-acme"
    assert cfg.tenants[0].agents[0].runtime_class == "kata-clh"


def test_resolver_is_vpc_base_plus_two() -> None:
    assert parse(vpcCidr="10.42.0.0/16").network.resolver_ip == "10.42.0.2"
    assert parse(vpcCidr="172.16.64.0/18").network.resolver_ip == "172.16.64.2"


@pytest.mark.parametrize("az_count", [2, 3, 6])
def test_subnets_are_carved_from_the_vpc_without_overlap(az_count: int) -> None:
    import ipaddress

    cfg = parse(azCount=az_count, vpcCidr="10.9.0.0/16")
    public, private = cfg.network.subnet_cidrs()
    nets = [ipaddress.ip_network(c) for c in public + private]
    assert len(public) == len(private) == az_count
    assert all(n.subnet_of(ipaddress.ip_network("10.9.0.0/16")) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def agent(**fields: Any) -> dict[str, Any]:
    return {"name": "bot", "type": "hermes", **fields}


def tenant(*agents: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "acme", "agents": list(agents) or [agent()], **fields}


def model(**fields: Any) -> dict[str, Any]:
    return {**MODELS[0], **fields}


# Every config error case: values (namespace-less keys over the Pulumi.yaml defaults) -> the exact key the
# one-line message names -> a fragment of its reason.
CONFIG_ERRORS = [
    ({"adminRoleArns": ["arn:aws:iam::123456789012:user/bob"]}, "adminRoleArns[0]", "not an IAM role ARN"),
    (
        {"adminRoleArns": ["arn:aws:iam::111111111111:role/ops", "arn:aws:iam::222222222222:role/ops"]},
        "adminRoleArns",
        "duplicate role name 'ops'",
    ),
    ({"admissionMode": "Enforce"}, "admissionMode", "'Enforce' is not one of Deny, Audit"),
    ({"awsLoadBalancerControllerVersion": "latest"}, "awsLoadBalancerControllerVersion", "not a version"),
    ({"azCount": 1}, "azCount", "between 2 and 6"),
    ({"azCount": 7}, "azCount", "between 2 and 6"),
    ({"azCount": "3"}, "azCount", "expected integer"),
    ({"bedrockModels": []}, "bedrockModels", "at least one model"),
    (
        {"bedrockModels": [{"name": "x", "modelId": "Not A Model"}]},
        "bedrockModels[0].modelId",
        "not a Bedrock model id",
    ),
    (
        {"bedrockModels": [model(contextWindow=8000, maxOutputTokens=8000)]},
        "bedrockModels[0].maxOutputTokens",
        "must be below contextWindow",
    ),
    ({"bedrockModels": [model(contextWindow=100)]}, "bedrockModels[0].contextWindow", "between 1024"),
    ({"bedrockModels": [model(maxOutputTokens="4k")]}, "bedrockModels[0].maxOutputTokens", "expected an integer"),
    ({"bedrockRegion": "mars-north-1"}, "bedrockRegion", "Bedrock"),
    ({"clusterName": "9lives"}, "clusterName", "'9lives' is not a valid EKS name"),
    ({"coreDesiredSize": 9}, "coreDesiredSize", "must be between min 2 and max 4"),
    ({"coreInstanceTypes": []}, "coreInstanceTypes", "at least one instance type"),
    (
        {"coreMinSize": 5, "coreMaxSize": 3, "coreDesiredSize": 3},
        "coreMinSize",
        "min size 5 is greater than max size 3",
    ),
    ({"curlImage": "docker.io/curlimages/curl"}, "curlImage", "must pin a tag"),
    ({"curlImage": "docker.io/curlimages/curl:latest"}, "curlImage", "must pin a tag"),
    ({"curlImage": "docker.io/curlimages/curl:8.16.0@sha256:abc"}, "curlImage", "'sha256:abc' is not a sha256 digest"),
    (
        {"curlImage": "curl:8@md5:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        "curlImage",
        "'md5:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is not a sh",
    ),
    ({"defaultRuntimeClass": "kata-fc"}, "defaultRuntimeClass", "not one of the enabled"),
    ({"egressLogRetentionDays": 10}, "egressLogRetentionDays", "not a CloudWatch Logs retention"),
    ({"egressMode": "closed"}, "egressMode", "'closed' is not one of allowlist, open"),
    ({"endpointPublicAccessCidrs": ["203.0.113.0/33"]}, "endpointPublicAccessCidrs[0]", "not a valid CIDR"),
    (
        {"endpointPublicAccessCidrs": ["0.0.0.0/0"]},
        "endpointPublicAccessCidrs[0]",
        "opens the Kubernetes API endpoint to the internet",
    ),
    (
        {"endpointPublicAccessCidrs": ["198.51.100.0/24", "0.0.0.0/1"]},
        "endpointPublicAccessCidrs[1]",
        "at most /8 wide",
    ),
    ({"grafanaAdminPassword": ""}, "grafanaAdminPassword", "is required"),
    ({"gvisorInstanceFamilies": []}, "gvisorInstanceFamilies", "needs at least one family"),
    ({"gvisorInstanceFamilies": ["m7g.large"]}, "gvisorInstanceFamilies[0]", "not an instance family"),
    ({"gvisorRelease": "latest"}, "gvisorRelease", "not a gVisor release"),
    ({"hermesImage": "nousresearch/hermes-agent:latest"}, "hermesImage", "must pin a tag"),
    ({"karpenterAmiAlias": "bottlerocket@latest"}, "karpenterAmiAlias", "not an AL2023 alias"),
    ({"karpenterCapacityTypes": ["reserved"]}, "karpenterCapacityTypes", "subset of on-demand, spot"),
    ({"karpenterConsolidateAfter": "1d"}, "karpenterConsolidateAfter", "no d/w/y units"),
    ({"karpenterConsolidateAfter": "never"}, "karpenterConsolidateAfter", "'never' is not a duration like 30s"),
    ({"karpenterConsolidationPolicy": "Always"}, "karpenterConsolidationPolicy", "is not one of"),
    ({"karpenterDisruptionBudget": "150%"}, "karpenterDisruptionBudget", "node count or percentage"),
    ({"karpenterInstanceFamilies": ["m7i"]}, "karpenterInstanceFamilies[0]", "nested virtualization"),
    ({"karpenterVersion": "0.37.0"}, "karpenterVersion", "below 1.13.0"),
    ({"karpenterVersion": "latest"}, "karpenterVersion", "not a version like 1.2.3"),
    ({"karpenterVersion": "1.12.0"}, "karpenterVersion", "1.12.0 is below 1.13.0"),
    ({"kataInstanceTypes": "m8i.large"}, "kataInstanceTypes", "expected array"),
    ({"kataInstanceTypes": ["m5.2xlarge"]}, "kataInstanceTypes[0]", "no EC2 nested virtualization"),
    ({"kataInstanceTypes": ["c7i.2xlarge"]}, "kataInstanceTypes[0]", "no EC2 nested virtualization"),
    ({"kataInstanceTypes": ["m7i.2xlarge"]}, "kataInstanceTypes[0]", "m7i.2xlarge has no EC2 nested virtualization"),
    (
        {"kataInstanceTypes": ["m8i.2xlarge", "m8g.2xlarge"]},
        "kataInstanceTypes[1]",
        "m8g.2xlarge has no EC2 nested virtualization",
    ),
    ({"kataInstanceTypes": ["c8a.xlarge"]}, "kataInstanceTypes[0]", "c8a.xlarge has no EC2 nested virtualization"),
    ({"kataInstanceTypes": ["m8i"]}, "kataInstanceTypes[0]", "m8i has no EC2 nested virtualization"),
    ({"kataInstanceTypes": []}, "kataInstanceTypes", "needs at least one instance type"),
    (
        {"kataMinSize": 4, "kataMaxSize": 2, "kataDesiredSize": 2},
        "kataMinSize",
        "min size 4 is greater than max size 2",
    ),
    ({"kubernetesVersion": "1.27"}, "kubernetesVersion", "1.27 is no longer offered by EKS; use 1.32 to 1.36"),
    ({"litellmCache": "redis"}, "litellmCache", "not one of in-cluster, elasticache"),
    ({"litellmCacheEngineVersion": "8.1"}, "litellmCacheEngineVersion", "major version"),
    ({"litellmChartVersion": "main"}, "litellmChartVersion", "not a version"),
    ({"litellmDatabase": "external"}, "litellmDatabase", "'rds'"),
    ({"litellmDatabase": "standalone"}, "litellmDatabase", "'in-cluster'"),
    ({"litellmDatabaseUrl": "postgresql://x"}, "litellmDatabaseUrl", "no longer read"),
    ({"litellmMasterKey": "sk-chosen-by-hand"}, "litellmMasterKey", "generated by the program now"),
    ({"litellmRdsInstanceClass": "m7g.large"}, "litellmRdsInstanceClass", "not an RDS instance"),
    ({"litellmReplicas": 1}, "litellmReplicas", "between 2 and 20"),
    ({"natGateways": "two"}, "natGateways", "not one of single, perAz"),
    ({"prometheusRetention": "2w1d"}, "prometheusRetention", "'2w1d' is not a duration like 15d"),
    (
        {"protect": "yes"},
        "protect",
        "'yes' is not a boolean for Pulumi (YAML 1.2 knows only true and false): write true",
    ),
    ({"serviceCidr": "10.1.128.0/17"}, "serviceCidr", "overlaps vpcCidr"),
    ({"squidImage": "docker.io/ubuntu/squid:latest"}, "squidImage", "must pin a tag"),
    (
        {"tenants": [tenant(agent(secretEnv=["TELEGRAM_BOT_TOKEN"]))]},
        "tenantSecrets.acme.bot.TELEGRAM_BOT_TOKEN",
        "is required",
    ),
    ({"tenants": [{"agents": [agent()]}]}, "tenants[0].name", "is required"),
    ({"tenants": [tenant(name="acme"), tenant(name="acme")]}, "tenants", "duplicate tenant name 'acme'"),
    ({"tenants": [tenant(namespace="kube-system")]}, "tenants[0].namespace", "reserved"),
    ({"tenants": [tenant(namespace="monitoring")]}, "tenants[0].namespace", "reserved"),
    ({"tenants": [tenant(name="Acme_Corp")]}, "tenants[0].name", "DNS label"),
    ({"tenants": [tenant(agents=[])]}, "tenants[0].agents", "at least one agent"),
    ({"tenants": [tenant(agent(type="autogpt"))]}, "tenants[0].agents[0].type", "not one of"),
    ({"tenants": [tenant(agent(warmPool=-1))]}, "tenants[0].agents[0].warmPool", "between"),
    (
        {"tenants": [tenant(agent(runtimeClass="runc"))]},
        "tenants[0].agents[0].runtimeClass",
        "'runc' is not a Kata runtime class",
    ),
    ({"tenants": [tenant(agent(cpu="lots"))]}, "tenants[0].agents[0].cpu", "quantity"),
    ({"tenants": [tenant(litellm={"models": ["gpt-9"]})]}, "tenants[0].litellm.models", "not in bedrockModels"),
    ({"tenants": [tenant(color="blue")]}, "tenants[0].color", "unknown key"),
    (
        {"tenants": [tenant(agent(runtimeClass="kata-fc"))]},
        "tenants[0].agents[0].runtimeClass",
        "unknown runtime class 'kata-fc'",
    ),
    (
        {"tenants": [tenant(name="a"), tenant(name="b", namespace="tenant-a")]},
        "tenants",
        "duplicate tenant namespace 'tenant-a'",
    ),
    ({"tenants": [tenant(namespace="kata-system")]}, "tenants[0].namespace", "reserved for the platform"),
    ({"tenants": [tenant(namespace="agent-sandbox-system")]}, "tenants[0].namespace", "reserved"),
    ({"tenants": [tenant(namespace="kube-flannel")]}, "tenants[0].namespace", "reserved"),
    (
        {"tenants": [tenant(agent(secretEnv=["LITELLM_API_KEY"]))]},
        "tenants[0].agents[0].secretEnv[0]",
        "set by the platform",
    ),
    (
        {"tenants": [tenant(agent(secretEnv=["bot-token"]))]},
        "tenants[0].agents[0].secretEnv[0]",
        "'bot-token' is not an environment variable name",
    ),
    (
        {"tenants": [tenant(litellm={"models": ["claude"], "budgetDuration": "1 month"})]},
        "tenants[0].litellm.budgetDuration",
        "'1 month' is not a duration like 30d",
    ),
    ({"tenants": [tenant(agent(warmPool=20))]}, "tenants[0].quota.pods", "21 pods"),
    ({"tenants": [tenant(agent(cpu="4", warmPool=3))]}, "tenants[0].quota.cpu", "17 CPU"),
    ({"tenants": [tenant(egress={"domains": ["*"]})]}, "tenants[0].egress.domains[0]", "would allow every domain"),
    (
        {"tenants": [tenant(egress={"domains": ["ok.com", "*.*.com"]})]},
        "tenants[0].egress.domains[1]",
        "would allow every domain",
    ),
    ({"tenants": [tenant(egress={"domains": ["*.com"]})]}, "tenants[0].egress.domains[0]", "whole top-level domain"),
    ({"tenants": [tenant(egress={"domains": ["api.*.com"]})]}, "tenants[0].egress.domains[0]", "not a host name"),
    (
        {"tenants": [tenant(egress={"domains": ["1.2.3.4"]})]},
        "tenants[0].egress.domains[0]",
        "list it under egress.cidrs",
    ),
    (
        {"tenants": [tenant(egress={"domains": ["a.com", "A.com"]})]},
        "tenants[0].egress.domains",
        "duplicate domain 'a.com'",
    ),
    ({"tenants": [tenant(egress={"cidrs": ["0.0.0.0/0"]})]}, "tenants[0].egress.cidrs[0]", "too wide"),
    ({"tenants": [tenant(egress={"cidrs": ["169.254.169.254/32"]})]}, "tenants[0].egress.cidrs[0]", "link-local"),
    (
        {"tenants": [tenant(egress={"cidrs": ["10.1.2.0/24"]})]},
        "tenants[0].egress.cidrs[0]",
        "overlaps vpcCidr 10.1.0.0/16",
    ),
    ({"tenants": [tenant(egress={"cidrs": ["203.0.113.1/24"]})]}, "tenants[0].egress.cidrs[0]", "not a valid CIDR"),
    ({"tenants": [tenant(egress={"domain": []})]}, "tenants[0].egress.domain", "did you mean 'domains'"),
    (
        {"tenants": [tenant(agent(egress={"cidrs": ["10.1.0.0/24"]}))]},
        "tenants[0].agents[0].egress.cidrs[0]",
        "overlaps vpcCidr",
    ),
    (
        {"tenants": [tenant(litellm={"models": ["gpt-5"]})]},
        "tenants[0].litellm.models",
        "'gpt-5' is not in bedrockModels",
    ),
    ({"tenants": [tenant(dedicatedNodes="yes")]}, "tenants[0].dedicatedNodes", "'yes' is not a boolean"),
    (
        {"gvisor": True, "tenants": [tenant(agent(runtimeClass="gvisor"), dedicatedNodes=True)]},
        "tenants[0].agents[0].runtimeClass",
        "'gvisor': dedicatedNodes are Kata",
    ),
    ({"tenent": []}, "tenent", "did you mean 'tenants'"),
    ({"valkeyImage": "docker.io/valkey/valkey"}, "valkeyImage", "must pin a tag"),
    ({"vpcCidr": "10.1.0.0/33"}, "vpcCidr", "not a valid CIDR"),
    ({"vpcCidr": "10.1.0.1/16"}, "vpcCidr", "not a valid CIDR"),
    ({"vpcCidr": "8.8.0.0/16"}, "vpcCidr", "not a private"),
]


@pytest.mark.parametrize(("values", "key", "reason"), CONFIG_ERRORS)
def test_a_bad_value_is_one_line_naming_its_key(values: dict[str, Any], key: str, reason: str) -> None:
    message = config_error(**values)
    assert message.startswith(f"agent-platform:{key}: "), message
    assert reason in message, message
    assert "\n" not in message, message


def test_region_and_never_are_checked_by_shape() -> None:
    assert parse(karpenterConsolidateAfter="Never").karpenter.consolidate_after == "Never"
    assert parse(karpenterConsolidateAfter="1h30m").karpenter.consolidate_after == "1h30m"
    with pytest.raises(ConfigError, match=r"^aws:region: 'mars-1' is not an AWS region; e\.g\. us-east-1"):
        PlatformConfig.from_dict("dev", "mars-1", {"grafanaAdminPassword": "pw", "bedrockModels": MODELS})


def test_fc_runtime_class_when_enabled() -> None:
    """kata-fc is refused unless kataFirecracker is on (see CONFIG_ERRORS), then it is a runtime class."""
    cfg = parse(kataFirecracker=True, tenants=[tenant(agent(runtimeClass="kata-fc"))])
    assert cfg.kata.runtime_classes == ("kata-clh", "kata-qemu", "kata-fc")


def test_engine_strings_are_decoded_by_declared_type() -> None:
    assert decode_raw("azCount", "3") == 3
    assert decode_raw("protect", "true") is True
    assert decode_raw("kataInstanceTypes", '["m8i.large"]') == ["m8i.large"]
    assert decode_raw("tenants", "[]") == []
    with pytest.raises(ConfigError, match="agent-platform:azCount: expected integer"):
        decode_raw("azCount", "three")


def test_stack_config_reads_like_the_cli() -> None:
    config, secret_keys = stack_config("dev")
    assert config["agent-platform:azCount"] == "2"  # every value reaches the program as a string
    assert config["agent-platform:karpenterVersion"]  # project default applied
    assert "agent-platform:grafanaAdminPassword" in secret_keys
    assert "agent-platform:tenantSecrets" in secret_keys  # structured value with secure leaves
    assert "OFFLINE-PLACEHOLDER" not in config["agent-platform:tenantSecrets"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_file_parses(stack: str) -> None:
    from components.config import UNDECLARED_KEYS

    config, _ = stack_config(stack)
    prefix = "agent-platform:"
    values = {k[len(prefix) :]: decode_raw(k[len(prefix) :], v) for k, v in config.items() if k.startswith(prefix)}
    assert set(values) <= set(project_schema()) | set(UNDECLARED_KEYS)
    cfg = PlatformConfig.from_dict(stack, config["aws:region"], values)
    assert cfg.tenants
