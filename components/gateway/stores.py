"""What LiteLLM keeps state in: its database (in-cluster PostgreSQL or Amazon RDS, with the migrations) and the cache
its replicas share rate limits through (in-cluster Valkey or ElastiCache Serverless). Both are children of the
gateway; the managed ones live where ``placement`` says."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.aws.iam import PodIdentity
from components.config import GatewayConfig
from components.contracts.gateway import NAMESPACE
from components.gateway.cache import LitellmCache, LitellmCacheArgs
from components.gateway.database import LitellmDatabase, LitellmDatabaseArgs
from components.gateway.placement import ManagedPlacement
from components.gateway.rds import RdsPostgresArgs


def litellm_stores(
    name: str,
    cfg: GatewayConfig,
    *,
    cluster_name: pulumi.Input[str],
    region: str,
    placement: ManagedPlacement | None,
    identity: PodIdentity,
    service_account: tuple[str, k8s.core.v1.ServiceAccount],
    namespace: k8s.core.v1.Namespace,
    parent: pulumi.Resource,
) -> tuple[LitellmDatabase, LitellmCache]:
    """The database and the cache of the gateway ``parent`` (named ``<name>-db``, ``<name>-cache``). RDS logs LiteLLM
    in with its Pod Identity (``identity``), so its bootstrap waits for the association."""
    account, account_resource = service_account
    database = LitellmDatabase(
        f"{name}-db",
        LitellmDatabaseArgs(
            namespace=NAMESPACE,
            image=cfg.image,
            postgres_image=cfg.postgres_image,
            service_account=account,
            rds=RdsPostgresArgs(
                config=cfg.rds,
                namespace=NAMESPACE,
                cluster_name=cluster_name,
                region=region,
                placement=placement,
                litellm_role=identity.role,
                litellm_image=cfg.image,
                postgres_image=cfg.postgres_image,
                # LiteLLM's Pod Identity association: the migrations log in with its IAM token
                depends_on=(namespace, account_resource, identity),
            )
            if cfg.rds_database and cfg.rds is not None and placement is not None
            else None,
            depends_on=(namespace, account_resource),
        ),
        pulumi.ResourceOptions(parent=parent),
    )
    cache = LitellmCache(
        f"{name}-cache",
        LitellmCacheArgs(
            mode=cfg.cache,
            namespace=NAMESPACE,
            image=cfg.cache_image,
            tls=cfg.cache_tls,
            engine_version=cfg.cache_engine_version,
            placement=placement,
            depends_on=(namespace,),
        ),
        pulumi.ResourceOptions(parent=parent),
    )
    return database, cache
