"""The LiteLLM database: an in-cluster PostgreSQL (official image) or Amazon RDS, and the schema migrations.

The migrations run as a Job of our own (not the chart's, whose pods share the proxies' labels) that the LiteLLM
release waits for, so every rollout starts on a migrated schema. Details: docs/gateway.md#database-litellmdatabase.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.contracts.cluster import STORAGE_CLASS
from components.contracts.gateway import MIGRATION_LABELS, POSTGRES_LABELS, POSTGRES_PORT
from components.contracts.gateway import POSTGRES as POSTGRES_SERVICE
from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway.rds import RdsPostgres, RdsPostgresArgs
from components.k8s.podspec import container_security_context, pod_security_context, selecting
from components.k8s.resources import in_cluster_store, run_to_completion_job

DATABASE_SECRET = "litellm-database"  # key "url": postgresql://...
POSTGRES = POSTGRES_SERVICE.name
POSTGRES_UID = 999  # the postgres user of the official image
POSTGRES_DB = "litellm"
POSTGRES_USER = "litellm"
POSTGRES_GIB = 20
MIGRATION_COMMAND = ["python", "litellm/proxy/prisma_migration.py"]  # what the chart's migration Job runs


def database_url_env() -> dict[str, Any]:
    return {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}}}


def postgres_spec(image: str) -> dict[str, Any]:
    """StatefulSet spec: one PostgreSQL on a gp3 volume, non-root, on core nodes."""
    pod: dict[str, Any] = {
        "nodeSelector": dict(CORE_NODE_SELECTOR),
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(POSTGRES_UID, fs_group=POSTGRES_UID),
        "containers": [
            {
                "name": "postgres",
                "image": image,
                "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                "env": [
                    {"name": "POSTGRES_DB", "value": POSTGRES_DB},
                    {"name": "POSTGRES_USER", "value": POSTGRES_USER},
                    {
                        "name": "POSTGRES_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "password"}},
                    },
                    # A subfolder: the volume's root holds lost+found, which initdb refuses.
                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                ],
                "securityContext": container_security_context(POSTGRES_UID, read_only_root=True),
                "readinessProbe": {
                    "exec": {"command": ["pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB]},
                    "periodSeconds": 10,
                },
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                    {"name": "run", "mountPath": "/var/run/postgresql"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    return {
        "serviceName": POSTGRES,
        "replicas": 1,
        **selecting(POSTGRES_LABELS, pod),
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": f"{POSTGRES_GIB}Gi"}},
                },
            }
        ],
    }


def migration_job_name(image: str) -> str:
    """A new name per image: Pulumi creates a new Job, which runs that image's migrations once."""
    return f"litellm-migrations-{hashlib.sha256(f'{image} {MIGRATION_COMMAND}'.encode()).hexdigest()[:8]}"


def migration_pod_spec(image: str, service_account: str, env: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "restartPolicy": "OnFailure",  # retried until the database accepts connections
        "nodeSelector": dict(CORE_NODE_SELECTOR),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "prisma-migrations",
                "image": image,
                "command": list(MIGRATION_COMMAND),
                "workingDir": "/app",
                "env": list(env) or [database_url_env()],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            }
        ],
    }


@dataclass(frozen=True)
class LitellmDatabaseArgs:
    namespace: str
    image: str  # the LiteLLM image, which carries the migrations
    postgres_image: str
    service_account: str
    rds: RdsPostgresArgs | None = None  # None deploys PostgreSQL in the cluster
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class LitellmDatabase(pulumi.ComponentResource):
    migrations: k8s.batch.v1.Job  # LiteLLM waits for it
    env: list[dict[str, Any]]  # the database env of the LiteLLM containers

    def __init__(self, name: str, args: LitellmDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:LitellmDatabase", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        secret_meta = {"name": DATABASE_SECRET, "namespace": args.namespace}
        ready: list[pulumi.Resource] = []
        self.env = [database_url_env()]
        if args.rds is not None:
            rds = RdsPostgres(f"{name}-rds", args.rds, pulumi.ResourceOptions(parent=self))
            self.env = rds.env
            ready.append(rds.bootstrap)
        else:
            password = pulumi.Output.secret(
                random.RandomPassword(
                    f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
                ).result
            )
            url = pulumi.Output.format(
                "postgresql://{0}:{1}@{2}.{3}.svc.cluster.local:{4}/{5}",
                POSTGRES_USER,
                password,
                POSTGRES,
                args.namespace,
                POSTGRES_PORT,
                POSTGRES_DB,
            )
            data = {"url": pulumi.Output.secret(url), "password": password}
            secret = k8s.core.v1.Secret(
                f"{name}-url", metadata=secret_meta, type="Opaque", string_data=data, opts=k8s_opts
            )
            spec = postgres_spec(args.postgres_image)
            _, database = in_cluster_store(
                k8s.apps.v1.StatefulSet, f"{name}-postgres", POSTGRES_SERVICE, spec, secret, k8s_opts
            )
            ready.extend([secret, database])
        self.migrations = run_to_completion_job(
            f"{name}-migrations",
            {"name": migration_job_name(args.image), "namespace": args.namespace, "labels": dict(MIGRATION_LABELS)},
            migration_pod_spec(args.image, args.service_account, self.env),
            backoff_limit=10,
            deadline_seconds=900,
            opts=pulumi.ResourceOptions.merge(
                k8s_opts,
                pulumi.ResourceOptions(
                    depends_on=ready, custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")
                ),
            ),
        )
        self.register_outputs({"secret": DATABASE_SECRET})
