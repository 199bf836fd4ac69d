"""The LiteLLM replicas' shared cache and the RDS database, as the program declares them."""

from __future__ import annotations

import json

import pytest

from components import gateway_cache as gc
from components import gateway_rds as rds
from components.labels import CORE_NODE_SELECTOR
from tests.configs import parse_config
from tests.conftest import program_result
from tests.tokens import JOB, RELEASE, SECRET
from tools.program import MASK, ProgramResult


def litellm_values(result: ProgramResult) -> dict:
    return result.named(RELEASE, "gateway-litellm").inputs["values"]


# --------------------------------------------------------------------------------------------
# Config


def test_defaults_are_in_cluster_and_prod_is_managed() -> None:
    dev = parse_config()
    assert (dev.gateway.cache, dev.gateway.database) == ("in-cluster", "in-cluster")
    assert dev.gateway.cache_image == "docker.io/valkey/valkey:8.1.11"
    prod = program_result("prod")
    assert prod.of_type("aws:elasticache/serverlessCache:ServerlessCache")
    assert prod.of_type("aws:rds/instance:Instance")


# --------------------------------------------------------------------------------------------
# Cache: LiteLLM side


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_litellm_counts_rate_limits_in_the_in_cluster_valkey(stack: str) -> None:
    values = litellm_values(program_result(stack))
    assert values["proxy_config"]["general_settings"]["coordination_redis"] == {
        "host": "litellm-valkey.litellm.svc.cluster.local",
        "port": 6379,
        "password": "os.environ/LITELLM_CACHE_PASSWORD",
    }
    assert "router_settings" not in values["proxy_config"]  # 1.93: the router takes the coordination Redis
    assert gc.password_env() in values["extraEnvVars"]


def test_no_redis_env_names_that_litellm_would_read_as_a_second_config(dev: ProgramResult) -> None:
    names = [e["name"] for e in litellm_values(dev)["extraEnvVars"]]
    assert not [n for n in names if n.startswith("REDIS_")]


def test_prod_litellm_reaches_elasticache_over_tls_as_its_rbac_user() -> None:
    prod = program_result("prod")
    cache = prod.named("aws:elasticache/serverlessCache:ServerlessCache", "gateway-cache-valkey")
    assert cache.inputs["engine"] == "valkey"
    assert cache.inputs["majorEngineVersion"] == "8"
    release = prod.named(RELEASE, "gateway-litellm")
    assert cache.urn in release.dependencies  # the endpoint is known before LiteLLM starts
    assert not prod.of_type("kubernetes:apps/v1:Deployment") or not [
        d for d in prod.of_type("kubernetes:apps/v1:Deployment") if d.name == "gateway-cache-valkey"
    ]
    settings = gc.coordination_redis("x.serverless.use1.cache.amazonaws.com", 6379, tls=True, username="litellm")
    assert settings["ssl"] is True
    assert settings["username"] == gc.ELASTICACHE_USER
    assert settings["password"] == "os.environ/LITELLM_CACHE_PASSWORD"


# --------------------------------------------------------------------------------------------
# Cache: in-cluster Valkey


def test_valkey_runs_non_root_read_only_on_core_nodes_with_a_pinned_image(dev: ProgramResult) -> None:
    deployment = dev.named("kubernetes:apps/v1:Deployment", "gateway-cache-valkey").inputs
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "docker.io/valkey/valkey:8.1.11"
    assert container["command"] == ["valkey-server", "/etc/valkey/valkey.conf"]  # no password in argv
    assert pod["nodeSelector"] == CORE_NODE_SELECTOR
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 999
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    service = dev.named("kubernetes:core/v1:Service", "gateway-cache-valkey").inputs
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["metadata"]["name"] == gc.VALKEY
    assert service["spec"]["ports"][0]["port"] == 6379


def test_valkey_password_is_generated_secret_and_required(dev: ProgramResult) -> None:
    secret = dev.named(SECRET, "gateway-cache-secret")
    assert secret.inputs["stringData"] == {"password": MASK, "valkey.conf": MASK}
    password = secret.plain["stringData"]["password"]
    assert len(password) == 40
    conf = secret.plain["stringData"]["valkey.conf"]
    assert f'requirepass "{password}"' in conf
    assert 'save ""' in conf
    assert "appendonly no" in conf
    assert dev.named("random:index/randomPassword:RandomPassword", "gateway-cache-password")


def test_prod_elasticache_is_private_tls_and_admits_only_the_core_nodes() -> None:
    prod = program_result("prod")
    cache = prod.named("aws:elasticache/serverlessCache:ServerlessCache", "gateway-cache-valkey").inputs
    assert cache["subnetIds"] == prod.outputs["privateSubnetIds"]
    assert len(cache["subnetIds"]) == 3
    rule = prod.named("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "gateway-cache-from-core").inputs
    assert (rule["fromPort"], rule["toPort"], rule["ipProtocol"]) == (6379, 6379, "tcp")
    assert "referencedSecurityGroupId" in rule
    assert "cidrIpv4" not in rule
    user = prod.named("aws:elasticache/user:User", "gateway-cache-user").inputs
    assert user["engine"] == "valkey"
    assert user["userName"] == "litellm"
    assert user["authenticationMode"] == {"type": "password", "passwords": [MASK]}
    assert "-@admin" in user["accessString"]
    assert "-@dangerous" in user["accessString"]
    group = prod.named("aws:elasticache/userGroup:UserGroup", "gateway-cache-users").inputs
    assert group["engine"] == "valkey"
    assert len(group["userIds"]) == 1
    secret = prod.named(SECRET, "gateway-cache-secret")
    assert secret.inputs["stringData"] == {"password": MASK}


# --------------------------------------------------------------------------------------------
# RDS


def test_prod_database_is_rds_multi_az_encrypted_protected_with_a_managed_password() -> None:
    prod = program_result("prod")
    instance = prod.named("aws:rds/instance:Instance", "gateway-db-rds-postgres")
    i = instance.inputs
    assert i["engine"] == "postgres"
    assert i["engineVersion"] == "17.6"
    assert i["multiAz"] is True
    assert i["storageEncrypted"] is True
    assert i["publiclyAccessible"] is False
    assert i["manageMasterUserPassword"] is True
    assert "password" not in i
    assert i["iamDatabaseAuthenticationEnabled"] is True
    assert i["deletionProtection"] is True
    assert instance.protect is True
    assert i["skipFinalSnapshot"] is False
    assert i["finalSnapshotIdentifier"]
    rule = prod.named("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "gateway-db-rds-from-core").inputs
    assert (rule["fromPort"], rule["toPort"]) == (5432, 5432)
    assert "referencedSecurityGroupId" in rule
    assert i["dbSubnetGroupName"]
    assert (
        prod.named("aws:rds/subnetGroup:SubnetGroup", "gateway-db-rds-subnets").inputs["subnetIds"]
        == prod.outputs["privateSubnetIds"]
    )
    assert not prod.of_type("kubernetes:apps/v1:StatefulSet")  # no in-cluster PostgreSQL
    assert not [s for s in prod.of_type(SECRET) if s.name == "gateway-db-url"]  # no URL, no password


def test_dev_keeps_the_in_cluster_database_without_rds(dev: ProgramResult) -> None:
    assert not dev.of_type("aws:rds/instance:Instance")
    assert not dev.of_type("aws:elasticache/serverlessCache:ServerlessCache")


def test_litellm_and_migrations_log_in_to_rds_with_iam_tokens() -> None:
    prod = program_result("prod")
    env = litellm_values(prod)["extraEnvVars"]
    names = {e["name"]: e.get("value") for e in env}
    assert names["IAM_TOKEN_DB_AUTH"] == "true"
    assert names["DATABASE_USER"] == "litellm"
    assert names["DATABASE_NAME"] == "litellm"
    assert names["DATABASE_PORT"] == "5432"
    assert names["AWS_REGION"] == "us-east-1"
    assert "DATABASE_URL" not in names
    assert "DATABASE_PASSWORD" not in names
    migrations = prod.named(JOB, "gateway-db-migrations").inputs["spec"]["template"]["spec"]["containers"][0]
    assert [e["name"] for e in migrations["env"]] == [e["name"] for e in rds.iam_env("h", "us-east-1")]
    bootstrap = prod.named(JOB, "gateway-db-rds-bootstrap")
    assert bootstrap.urn in prod.named(JOB, "gateway-db-migrations").dependencies


def test_litellm_may_connect_only_as_its_database_user() -> None:
    policy = json.loads(rds.connect_policy("us-east-1", "123456789012", "db-ABC"))
    assert policy["Statement"] == [
        {
            "Sid": "ConnectAsLitellm",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/litellm",
        }
    ]
    prod = program_result("prod")
    connect = prod.named("aws:iam/rolePolicy:RolePolicy", "gateway-db-rds-connect")
    role = prod.named("aws:iam/role:Role", "gateway-bedrock-role")
    assert role.urn in connect.dependencies  # attached to LiteLLM's Pod Identity role


def test_bootstrap_reads_only_the_master_secret_through_its_own_pod_identity() -> None:
    prod = program_result("prod")
    policy = json.loads(rds.secret_read_policy("arn:aws:secretsmanager:us-east-1:1:secret:rds!db-x"))
    assert policy["Statement"][0]["Action"] == "secretsmanager:GetSecretValue"
    association = prod.named(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", "gateway-db-rds-bootstrap-pod-identity"
    )
    assert association.inputs["serviceAccount"] == rds.BOOTSTRAP_SERVICE_ACCOUNT
    job = prod.named(JOB, "gateway-db-rds-bootstrap")
    assert association.urn in job.dependencies
    pod = job.inputs["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == rds.BOOTSTRAP_SERVICE_ACCOUNT
    assert pod["volumes"] == [{"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    assert pod["containers"][0]["image"] == "docker.io/library/postgres:17.6"
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in pod["containers"] + pod["initContainers"])
