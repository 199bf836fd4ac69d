"""Stack configuration: defaults from Pulumi.yaml, typed parsing, one clear error per bad input."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from components.config import ConfigError, PlatformConfig, decode_raw, project_schema
from tests.configs import config_error, parse_config
from tools.program import ROOT, stack_config

TENANT = {"name": "acme", "agents": [{"name": "hermes", "type": "hermes"}], "litellm": {"models": ["claude"]}}


def parse(**values: Any) -> PlatformConfig:
    return parse_config(**{"tenants": [TENANT], **values})


def error_for(**values: Any) -> str:
    return config_error(**{"tenants": [TENANT], **values})


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


@pytest.mark.parametrize(
    ("values", "key", "reason"),
    [
        ({"vpcCidr": "10.1.0.0/33"}, "agent-platform:vpcCidr", "not a valid CIDR"),
        ({"vpcCidr": "10.1.0.1/16"}, "agent-platform:vpcCidr", "not a valid CIDR"),
        ({"vpcCidr": "8.8.0.0/16"}, "agent-platform:vpcCidr", "not a private"),
        ({"azCount": 1}, "agent-platform:azCount", "between 2 and 6"),
        ({"azCount": 7}, "agent-platform:azCount", "between 2 and 6"),
        ({"azCount": "3"}, "agent-platform:azCount", "expected integer"),
        ({"protect": "yes"}, "agent-platform:protect", "expected boolean"),
        ({"kataInstanceTypes": "m8i.large"}, "agent-platform:kataInstanceTypes", "expected array"),
        ({"tenent": []}, "agent-platform:tenent", "did you mean 'tenants'"),
        ({"kataInstanceTypes": ["m5.2xlarge"]}, "agent-platform:kataInstanceTypes", "no EC2 nested virtualization"),
        ({"kataInstanceTypes": ["c7i.2xlarge"]}, "agent-platform:kataInstanceTypes", "no EC2 nested virtualization"),
        ({"kataMinSize": 5, "kataMaxSize": 2}, "agent-platform:kataMinSize", "greater than max"),
        ({"coreMinSize": 3, "coreMaxSize": 2}, "agent-platform:coreMinSize", "greater than max"),
        ({"karpenterVersion": "1.12.3"}, "agent-platform:karpenterVersion", "below 1.13.0"),
        ({"karpenterInstanceFamilies": ["m7i"]}, "agent-platform:karpenterInstanceFamilies", "nested virtualization"),
        ({"serviceCidr": "10.1.128.0/17"}, "agent-platform:serviceCidr", "overlaps vpcCidr"),
        ({"natGateways": "two"}, "agent-platform:natGateways", "not one of single, perAz"),
        ({"bedrockRegion": "mars-north-1"}, "agent-platform:bedrockRegion", "Bedrock"),
        ({"bedrockModels": []}, "agent-platform:bedrockModels", "at least one model"),
        ({"grafanaAdminPassword": ""}, "agent-platform:grafanaAdminPassword", "is required"),
        ({"defaultRuntimeClass": "kata-fc"}, "agent-platform:defaultRuntimeClass", "not one of the enabled"),
        ({"hermesImage": "nousresearch/hermes-agent:latest"}, "agent-platform:hermesImage", "must pin a tag"),
        ({"litellmDatabase": "external"}, "agent-platform:litellmDatabase", "'rds'"),
        ({"litellmDatabase": "standalone"}, "agent-platform:litellmDatabase", "'in-cluster'"),
        ({"litellmDatabaseUrl": "postgresql://x"}, "agent-platform:litellmDatabaseUrl", "no longer read"),
        ({"litellmCache": "redis"}, "agent-platform:litellmCache", "not one of in-cluster, elasticache"),
        ({"litellmRdsInstanceClass": "m7g.large"}, "agent-platform:litellmRdsInstanceClass", "not an RDS instance"),
        ({"litellmCacheEngineVersion": "8.1"}, "agent-platform:litellmCacheEngineVersion", "major version"),
        ({"valkeyImage": "docker.io/valkey/valkey"}, "agent-platform:valkeyImage", "must pin a tag"),
    ],
)
def test_bad_values_name_the_key(values: dict[str, Any], key: str, reason: str) -> None:
    message = error_for(**values)
    assert message.startswith(f"{key}:") or message.startswith(f"{key}["), message
    assert reason in message


def tenant(**fields: Any) -> dict[str, Any]:
    return {**TENANT, **fields}


@pytest.mark.parametrize(
    ("tenants", "key", "reason"),
    [
        ([TENANT, TENANT], "agent-platform:tenants", "duplicate tenant name 'acme'"),
        (
            [TENANT, tenant(name="other", namespace="tenant-acme")],
            "agent-platform:tenants",
            "duplicate tenant namespace",
        ),
        ([tenant(namespace="kube-system")], "agent-platform:tenants[0].namespace", "reserved"),
        ([tenant(namespace="monitoring")], "agent-platform:tenants[0].namespace", "reserved"),
        ([{"agents": TENANT["agents"]}], "agent-platform:tenants[0].name", "is required"),
        ([tenant(name="Acme_Corp")], "agent-platform:tenants[0].name", "DNS label"),
        ([tenant(agents=[])], "agent-platform:tenants[0].agents", "at least one agent"),
        ([tenant(agents=[{"name": "x", "type": "autogpt"}])], "agent-platform:tenants[0].agents[0].type", "not one of"),
        (
            [tenant(agents=[{"name": "x", "type": "hermes", "warmPool": -1}])],
            "tenants[0].agents[0].warmPool",
            "between",
        ),
        (
            [tenant(agents=[{"name": "x", "type": "hermes", "runtimeClass": "runc"}])],
            "agent-platform:tenants[0].agents[0].runtimeClass",
            "unknown runtime class 'runc'",
        ),
        ([tenant(agents=[{"name": "x", "type": "hermes", "cpu": "lots"}])], "tenants[0].agents[0].cpu", "quantity"),
        ([tenant(litellm={"models": ["gpt-9"]})], "agent-platform:tenants[0].litellm.models", "not in bedrockModels"),
        ([tenant(color="blue")], "agent-platform:tenants[0].color", "unknown key"),
    ],
)
def test_bad_tenants_name_the_key(tenants: list[dict[str, Any]], key: str, reason: str) -> None:
    message = error_for(tenants=tenants)
    assert key in message and reason in message, message


def test_fc_runtime_class_only_when_enabled() -> None:
    agents = [{"name": "x", "type": "hermes", "runtimeClass": "kata-fc"}]
    assert "unknown runtime class 'kata-fc'" in error_for(tenants=[tenant(agents=agents)])
    cfg = parse(kataFirecracker=True, tenants=[tenant(agents=agents)])
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


def test_preview_reports_a_config_error_in_one_line_without_traceback(tmp_path: Any) -> None:
    """A bad stack value fails the offline preview with exit 2 and one line naming the key."""
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "components").symlink_to(ROOT / "components")
    bad = (ROOT / "Pulumi.dev.yaml").read_text().replace("azCount: 2", "azCount: 9")
    (tmp_path / "Pulumi.dev.yaml").write_text(bad)
    code = (
        "import sys; from pathlib import Path; from tools.program import run_program\n"
        "from components.config import ConfigError\nimport pulumi\n"
        f"try:\n    run_program('dev', root=Path({str(tmp_path)!r}))\n"
        "except (ConfigError, pulumi.RunError) as e:\n    print(e); sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == "agent-platform:azCount: must be between 2 and 6, got 9"
    assert "Traceback" not in proc.stderr
