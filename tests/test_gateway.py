"""Model gateway: the LiteLLM release, the internal NLB Kata pods use, its database, secrets and wiring."""

from __future__ import annotations

import json
import re
import runpy

import pulumi
import pytest

from components.config import project_schema
from components.contracts import gateway as gwc
from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway import values
from tests.configs import default
from tests.conftest import program_result, rendered_installs
from tests.schemas import validate_object
from tests.tokens import JOB, RELEASE, SECRET, SERVICE
from tools.program import MASK, PLACEHOLDER, ROOT, ProgramResult, Registration, run_program
from tools.render import SHARED


def gateway_children(result: ProgramResult) -> list[Registration]:
    """The Gateway's objects, and the tenants' key Secret and Jobs it runs in its namespace (TenantKeys)."""
    owners = ("agent-platform:gateway:Gateway", "agent-platform:agents:TenantKeys")
    return [r for r in result.registrations if any(o in r.urn for o in owners) and r.type.startswith("kubernetes:")]


# --------------------------------------------------------------------------------------------
# NLB for Kata pods


def test_nlb_service_is_internal_cross_zone_ip_targets(each_stack: ProgramResult) -> None:
    nlb = each_stack.named(SERVICE, "gateway-nlb")
    meta, spec = nlb.inputs["metadata"], nlb.inputs["spec"]
    assert (meta["name"], meta["namespace"]) == ("litellm-nlb", "litellm")
    assert meta["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
    }
    assert spec["type"] == "LoadBalancer"
    assert spec["loadBalancerClass"] == "service.k8s.aws/nlb"
    # the tenant gateway (nginx, inference routes only), never the LiteLLM pods: tests/test_gateway_proxy.py
    assert spec["selector"] == {
        "app.kubernetes.io/name": "litellm-tenant-gateway",
        "app.kubernetes.io/component": "tenant-gateway",
    }
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in spec["ports"]] == [(4000, 4000, "TCP")]
    vpc_cidr = each_stack.named("aws:ec2/vpc:Vpc", "network-vpc").inputs["cidrBlock"]
    assert spec["loadBalancerSourceRanges"] == [vpc_cidr]
    lb = each_stack.named(RELEASE, "gateway-lb-controller")
    assert lb.urn in nlb.dependencies


def test_chart_service_stays_cluster_ip_on_core_nodes(each_stack: ProgramResult) -> None:
    values = each_stack.named(RELEASE, "gateway-litellm").inputs["values"]
    assert "service" not in values  # the chart's default: ClusterIP on port 4000 (rendered, see test_render)
    assert values["nodeSelector"] == CORE_NODE_SELECTOR


def test_litellm_endpoint_output_is_the_nlb_url(each_stack: ProgramResult) -> None:
    url = each_stack.outputs["litellmEndpoint"]
    assert re.fullmatch(r"http://internal-[a-z0-9-]+\.elb\.[a-z0-9-]+\.amazonaws\.com:4000", url)
    assert "litellmEndpoint" not in each_stack.secret_outputs
    assert "grafanaAdminPassword" not in each_stack.outputs
    assert "litellmMasterKey" not in each_stack.outputs


def test_lb_controller_release(each_stack: ProgramResult) -> None:
    lb = each_stack.named(RELEASE, "gateway-lb-controller")
    inputs = lb.inputs
    assert inputs["chart"] == "aws-load-balancer-controller"
    assert inputs["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert inputs["version"] == default("awsLoadBalancerControllerVersion")
    assert inputs["namespace"] == "kube-system"
    values = inputs["values"]
    assert values["clusterName"] == f"agents-{each_stack.stack}"
    assert values["vpcId"].startswith("vpc-")
    assert values["region"] in ("us-east-1", "us-west-2")
    assert "replicaCount" not in values  # the chart's default of 2
    assert values["nodeSelector"] == CORE_NODE_SELECTOR
    assert values["serviceAccount"] == {"create": False, "name": "aws-load-balancer-controller"}


# --------------------------------------------------------------------------------------------
# LiteLLM release


def test_litellm_release_values(each_stack: ProgramResult) -> None:
    release = each_stack.named(RELEASE, "gateway-litellm")
    inputs = release.inputs
    assert inputs["chart"] == "oci://ghcr.io/berriai/litellm-helm"
    assert inputs["version"] == default("litellmChartVersion")
    assert (inputs["name"], inputs["namespace"]) == ("litellm", "litellm")
    values = inputs["values"]
    assert values["replicaCount"] >= 2
    assert values["masterkeySecretName"] == "litellm-masterkey"
    assert values["serviceAccount"] == {"name": "litellm"}
    repository, tag = default("litellmImage").rsplit(":", 1)
    assert values["image"] == {"repository": repository, "tag": tag}
    zone = [c for c in values["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zone
    assert zone[0]["labelSelector"]["matchLabels"] == gwc.SELECTOR
    assert zone[0]["maxSkew"] == 1
    settings = values["proxy_config"]["litellm_settings"]
    assert settings["callbacks"] == ["prometheus"]
    assert settings["require_auth_for_metrics_endpoint"] is True
    for model in values["proxy_config"]["model_list"]:
        assert set(model) <= {"model_name", "litellm_params", "model_info"}
        assert model["litellm_params"]["model"].startswith("bedrock/")
        assert set(model["litellm_params"]) == {"model", "aws_region_name"}  # no AWS keys: Pod Identity


def test_replicas_follow_config() -> None:
    assert program_result("prod").named(RELEASE, "gateway-litellm").inputs["values"]["replicaCount"] == 3
    assert program_result("dev").named(RELEASE, "gateway-litellm").inputs["values"]["replicaCount"] == 2


def test_dev_runs_its_own_postgres_with_a_maintained_image_on_gp3(dev: ProgramResult) -> None:
    values = dev.named(RELEASE, "gateway-litellm").inputs["values"]
    assert values["db"] == {"deployStandalone": False}
    assert "postgresql" not in values
    assert values["extraEnvVars"][0] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "litellm-database", "key": "url"}},
    }
    database = dev.named("kubernetes:apps/v1:StatefulSet", "gateway-db-postgres").inputs
    pod = database["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == default("postgresImage")
    assert pod["nodeSelector"] == CORE_NODE_SELECTOR
    assert pod["securityContext"]["runAsNonRoot"] is True
    claim = database["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "gp3"
    assert claim["resources"]["requests"]["storage"] == "20Gi"
    secret = dev.named(SECRET, "gateway-db-url")
    assert secret.inputs["stringData"] == {"url": MASK, "password": MASK}
    assert secret.plain["stringData"]["url"].startswith("postgresql://litellm:")
    assert "@litellm-postgres.litellm.svc.cluster.local:5432/litellm" in secret.plain["stringData"]["url"]


def test_migrations_run_in_their_own_job_before_litellm(each_stack: ProgramResult) -> None:
    """The chart's migration Job shares the proxy pods' labels (it would be an NLB endpoint): ours has its own."""
    values = each_stack.named(RELEASE, "gateway-litellm").inputs["values"]
    assert values["migrationJob"] == {"enabled": False}
    assert values["envVars"]["DISABLE_SCHEMA_UPDATE"] == "true"
    job = each_stack.named(JOB, "gateway-db-migrations")
    labels = job.inputs["spec"]["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in gwc.SELECTOR.items())
    pod = job.inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == default("litellmImage")
    assert pod["containers"][0]["command"] == ["python", "litellm/proxy/prisma_migration.py"]
    assert job.urn in each_stack.named(RELEASE, "gateway-litellm").dependencies


def test_pdb_keeps_one_litellm_pod(each_stack: ProgramResult) -> None:
    pdb = each_stack.named("kubernetes:policy/v1:PodDisruptionBudget", "gateway-pdb")
    assert pdb.inputs["spec"] == {"minAvailable": 1, "selector": {"matchLabels": gwc.SELECTOR}}
    assert pdb.inputs["metadata"]["namespace"] == "litellm"


# --------------------------------------------------------------------------------------------
# Secrets


def test_master_key_is_a_secret_the_chart_references(each_stack: ProgramResult) -> None:
    secret = each_stack.named(SECRET, "gateway-master-key")
    assert secret.inputs["metadata"] == {"name": "litellm-masterkey", "namespace": "litellm"}
    assert secret.inputs["stringData"] == {"masterkey": MASK}


def test_master_key_is_generated_by_the_program_long_and_random(each_stack: ProgramResult) -> None:
    """Finding "a weak master key (config only checks the sk- prefix)": no config key, a RandomPassword."""
    secret = each_stack.named(SECRET, "gateway-master-key")
    password = each_stack.named("random:index/randomPassword:RandomPassword", "gateway-master-key-value")
    assert password.inputs["length"] >= 48
    assert password.inputs["special"] is False
    assert password.urn in secret.dependencies
    # the mock engine's RandomPassword result is "r" * length: the key is sk- + that, and stays secret
    assert secret.plain["stringData"]["masterkey"] == "sk-" + "r" * int(password.inputs["length"])
    assert "litellmMasterKey" not in json.dumps(project_schema())


def test_no_secret_value_appears_in_inputs_or_outputs(each_stack: ProgramResult) -> None:
    masked = json.dumps([r.inputs for r in each_stack.registrations]) + json.dumps(each_stack.outputs)
    assert PLACEHOLDER not in masked
    assert "rrrrrrrrrrrrrrrr" not in masked  # the mocked RandomPassword results (tenant keys, DB password)
    tenant_keys = each_stack.named(SECRET, "gateway-key-secret")
    assert tenant_keys.inputs["stringData"] == MASK or set(tenant_keys.inputs["stringData"].values()) == {MASK}


def test_tenant_keys_are_secret_sk_values() -> None:
    seen: dict[str, str] = {}

    def program() -> None:
        module = runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        keys: dict[str, pulumi.Output[str]] = module["tenant_keys"].keys
        for tenant, key in keys.items():
            pulumi.export(f"test-key-{tenant}", key)
            key.apply(lambda value, t=tenant: seen.__setitem__(t, value))

    result = run_program("dev", program=program)
    assert set(seen) == {"acme", "globex", "initech"}  # a Fargate tenant gets its own key and budget too
    assert all(value.startswith("sk-") and len(value) > 30 for value in seen.values())
    assert {"test-key-acme", "test-key-globex"} <= result.secret_outputs
    assert result.outputs["test-key-acme"] == MASK


# --------------------------------------------------------------------------------------------
# Rendering and wiring


def test_every_gateway_object_is_a_valid_kubernetes_object(each_stack: ProgramResult) -> None:
    kinds = set()
    for registration in gateway_children(each_stack):
        if registration.type == RELEASE:
            continue
        obj = registration.plain
        validate_object(obj)
        kinds.add(obj["kind"])
    assert {"Namespace", "ServiceAccount", "Secret", "Service", "PodDisruptionBudget", "Job"} <= kinds


def test_gateway_children_use_the_cluster_provider(each_stack: ProgramResult) -> None:
    for registration in gateway_children(each_stack):
        assert registration.provider.endswith("::cluster-k8s"), registration.name
        assert (
            registration.parent.endswith(("Gateway::gateway", "TenantKeys::gateway-key"))
            or "PodIdentity" in registration.parent
        )


def test_each_tenant_waits_for_its_own_key_at_the_gateway(dev: ProgramResult) -> None:
    """The engine orders by dependencies, not by declaration: a tenant's namespace (and so everything in it) waits
    for the Job that registers that tenant's team and key, and for no other tenant's."""
    by_urn = {r.urn: r for r in dev.registrations}
    tenants = [r for r in dev.registrations if r.type.endswith(":Tenant")]
    assert tenants
    for tenant in tenants:
        (namespace,) = [
            r for r in dev.registrations if r.parent == tenant.urn and r.type == "kubernetes:core/v1:Namespace"
        ]
        jobs = {by_urn[u].name for u in namespace.dependencies if by_urn[u].type == "kubernetes:batch/v1:Job"}
        assert jobs == {f"gateway-key-job-{tenant.name}"}, tenant.name


@pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_litellm_runs_non_root_on_a_read_only_root_with_writable_scratch(stack: str) -> None:
    """The rendered chart: no root, no writable image; /tmp (HOME), the chart's cache dirs and the UI copy are
    emptyDirs (what LiteLLM writes at start)."""
    (litellm,) = [r for r in rendered_installs(stack) if r.install.name == "litellm"]
    (deployment,) = [o for o in litellm.objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == values.LITELLM_UID != 0
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    for path in ("/tmp", "/.cache", "/.npm", env["LITELLM_UI_PATH"]):
        assert "emptyDir" in volumes[mounts[path]], path
    assert env["HOME"] == "/tmp"
    assert env["DISABLE_SCHEMA_UPDATE"] == "true"  # no prisma migrate in this pod: the migrations Job does it
