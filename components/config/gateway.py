"""The LiteLLM gateway: Bedrock models, its database (in-cluster or RDS) and its rate-limit cache."""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.aws import bedrock
from components.config.reader import (
    Reader,
    check,
    parse_semver,
    unique,
)

# Regions where Amazon Bedrock runtime is offered (November 2026).
BEDROCK_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "us-gov-west-1",
        "us-gov-east-1",
        "ca-central-1",
        "ca-west-1",
        "sa-east-1",
        "mx-central-1",
        "eu-central-1",
        "eu-central-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ap-east-2",
        "me-central-1",
        "me-south-1",
        "il-central-1",
        "af-south-1",
    }
)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    model_id: str
    context_window: int | None  # tokens, input + output (what the agents budget their history with)
    max_output_tokens: int | None
    marketplace_product_id: str | None = (
        None  # AWS Marketplace product of a third-party model (components/aws/bedrock.py)
    )

    @classmethod
    def from_reader(cls, r: Reader) -> ModelConfig:
        r.reject_unknown(("name", "modelId", "contextWindow", "maxOutputTokens", "marketplaceProductId"))
        context = r.int("contextWindow", lo=1024, hi=10_000_000) if "contextWindow" in r.values else None
        output = r.int("maxOutputTokens", lo=1, hi=10_000_000) if "maxOutputTokens" in r.values else None
        model_id = r.matching("modelId", r"^[a-z0-9.:-]+$", "a Bedrock model id")
        product = (
            r.matching(
                "marketplaceProductId", r"^(prod(view)?-[a-z0-9]+|[0-9a-f-]{36})$", "an AWS Marketplace product ID"
            )
            if "marketplaceProductId" in r.values
            else bedrock.marketplace_product_id(model_id)
        )
        check(
            r.key("marketplaceProductId"),
            product is not None or not bedrock.on_marketplace(model_id),
            f"is needed for {model_id}: a third-party model is sold through AWS Marketplace and its first call "
            "subscribes the account (Bedrock model catalog: the model's product ID; docs/gateway.md)",
        )
        model = cls(r.str("name"), model_id, context, output, product if bedrock.on_marketplace(model_id) else None)
        check(
            r.key("maxOutputTokens"),
            output is None or context is None or output < context,
            f"{output} must be below contextWindow ({context}): the output shares the window with the input",
        )
        return model


LITELLM_DATABASES = ("in-cluster", "rds")
LITELLM_CACHES = ("in-cluster", "elasticache")


@dataclass(frozen=True)
class RdsConfig:
    """Amazon RDS for PostgreSQL behind LiteLLM (litellmDatabase: rds)."""

    engine_version: str
    instance_class: str
    storage_gib: int
    multi_az: bool
    backup_retention_days: int


@dataclass(frozen=True)
class GatewayConfig:
    chart_version: str
    replicas: int
    bedrock_region: str
    models: tuple[ModelConfig, ...]
    database: str  # LITELLM_DATABASES
    lb_controller_version: str
    curl_image: str
    image: str
    postgres_image: str
    tenant_gateway_image: str
    cache: str  # LITELLM_CACHES
    cache_image: str  # the in-cluster Valkey
    cache_tls: bool  # the in-cluster Valkey serves TLS only
    cache_engine_version: str  # ElastiCache Serverless Valkey major version
    rds: RdsConfig

    @property
    def rds_database(self) -> bool:
        return self.database == "rds"

    @property
    def elasticache(self) -> bool:
        return self.cache == "elasticache"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    @property
    def marketplace_product_ids(self) -> tuple[str, ...]:
        return tuple(sorted({m.marketplace_product_id for m in self.models if m.marketplace_product_id}))

    @classmethod
    def from_reader(cls, r: Reader) -> GatewayConfig:
        region = r.str("bedrockRegion")
        check(
            "bedrockRegion",
            region in BEDROCK_REGIONS,
            f"{region!r} is not a region where Amazon Bedrock is available",
        )
        models = r.objects("bedrockModels", ModelConfig.from_reader, default=[])
        check(
            "bedrockModels",
            len(models) > 0,
            "needs at least one model ({name, modelId}) for LiteLLM to serve",
        )
        unique("bedrockModels", [m.name for m in models], "model name")
        check(
            "litellmDatabaseUrl",
            "litellmDatabaseUrl" not in r.values,
            "is no longer read: the program provisions LiteLLM's database (litellmDatabase: in-cluster or rds); "
            "remove it with `pulumi config rm agent-platform:litellmDatabaseUrl`",
        )
        database = r.str("litellmDatabase")
        check(
            "litellmDatabase",
            database not in ("standalone", "external"),
            f"{database!r} was replaced: use 'in-cluster' (was standalone) or 'rds' (an Amazon RDS instance the "
            "program creates, instead of external + litellmDatabaseUrl)",
        )
        database = r.choice("litellmDatabase", LITELLM_DATABASES)
        cache = r.choice("litellmCache", LITELLM_CACHES)
        cache_version = r.str("litellmCacheEngineVersion")
        check(
            "litellmCacheEngineVersion", bool(re.match(r"^[0-9]+$", cache_version)), "must be a major version, e.g. 8"
        )
        rds_version = r.str("litellmRdsEngineVersion")
        check(
            "litellmRdsEngineVersion",
            bool(re.match(r"^[0-9]+$", rds_version)),
            f"{rds_version!r} must be a major version like 17: RDS upgrades the minor itself (docs/cloud.md)",
        )
        rds_class = r.matching(
            "litellmRdsInstanceClass", r"^db\.[a-z][a-z0-9-]*\.[a-z0-9-]+$", "an RDS instance class like db.t4g.medium"
        )
        rds = RdsConfig(
            engine_version=rds_version,
            instance_class=rds_class,
            storage_gib=r.int("litellmRdsStorageGiB", lo=20, hi=65536),
            multi_az=r.bool("litellmRdsMultiAz"),
            backup_retention_days=r.int("litellmRdsBackupRetentionDays", lo=1, hi=35),
        )
        for key in ("litellmChartVersion", "awsLoadBalancerControllerVersion"):
            parse_semver(key, r.str(key))
        curl_image = r.image("curlImage")
        return cls(
            chart_version=r.str("litellmChartVersion").lstrip("v"),
            replicas=r.int("litellmReplicas", lo=2, hi=20),
            bedrock_region=region,
            models=models,
            database=database,
            lb_controller_version=r.str("awsLoadBalancerControllerVersion").lstrip("v"),
            curl_image=curl_image,
            image=r.image("litellmImage"),
            postgres_image=r.image("postgresImage"),
            tenant_gateway_image=r.image("tenantGatewayImage"),
            cache=cache,
            cache_image=r.image("valkeyImage"),
            cache_tls=r.bool("litellmCacheTls"),
            cache_engine_version=cache_version,
            rds=rds,
        )
