"""The LiteLLM replicas' shared cache and the RDS database, as the program declares them."""

from __future__ import annotations

import hashlib
import json

import pytest

from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway import cache as gc
from components.gateway import rds
from tests.configs import default, parse_config
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
    assert dev.gateway.cache_image == default("valkeyImage")
    prod = program_result("prod")
    assert prod.of_type("aws:elasticache/serverlessCache:ServerlessCache")
    assert prod.of_type("aws:rds/instance:Instance")


# --------------------------------------------------------------------------------------------
# Cache: LiteLLM side


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_litellm_counts_rate_limits_in_the_in_cluster_valkey_over_tls(stack: str) -> None:
    values = litellm_values(program_result(stack))
    assert values["proxy_config"]["general_settings"]["coordination_redis"] == {
        "host": "litellm-valkey.litellm.svc.cluster.local",
        "port": 6379,
        "username": "litellm",
        "password": "os.environ/LITELLM_CACHE_PASSWORD",
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": "/etc/litellm-cache-ca/ca.crt",
    }
    assert "router_settings" not in values["proxy_config"]  # 1.93: the router takes the coordination Redis
    assert gc.password_env() in values["extraEnvVars"]
    assert {"name": "cache-ca", "configMap": {"name": gc.CA_CONFIG_MAP}} in values["volumes"]
    assert {"name": "cache-ca", "mountPath": gc.CA_DIR, "readOnly": True} in values["volumeMounts"]


def test_without_tls_litellm_gets_no_tls_keyword_and_no_ca() -> None:
    """litellmCacheTls: false (the lab runs it as rendered: realtests/test_litellm_rate_limits.py)."""
    assert parse_config(litellmCacheTls=False).gateway.cache_tls is False
    settings = gc.in_cluster_settings("litellm", tls=False)
    assert settings == {
        "host": "litellm-valkey.litellm.svc.cluster.local",
        "port": 6379,
        "username": "litellm",
        "password": "os.environ/LITELLM_CACHE_PASSWORD",
    }
    values = gc.with_cache({"proxy_config": {}}, settings, ca=False)
    assert "volumes" not in values
    assert "volumeMounts" not in values
    conf = gc.valkey_conf("pw", tls=False).splitlines()
    assert "port 6379" in conf
    assert not [line for line in conf if line.startswith("tls-")]
    spec = gc.valkey_deployment_spec("valkey:x")
    assert [v["name"] for v in spec["template"]["spec"]["volumes"]] == ["config", "data"]
    assert "annotations" not in spec["template"]["metadata"]


def test_tls_keywords_are_rendered_only_with_tls() -> None:
    """redis-py 5.3.1 (the image's) fails every counter write when a plain connection gets ssl_* keywords
    (realtests/test_litellm_rate_limits.py shows it): no setting may carry them without ssl: true."""
    for tls in (False, True):
        for cluster in (False, True):
            settings = gc.coordination_redis("h", 6379, tls=tls, ca_file="/ca.crt" if tls else None, cluster=cluster)
            assert gc.plain_connection_tls_keywords(settings) == []
            assert ("ssl" in settings) is tls
    broken = {"host": "h", "ssl": False, "ssl_check_hostname": True}
    assert gc.plain_connection_tls_keywords(broken) == ["ssl_check_hostname"]


def test_no_redis_env_names_that_litellm_would_read_as_a_second_config(dev: ProgramResult) -> None:
    names = [e["name"] for e in litellm_values(dev)["extraEnvVars"]]
    assert not [n for n in names if n.startswith("REDIS_")]


def test_prod_litellm_reaches_elasticache_as_a_cluster_over_tls_as_its_rbac_user() -> None:
    prod = program_result("prod")
    cache = prod.named("aws:elasticache/serverlessCache:ServerlessCache", "gateway-cache-valkey")
    assert cache.inputs["engine"] == "valkey"
    assert cache.inputs["majorEngineVersion"] == "8"
    release = prod.named(RELEASE, "gateway-litellm")
    assert cache.urn in release.dependencies  # the endpoint is known before LiteLLM starts
    assert not [d for d in prod.of_type("kubernetes:apps/v1:Deployment") if d.name == "gateway-cache-valkey"]
    settings = release.inputs["values"]["proxy_config"]["general_settings"]["coordination_redis"]
    (node,) = settings.pop("startup_nodes")  # cluster mode: LiteLLM's cluster client groups keys by hash slot
    assert node["host"].endswith(".serverless.use1.cache.amazonaws.com")
    assert node["port"] == 6379
    assert settings == {
        "username": gc.CACHE_USER,
        "password": "os.environ/LITELLM_CACHE_PASSWORD",
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,  # Amazon's CA from the image's store: no ssl_ca_certs, no CA volume
    }
    assert "cache-ca" not in {v["name"] for v in release.inputs["values"].get("volumes", [])}


# --------------------------------------------------------------------------------------------
# Cache: in-cluster Valkey


def test_valkey_runs_non_root_read_only_on_core_nodes_with_a_pinned_image(dev: ProgramResult) -> None:
    deployment = dev.named("kubernetes:apps/v1:Deployment", "gateway-cache-valkey").inputs
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == default("valkeyImage")
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


def test_valkey_serves_tls_with_a_certificate_from_the_program_s_own_ca(dev: ProgramResult) -> None:
    deployment = dev.named("kubernetes:apps/v1:Deployment", "gateway-cache-valkey").inputs
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": gc.TLS_SECRET, "defaultMode": 0o440}} in pod["volumes"]
    assert {"name": "tls", "mountPath": gc.VALKEY_TLS_DIR, "readOnly": True} in pod["containers"][0]["volumeMounts"]
    # a renewed certificate restarts the server (its digest is in the pod template)
    assert len(deployment["spec"]["template"]["metadata"]["annotations"]["agent-platform.io/certificate-sha256"]) == 64
    secret = dev.named(SECRET, "gateway-cache-tls")
    assert secret.inputs["type"] == "kubernetes.io/tls"
    assert set(secret.inputs["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert secret.inputs["stringData"]["tls.key"] == MASK
    ca = dev.named("kubernetes:core/v1:ConfigMap", "gateway-cache-ca").inputs
    assert ca["metadata"]["name"] == gc.CA_CONFIG_MAP
    assert set(ca["data"]) == {"ca.crt"}
    csr = dev.named("tls:index/certRequest:CertRequest", "gateway-cache-tls-server-csr").inputs
    assert csr["dnsNames"][0] == "litellm-valkey.litellm.svc.cluster.local"
    assert set(csr["dnsNames"]) == set(gc.service_dns_names("litellm"))
    cert = dev.named("tls:index/locallySignedCert:LocallySignedCert", "gateway-cache-tls-server-cert").inputs
    assert cert["allowedUses"] == ["digital_signature", "key_agreement", "server_auth"]
    assert cert["earlyRenewalHours"] < cert["validityPeriodHours"]
    ca_cert = dev.named("tls:index/selfSignedCert:SelfSignedCert", "gateway-cache-tls-ca").inputs
    assert ca_cert["isCaCertificate"] is True


def test_valkey_admits_only_litellm_s_user_with_litellm_s_commands(dev: ProgramResult) -> None:
    secret = dev.named(SECRET, "gateway-cache-secret")
    assert secret.inputs["stringData"] == {"password": MASK, "valkey.conf": MASK}
    password = secret.plain["stringData"]["password"]
    assert len(password) == 40
    conf = secret.plain["stringData"]["valkey.conf"].splitlines()
    assert password not in "\n".join(conf)  # only its SHA-256
    assert "user default off resetkeys resetchannels -@all" in conf
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert f"user litellm {gc.VALKEY_ACCESS} #{digest}" in conf
    assert gc.VALKEY_ACCESS.startswith("on ~* resetchannels -@all +get ")
    assert "+@" not in gc.VALKEY_ACCESS  # single commands, no category
    assert {"port 0", "tls-port 6379", "tls-auth-clients no", 'save ""', "appendonly no"} <= set(conf)
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
    secret = prod.named(SECRET, "gateway-cache-secret")
    assert secret.inputs["stringData"] == {"password": MASK}


def test_the_elasticache_user_group_holds_a_default_user_that_is_switched_off() -> None:
    """AWS::ElastiCache::UserGroup UserIds: "A user named default must be included"; a Valkey group takes only
    users with a password (ElastiCache RBAC), and "off" in an access string lets nobody log in as that user."""
    prod = program_result("prod")
    default_user = prod.named("aws:elasticache/user:User", "gateway-cache-default-user").inputs
    assert default_user["userName"] == "default"
    assert default_user["engine"] == "valkey"
    assert default_user["accessString"] == "off -@all"
    assert default_user["authenticationMode"] == {"type": "password", "passwords": [MASK]}
    group = prod.named("aws:elasticache/userGroup:UserGroup", "gateway-cache-users").inputs
    assert group["engine"] == "valkey"
    users = {u.inputs["userId"]: u.inputs["userName"] for u in prod.of_type("aws:elasticache/user:User")}
    assert sorted(users[i] for i in group["userIds"]) == ["default", "litellm"]


# --------------------------------------------------------------------------------------------
# RDS


def test_prod_database_is_rds_multi_az_encrypted_protected_with_a_managed_password() -> None:
    prod = program_result("prod")
    instance = prod.named("aws:rds/instance:Instance", "gateway-db-rds-postgres")
    i = instance.inputs
    assert i["engine"] == "postgres"
    assert i["engineVersion"] == "17"  # the major: RDS applies minor upgrades, nothing sets them back
    assert i["autoMinorVersionUpgrade"] is True
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
    assert pod["containers"][0]["image"] == default("postgresImage")
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in pod["containers"] + pod["initContainers"])
    # psql checks the instance's certificate and name against the region's RDS CA bundle, fetched first
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-rds-ca", "fetch-master-secret"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"]) == ("verify-full", rds.CA_FILE)
    assert env["PGHOST"].endswith(".us-east-1.rds.amazonaws.com")
