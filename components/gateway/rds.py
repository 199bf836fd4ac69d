"""LiteLLM's database on Amazon RDS for PostgreSQL (litellmDatabase: rds), without a password anywhere in the cluster.

LiteLLM logs in with IAM tokens; the RDS-managed master password rotates, so nothing copies it, and only the
bootstrap Job reads it once. Details: docs/gateway.md#database-litellmdatabase.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.iam import account_policy, pod_identity_role
from components.config import RdsConfig
from components.contracts.gateway import RDS_BOOTSTRAP_LABELS
from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway.placement import ManagedPlacement
from components.k8s.podspec import container_security_context, plain_env, pod_security_context
from components.k8s.resources import run_to_completion_job

DB_NAME = "litellm"
DB_USER = "litellm"  # IAM-authenticated: the only user LiteLLM knows
MASTER_USER = "litellm_admin"
PORT = 5432
BOOTSTRAP_SERVICE_ACCOUNT = "litellm-db-bootstrap"
SECRETS_DIR = "/run/pg"
CA_FILE = f"{SECRETS_DIR}/rds-ca.pem"  # the region's RDS CA bundle, fetched by the Job's first step
# AWS publishes the CA bundles by region, over HTTPS only (RDS User Guide, "Using SSL/TLS to encrypt a connection to
# a DB instance or cluster", Certificate bundles by AWS Region). The commercial partition's address.
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
BOOTSTRAP_UID = 999  # postgres in the PostgreSQL image; the same uid reads the 0600 password file

# Writes a libpq password file (https://www.postgresql.org/docs/current/libpq-pgpass.html: ':' and '\\' escaped)
# and the user name into $SECRETS_DIR (a memory-backed emptyDir); never prints the secret.
FETCH_SECRET_SCRIPT = r"""
import json, os, boto3
secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["SECRET_ARN"])["SecretString"])
esc = lambda v: v.replace("\\", "\\\\").replace(":", "\\:")
fd = os.open(os.path.join(os.environ["SECRETS_DIR"], "pgpass"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(f"*:*:*:{esc(secret['username'])}:{esc(secret['password'])}\n")
with open(os.path.join(os.environ["SECRETS_DIR"], "user"), "w") as f:
    f.write(secret["username"])
print("master secret fetched")
"""

# Downloads the region's RDS CA bundle over HTTPS (the image's CA store authenticates AWS's truststore) into
# $CA_FILE; psql then checks the server's certificate and name against it (sslmode=verify-full).
FETCH_CA_SCRIPT = r"""
import os, urllib.request
with urllib.request.urlopen(os.environ["CA_BUNDLE_URL"], timeout=30) as response:
    bundle = response.read().decode()
if "-----BEGIN CERTIFICATE-----" not in bundle:
    raise SystemExit("no certificate in " + os.environ["CA_BUNDLE_URL"])
with open(os.environ["CA_FILE"], "w") as f:
    f.write(bundle)
print("RDS CA bundle fetched:", bundle.count("-----BEGIN CERTIFICATE-----"), "certificates")
"""

# Idempotent: the role, IAM login for it, and the database handed over (PostgreSQL 15+: its public schema
# belongs to the database owner). Membership in the role is what lets the master user change the owner.
# Names come in as psql variables and are quoted with %I; \gexec runs each generated statement.
BOOTSTRAP_SQL = r"""\set ON_ERROR_STOP on
SELECT format('CREATE ROLE %I LOGIN', :'db_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db_user') \gexec
SELECT format('GRANT rds_iam TO %I', :'db_user') \gexec
SELECT format('GRANT %I TO CURRENT_USER', :'db_user') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db_name', :'db_user') \gexec
"""

BOOTSTRAP_SCRIPT = """set -eu
export PGUSER="$(cat "$SECRETS_DIR/user")" PGPASSFILE="$SECRETS_DIR/pgpass" PGDATABASE=postgres
printf '%s' "$BOOTSTRAP_SQL" | psql -X -q -v db_user="$DB_USER" -v db_name="$DB_NAME"
echo "database user $DB_USER owns $DB_NAME (IAM authentication)"
"""


def iam_env(host: pulumi.Input[str], region: str) -> list[dict[str, Any]]:
    """What LiteLLM (proxy and migrations) needs to log in with an IAM token instead of a password."""
    return [
        {"name": "IAM_TOKEN_DB_AUTH", "value": "true"},
        {"name": "DATABASE_HOST", "value": host},
        {"name": "DATABASE_PORT", "value": str(PORT)},
        {"name": "DATABASE_USER", "value": DB_USER},
        {"name": "DATABASE_NAME", "value": DB_NAME},
        {"name": "AWS_REGION", "value": region},  # the token is signed for the database's region
    ]


def connect_policy(region: str, account_id: str, resource_id: str, partition: str = "aws") -> str:
    statement = {
        "Sid": "ConnectAsLitellm",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": f"arn:{partition}:rds-db:{region}:{account_id}:dbuser:{resource_id}/{DB_USER}",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def secret_read_policy(secret_arn: str) -> str:
    statement = {
        "Sid": "ReadMasterSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret_arn,
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def bootstrap_pod_spec(
    litellm_image: str, postgres_image: str, region: str, host: Any, secret_arn: Any
) -> dict[str, Any]:
    def step(name: str, image: str, command: list[str], env: dict[str, Any]) -> dict[str, Any]:
        """One step of the bootstrap: both share the user, the limits and the in-memory secrets directory."""
        return {
            "name": name,
            "image": image,
            "command": command,
            "env": plain_env(env),
            "securityContext": container_security_context(BOOTSTRAP_UID, read_only_root=True),
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "volumeMounts": [{"name": "run", "mountPath": SECRETS_DIR}],
        }

    fetch = {"SECRET_ARN": secret_arn, "AWS_REGION": region, "SECRETS_DIR": SECRETS_DIR}
    ca = {"CA_BUNDLE_URL": CA_BUNDLE_URL.format(region=region), "CA_FILE": CA_FILE}
    create = {
        "PGHOST": host,
        "PGPORT": str(PORT),
        "PGSSLMODE": "verify-full",  # the instance's certificate, signed by RDS's CA, for this host name
        "PGSSLROOTCERT": CA_FILE,
        "DB_USER": DB_USER,
        "DB_NAME": DB_NAME,
        "SECRETS_DIR": SECRETS_DIR,
        "BOOTSTRAP_SQL": BOOTSTRAP_SQL,
    }
    return {
        "serviceAccountName": BOOTSTRAP_SERVICE_ACCOUNT,
        "restartPolicy": "OnFailure",  # retried while the instance is still coming up
        "nodeSelector": dict(CORE_NODE_SELECTOR),
        "securityContext": pod_security_context(BOOTSTRAP_UID),
        "initContainers": [
            step("fetch-rds-ca", litellm_image, ["python", "-c", FETCH_CA_SCRIPT], ca),
            step("fetch-master-secret", litellm_image, ["python", "-c", FETCH_SECRET_SCRIPT], fetch),
        ],
        "containers": [step("create-iam-user", postgres_image, ["/bin/sh", "-c", BOOTSTRAP_SCRIPT], create)],
        "volumes": [{"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    }


@dataclass(frozen=True)
class RdsPostgresArgs:
    config: RdsConfig
    namespace: str
    cluster_name: pulumi.Input[str]
    region: str
    placement: ManagedPlacement
    litellm_role: aws.iam.Role  # LiteLLM's Pod Identity role: gets rds-db:connect
    litellm_image: str
    postgres_image: str
    depends_on: Sequence[pulumi.Resource] = ()


class RdsPostgres(pulumi.ComponentResource):
    env: list[dict[str, Any]]  # LiteLLM containers' database env
    bootstrap: k8s.batch.v1.Job  # migrations wait for it
    instance: aws.rds.Instance

    def __init__(self, name: str, args: RdsPostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:RdsPostgres", name, None, opts)
        cfg, placement = args.config, args.placement
        protect = placement.protect
        aws_opts = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=list(placement.subnet_ids), opts=aws_opts)
        group = placement.clients_only_group(
            name, PORT, "litellm-db", "LiteLLM database: PostgreSQL from the core nodes only", self
        )
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=cfg.engine_version,
            instance_class=cfg.instance_class,
            allocated_storage=cfg.storage_gib,
            max_allocated_storage=cfg.storage_gib * 4,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=DB_NAME,
            username=MASTER_USER,
            manage_master_user_password=True,
            iam_database_authentication_enabled=True,
            multi_az=cfg.multi_az,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[group.id],
            publicly_accessible=False,
            backup_retention_period=cfg.backup_retention_days,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            deletion_protection=protect,
            skip_final_snapshot=not protect,
            final_snapshot_identifier=f"{name}-litellm-final" if protect else None,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        secret_arn = self.instance.master_user_secrets.apply(lambda s: s[0].secret_arn)
        connect = aws.iam.RolePolicy(
            f"{name}-connect",
            role=args.litellm_role.id,
            policy=account_policy(
                self,
                lambda partition, account, db: connect_policy(args.region, account, db, partition),
                self.instance.resource_id,
            ),
            opts=aws_opts,
        )
        # Pod Identity injects credentials when the pod is created: the Job waits for the association itself.
        reader = pod_identity_role(
            f"{name}-bootstrap",
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=BOOTSTRAP_SERVICE_ACCOUNT,
            policy=secret_arn.apply(secret_read_policy),
            parent=self,
            policy_aliases=[pulumi.Alias(parent=self)],  # its deployed URN: the policy was this component's child
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        account = k8s.core.v1.ServiceAccount(
            f"{name}-bootstrap-sa",
            metadata={"name": BOOTSTRAP_SERVICE_ACCOUNT, "namespace": args.namespace},
            automount_service_account_token=False,
            opts=k8s_opts,
        )
        self.bootstrap = run_to_completion_job(
            f"{name}-bootstrap",
            {"name": "litellm-db-bootstrap", "namespace": args.namespace, "labels": dict(RDS_BOOTSTRAP_LABELS)},
            bootstrap_pod_spec(args.litellm_image, args.postgres_image, args.region, self.instance.address, secret_arn),
            backoff_limit=10,
            deadline_seconds=900,
            opts=pulumi.ResourceOptions.merge(
                k8s_opts,
                pulumi.ResourceOptions(
                    depends_on=[account, self.instance, *reader.ready, connect],
                    # activeDeadlineSeconds (900 s) bounds every retry; Pulumi waits longer than that.
                    custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m"),
                ),
            ),
        )
        self.env = iam_env(self.instance.address, args.region)
        # engine_version is the major: RDS upgrades minors in place, and this is the one it runs.
        self.register_outputs(
            {
                "address": self.instance.address,
                "masterSecretArn": secret_arn,
                "engineVersion": self.instance.engine_version_actual,
            }
        )
