"""Tenants and agents: namespace, quota, NetworkPolicy, secrets, config files, Deployments and warm pools.

Most tests run a small program with only the Kata runtime, agent-sandbox and the tenants (fast, and
independent of the rest of the platform); the last ones check the wiring in the real __main__.py.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.capacity.keda import Keda, KedaArgs
from components.config import load
from components.config.reader import safe_load
from components.contracts.labels import SANDBOX_LABEL
from components.runtime.agent_sandbox import AgentSandbox, AgentSandboxArgs, release_manifest_url
from components.runtime.kata_deploy import KataRuntime, KataRuntimeArgs
from components.tenants.sandbox_network import SandboxEgress, sandbox_egress_rules
from components.tenants.tenant import PSA_LABELS, Tenant, TenantArgs
from tests.configs import config_error, default, parse_config
from tests.conftest import program_result
from tests.schemas import is_custom_resource, validate_object
from tests.test_podspec import assert_sandbox_pod
from tests.tokens import DEPLOYMENT, TEMPLATE
from tools.program import MASK, PLACEHOLDER, ProgramResult, Registration

LITELLM_URL = "http://internal-k8s-litellm-0123456789.elb.us-east-1.amazonaws.com:4000"
PROXY_HOST = "internal-k8s-egress-0123456789.elb.us-east-1.amazonaws.com"
WARM_POOL = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxWarmPool"


def tenants_program() -> None:
    """The "kata runtime and tenants" section of __main__.py, with a fixed LiteLLM URL and tenant keys."""
    cfg = load()
    provider = k8s.Provider("test-k8s", kubeconfig="{}")
    opts = pulumi.ResourceOptions(providers=[provider])
    kata = KataRuntime("kata-runtime", KataRuntimeArgs(cfg.kata), opts=opts)
    controller = (
        AgentSandbox("agent-sandbox", AgentSandboxArgs(cfg.images.agent_sandbox_version), opts=opts)
        if cfg.any_warm_pool
        else None
    )
    scheduled = any(a.schedule is not None for t in cfg.tenants for a in t.agents)
    keda = Keda("keda", KedaArgs(cfg.images.keda_version), opts=opts) if scheduled else None
    secrets = pulumi.Config("agent-platform").get_secret_object("tenantSecrets")
    for tenant in cfg.tenants:
        Tenant(
            tenant.name,
            TenantArgs.for_tenant(
                tenant,
                cfg,
                litellm_url=LITELLM_URL,
                litellm_key=pulumi.Output.secret(f"sk-{tenant.name}-virtual-key"),
                secrets=None if secrets is None else secrets.apply(lambda s, t=tenant.name: s.get(t, {})),
                sandbox_controller=controller,
                scaler=keda.release if keda else None,
                depends_on=tuple(kata.runtime_classes),
                proxy_url=pulumi.Output.secret(f"http://{tenant.name}:proxy-password@{PROXY_HOST}:3128"),
                mcp_tokens={a.name: pulumi.Output.secret(mcp_token(tenant.name, a.name)) for a in tenant.agents},
                fargate_security_group_id=f"sg-fargate-{tenant.name}" if tenant.fargate else None,
            ),
            opts=opts,
        )


def mcp_token(tenant: str, agent: str) -> str:
    return f"mcp-token-of-{tenant}-{agent}"


def tenants_result(stack: str, **overrides: Any) -> ProgramResult:
    return program_result(stack, {f"agent-platform:{k}": v for k, v in overrides.items()}, tenants_program)


@pytest.fixture(scope="module")
def tenants() -> ProgramResult:
    return tenants_result("dev")


def one(result: ProgramResult, type_: str, name: str) -> Registration:
    return result.named(type_, name)


def mine(result: ProgramResult) -> list[Registration]:
    """Kubernetes objects declared by the tenants, the Kata runtime and agent-sandbox."""
    return [
        r for r in result.registrations if r.type.startswith("kubernetes:") and r.custom and "providers" not in r.type
    ]


# ---------------------------------------------------------------------------------------------------
# Namespace, quota, limits, NetworkPolicy, service account


def test_tenant_namespace_is_a_sandbox_namespace_with_pod_security(tenants: ProgramResult) -> None:
    ns = one(tenants, "kubernetes:core/v1:Namespace", "acme-ns").inputs
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == "tenant-acme"
    assert labels[SANDBOX_LABEL] == "true"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert PSA_LABELS.items() <= labels.items()


def test_quota_and_limit_range_follow_the_config(tenants: ProgramResult) -> None:
    hard = one(tenants, "kubernetes:core/v1:ResourceQuota", "acme-quota").inputs["spec"]["hard"]
    assert hard["requests.cpu"] == hard["limits.cpu"] == "16"
    assert hard["requests.memory"] == hard["limits.memory"] == "64Gi"
    assert hard["pods"] == "20"
    assert hard["requests.storage"] == "200Gi"
    limits = one(tenants, "kubernetes:core/v1:LimitRange", "acme-limits").inputs["spec"]["limits"]
    container = next(item for item in limits if item["type"] == "Container")
    assert container["max"] == {"cpu": "16", "memory": "64Gi"}
    assert {"type": "PersistentVolumeClaim", "max": {"storage": "200Gi"}} in limits


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_network_policy_denies_ingress_and_allows_only_needed_egress(tenants: ProgramResult, tenant: str) -> None:
    policy = one(tenants, "kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{tenant}-netpol").inputs
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == f"tenant-{tenant}"
    assert spec["podSelector"] == {}
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec.get("ingress", []) == []
    egress = spec["egress"]
    dns, litellm, proxy = egress  # egressMode allowlist (the default): no direct internet access
    assert dns["to"] == [{"ipBlock": {"cidr": "10.1.0.2/32"}}]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert litellm == {"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 4000}]}
    assert proxy == {"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    assert len(egress) == 3


def test_service_account_has_no_token(tenants: ProgramResult) -> None:
    sa = one(tenants, "kubernetes:core/v1:ServiceAccount", "acme-sa").inputs
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"] == {**sa["metadata"], "name": "sandbox", "namespace": "tenant-acme"}


# ---------------------------------------------------------------------------------------------------
# Secrets and config files


@pytest.mark.parametrize(
    ("tenant", "agent", "keys"),
    [
        ("acme", "hermes", {"LITELLM_API_KEY", "LITELLM_MCP_URL", "API_SERVER_KEY", "TELEGRAM_BOT_TOKEN"}),
        (
            "globex",
            "openclaw",
            {"LITELLM_API_KEY", "LITELLM_MCP_URL", "OPENCLAW_GATEWAY_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"},
        ),
    ],
)
def test_agent_secrets_are_secret(tenants: ProgramResult, tenant: str, agent: str, keys: set[str]) -> None:
    secret = one(tenants, "kubernetes:core/v1:Secret", f"{tenant}-{agent}-secret")
    assert secret.inputs["stringData"] == dict.fromkeys(keys, MASK)  # keys readable, every value masked
    plain = secret.plain["stringData"]
    assert plain["LITELLM_API_KEY"] == f"sk-{tenant}-virtual-key"
    bot = next(k for k in keys if k.endswith("_TOKEN") and k not in ("OPENCLAW_GATEWAY_TOKEN",))
    assert plain[bot] == PLACEHOLDER  # from tenantSecrets.<tenant>.<agent>.<ENV>
    token = one(tenants, "random:index/randomPassword:RandomPassword", f"{tenant}-{agent}-token").inputs
    assert token["length"] >= 32
    assert token["special"] is False
    # No secret value anywhere else in the tenant's objects.
    others = [r for r in mine(tenants) if r.type != "kubernetes:core/v1:Secret"]
    text = json.dumps([r.plain for r in others])
    assert PLACEHOLDER not in text
    assert f"sk-{tenant}-virtual-key" not in text


def test_hermes_config_points_at_litellm_and_reads_the_key_from_the_environment(tenants: ProgramResult) -> None:
    data = one(tenants, "kubernetes:core/v1:ConfigMap", "acme-hermes-config").inputs["data"]
    assert set(data) == {"config.yaml", ".env", "SOUL.md"}
    model = safe_load(data["config.yaml"])["model"]
    assert model == {
        "default": "claude-sonnet",  # the tenant's first LiteLLM model
        "provider": "custom",
        "base_url": f"{LITELLM_URL}/v1",
        "api_key": "${LITELLM_API_KEY}",
        "context_length": 200000,  # bedrockModels[claude-sonnet].contextWindow
    }
    env = {e["name"]: e for e in container(tenants, "acme-hermes")["env"]}
    assert env["API_SERVER_ENABLED"]["value"] == "true"
    assert env["API_SERVER_HOST"]["value"] == "0.0.0.0"
    assert env["API_SERVER_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "hermes-secrets", "key": "API_SERVER_KEY"}}
    assert env["LITELLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "hermes-secrets"
    assert env["HERMES_HOME"]["value"] == "/opt/data"


def test_openclaw_uses_litellm_as_an_openai_compatible_provider(tenants: ProgramResult) -> None:
    data = one(tenants, "kubernetes:core/v1:ConfigMap", "globex-openclaw-config").inputs["data"]
    config = json.loads(data["openclaw.json"])
    provider = config["models"]["providers"]["litellm"]
    assert provider["baseUrl"] == f"{LITELLM_URL}/v1"
    assert provider["apiKey"] == "${LITELLM_API_KEY}"
    assert provider["api"] == "openai-completions"
    assert [m["id"] for m in provider["models"]] == ["claude-sonnet", "nova-pro"]
    assert provider["request"] == {"allowPrivateNetwork": True}
    assert config["agents"]["defaults"]["model"]["primary"] == "litellm/claude-sonnet"
    assert config["gateway"]["bind"] == "lan"
    assert config["gateway"]["port"] == 18789
    c = container(tenants, "globex-openclaw")
    assert "--bind lan" in c["command"][-1]
    env = {e["name"]: e for e in c["env"]}
    assert env["OPENCLAW_GATEWAY_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "openclaw-secrets"
    assert "/healthz" in " ".join(c["livenessProbe"]["exec"]["command"])
    assert "/readyz" in " ".join(c["readinessProbe"]["exec"]["command"])


# ---------------------------------------------------------------------------------------------------
# Workloads


def container(result: ProgramResult, deployment: str) -> dict[str, Any]:
    return one(result, DEPLOYMENT, deployment).inputs["spec"]["template"]["spec"]["containers"][0]


def test_hermes_deployment_seeds_its_volume_in_the_entrypoint(tenants: ProgramResult) -> None:
    spec = one(tenants, DEPLOYMENT, "acme-hermes").inputs["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["data"] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "hermes-data"},
    }
    c = pod["containers"][0]
    assert c["image"] == "docker.io/nousresearch/hermes-agent:v2026.8.19"
    script = c["command"][-1]
    assert "cp /etc/agent-seed/config.yaml /opt/data/config.yaml" in script
    assert script.rstrip().endswith("exec /opt/hermes/.venv/bin/hermes gateway run")
    assert {p["containerPort"] for p in c["ports"]} == {8642, 9119}
    assert pod["securityContext"]["runAsUser"] == 10000
    pvc = one(tenants, "kubernetes:core/v1:PersistentVolumeClaim", "acme-hermes-data").inputs["spec"]
    assert pvc["storageClassName"] == "gp3"
    assert pvc["resources"]["requests"]["storage"] == "10Gi"


def test_agents_without_storage_use_an_empty_dir_and_never_run_twice(tenants: ProgramResult) -> None:
    spec = one(tenants, DEPLOYMENT, "globex-openclaw").inputs["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"  # tmpfs: sticky /tmp without an init container
    assert not tenants.of_type("kubernetes:core/v1:PersistentVolumeClaim")[1:]  # only acme's hermes


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_sandbox_pod_in_every_stack_keeps_the_invariants(stack: str) -> None:
    result = tenants_result(stack)
    cfg_resolver = {"dev": "10.1.0.2", "staging": "10.2.0.2", "prod": "10.3.0.2"}[stack]
    templates = [r.inputs["spec"]["template"] for r in result.of_type(DEPLOYMENT)]
    templates += [r.inputs["spec"]["podTemplate"] for r in result.of_type(TEMPLATE)]
    assert len(result.of_type(TEMPLATE)) >= 1
    for template in templates:
        namespace = "tenant-" + template["metadata"]["labels"]["agent-platform.io/tenant"]
        assert_sandbox_pod(template, resolver=cfg_resolver, namespace=namespace)
    objects = [r.inputs for r in mine(result) if not r.type.startswith(("kubernetes:yaml/", "kubernetes:helm.sh/"))]
    for obj in sorted(objects, key=is_custom_resource):  # custom resources last: they need shared/ CRDs
        validate_object(obj)  # as written to build/<stack>/manifests, secrets masked


def test_a_non_default_vpc_cidr_moves_the_resolver_everywhere() -> None:
    result = tenants_result("dev", vpcCidr="10.77.0.0/16")
    for r in result.of_type(DEPLOYMENT):
        assert r.inputs["spec"]["template"]["spec"]["dnsConfig"]["nameservers"] == ["10.77.0.2"]
    for r in result.of_type(TEMPLATE):
        spec = r.inputs["spec"]
        assert spec["podTemplate"]["spec"]["dnsConfig"]["nameservers"] == ["10.77.0.2"]
        assert spec["networkPolicy"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.77.0.2/32"}}]
    policy = one(result, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "acme-netpol").inputs["spec"]
    network = parse_config(vpcCidr="10.77.0.0/16").network
    assert policy["egress"] == sandbox_egress_rules(network, SandboxEgress(allowlist=True))


def test_every_child_uses_the_cluster_provider_and_sits_under_its_tenant(tenants: ProgramResult) -> None:
    provider = tenants.of_type("pulumi:providers:kubernetes")[0].urn
    tenant_urns = {r.urn for r in tenants.of_type("agent-platform:agents:Tenant")}
    assert len(tenant_urns) == 3  # acme and globex on Kata, initech on Fargate
    objects = [r for r in mine(tenants) if r.type.startswith("kubernetes:")]
    assert objects
    assert all(r.provider == provider for r in objects)
    namespace = one(tenants, "kubernetes:core/v1:Namespace", "acme-ns")
    assert namespace.parent in tenant_urns
    assert one(tenants, DEPLOYMENT, "acme-hermes").parent == namespace.urn
    runtime_class_urns = {r.urn for r in tenants.of_type("kubernetes:node.k8s.io/v1:RuntimeClass")}
    assert runtime_class_urns <= set(namespace.dependencies)


# ---------------------------------------------------------------------------------------------------
# Warm pools


def test_warm_pool_agents_get_a_template_and_a_pool(tenants: ProgramResult) -> None:
    config_file = tenants.of_type("kubernetes:yaml/v2:ConfigFile")
    assert len(config_file) == 1
    assert config_file[0].inputs["file"] == release_manifest_url(default("agentSandboxVersion"))
    template = one(tenants, TEMPLATE, "globex-openclaw-template")
    pool = one(tenants, WARM_POOL, "globex-openclaw-pool")
    assert pool.inputs["spec"]["replicas"] == 2
    assert pool.inputs["spec"]["sandboxTemplateRef"] == {"name": template.inputs["metadata"]["name"]}
    assert pool.inputs["metadata"]["namespace"] == template.inputs["metadata"]["namespace"] == "tenant-globex"
    assert config_file[0].urn in template.dependencies
    assert config_file[0].urn in pool.dependencies
    spec = template.inputs["spec"]
    assert spec["networkPolicyManagement"] == "Managed"
    assert (
        spec["networkPolicy"]["egress"]
        == one(tenants, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "globex-netpol").inputs["spec"]["egress"]
    )
    # Spare sandboxes get the LiteLLM key and gateway token, never the bot tokens.
    env = {e["name"] for e in spec["podTemplate"]["spec"]["containers"][0]["env"]}
    assert {"LITELLM_API_KEY", "OPENCLAW_GATEWAY_TOKEN"} <= env
    assert not env & {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"}
    assert not tenants.of_type(TEMPLATE)[1:]  # acme has no warm pool


def test_warm_pool_with_storage_uses_volume_claim_templates() -> None:
    tenants = [
        {
            "name": "acme",
            "agents": [{"name": "hermes", "type": "hermes", "storageGiB": 5, "warmPool": 1}],
            "litellm": {"models": ["claude-sonnet"]},
        }
    ]
    result = tenants_result("dev", tenants=tenants, tenantSecrets={}, knownTenants=["acme"])
    spec = one(result, TEMPLATE, "acme-hermes-template").inputs["spec"]
    assert spec["volumeClaimTemplates"] == [
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "gp3",
                "resources": {"requests": {"storage": "5Gi"}},
            },
        }
    ]
    assert "data" not in {v["name"] for v in spec["podTemplate"]["spec"]["volumes"]}
    assert "data" in {m["name"] for m in spec["podTemplate"]["spec"]["containers"][0]["volumeMounts"]}


def test_no_warm_pool_means_no_agent_sandbox_install() -> None:
    tenants = [{"name": "acme", "agents": [{"name": "hermes", "type": "hermes"}]}]
    result = tenants_result("dev", tenants=tenants, tenantSecrets={}, knownTenants=["acme"])
    assert not result.of_type("kubernetes:yaml/v2:ConfigFile")
    assert not result.of_type("agent-platform:sandbox:AgentSandbox")
    assert not result.of_type(TEMPLATE)
    assert not result.of_type(WARM_POOL)


# ---------------------------------------------------------------------------------------------------
# Quota: the agents' sum, Kata overhead included


AGENT = {"name": "bot", "type": "hermes"}


def test_quota_counts_the_kata_pod_overhead() -> None:
    # 12 x (1 CPU + 250m overhead) = 15 CPU fits 16; 13 x 1.25 = 16.25 does not, although 13 x 1 would.
    ok = [{"name": "a", "agents": [{**AGENT, "warmPool": 11}]}]
    parse_config(tenants=ok)
    message = config_error(tenants=[{"name": "a", "agents": [{**AGENT, "warmPool": 12}]}])
    assert "tenants[0].quota.cpu" in message
    assert "16.25 CPU" in message


# ---------------------------------------------------------------------------------------------------
# Wiring in the real program


def test_main_wires_the_gateway_into_the_tenants(dev: ProgramResult) -> None:
    config_map = dev.named("kubernetes:core/v1:ConfigMap", "acme-hermes-config").inputs["data"]
    assert safe_load(config_map["config.yaml"])["model"]["base_url"] == dev.outputs["litellmEndpoint"] + "/v1"
    secret = dev.named("kubernetes:core/v1:Secret", "acme-hermes-secret")
    assert set(secret.inputs["stringData"].values()) == {MASK}
    assert secret.plain["stringData"]["LITELLM_API_KEY"].startswith("sk-")
    assert dev.outputs["tenantNamespaces"] == {
        "acme": "tenant-acme",
        "globex": "tenant-globex",
        "initech": "tenant-initech",
    }
    assert dev.outputs["runtimeClasses"] == ["kata-clh", "kata-qemu"]
    provider = dev.of_type("pulumi:providers:kubernetes")[0].urn
    assert dev.named(DEPLOYMENT, "acme-hermes").provider == provider
    # The agent-sandbox controller can only run on core nodes (no Kata toleration): install after them.
    node_groups = {r.urn for r in dev.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert node_groups & set(dev.of_type("kubernetes:yaml/v2:ConfigFile")[0].dependencies)
