"""Model gateway: LiteLLM (to Amazon Bedrock) on core nodes, with one LiteLLM virtual key per tenant.

Kata pods cannot reach ClusterIPs, so they call it through an internal cross-zone NLB, and the machine running Pulumi
never talks to LiteLLM (keys are registered by in-cluster Jobs). Details: docs/gateway.md#litellm-on-core-nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.aws.bedrock import bedrock_policy
from components.aws.iam import PodIdentity, account_policy
from components.config import GatewayConfig, ModelConfig, SelfHostedModel, TenantConfig
from components.contracts.labels import CORE_NODE_SELECTOR
from components.contracts.models import server_url
from components.contracts.namespaces import LITELLM_NAMESPACE
from components.contracts.ports import LITELLM_PORT
from components.gateway.cache import LitellmCache, LitellmCacheArgs, with_cache
from components.gateway.database import LitellmDatabase, LitellmDatabaseArgs, database_url_env
from components.gateway.keys import (
    KEY_JOB_BACKOFF_LIMIT,
    KEY_JOB_DEADLINE,
    KEY_JOB_PULUMI_TIMEOUT,
    key_job_name,
    key_job_pod_spec,
)
from components.gateway.placement import ManagedPlacement
from components.gateway.rds import RdsPostgresArgs
from components.gateway.tenant_gateway import LISTEN_PORT as TENANT_GATEWAY_PORT
from components.gateway.tenant_gateway import SELECTOR as TENANT_GATEWAY_SELECTOR
from components.gateway.tenant_gateway import TenantGateway, TenantGatewayArgs
from components.k8s.nlb import NLB_ANNOTATIONS, NLB_CLASS
from components.k8s.podspec import topology_spread
from components.k8s.resources import child_options, keep_one_available, platform_namespace, run_to_completion_job

NAMESPACE = LITELLM_NAMESPACE
RELEASE = "litellm"  # the chart's fullname is the release name when it contains "litellm"
SERVICE_ACCOUNT = "litellm"
PORT = LITELLM_PORT
NLB_SERVICE = "litellm-nlb"
MASTER_KEY_SECRET = "litellm-masterkey"
MASTER_KEY_KEY = "masterkey"
TENANT_KEYS_SECRET = "litellm-tenant-keys"
KEY_JOB_SERVICE_ACCOUNT = "litellm-key-registrar"
KEY_JOB_SELECTOR = {"app.kubernetes.io/name": "litellm-key-registrar"}  # the key Jobs' pods
SELECTOR = {"app.kubernetes.io/name": "litellm", "app.kubernetes.io/instance": RELEASE}
CLUSTER_URL = f"http://{RELEASE}.{NAMESPACE}.svc.cluster.local:{PORT}"  # core pods only, never Kata pods
LITELLM_CHART = "oci://ghcr.io/berriai/litellm-helm"
POD_IDENTITY_TYPE = "agent-platform:gateway:PodIdentity"  # the deployed token of the gateway's identities


# LiteLLM's pod: non-root with a read-only root. The litellm-database image runs as root by default (no USER) and
# works for any uid since 1.90.6 (release notes: Prisma's CLI and engines baked at /opt/prisma, readable by every
# uid; before, a non-root uid crashed resolving the query engine under /root). What it writes at start: temp files
# (/tmp), caches under $HOME (HOME=/tmp here; the chart also mounts /.cache and /.npm with a read-only root), and the
# admin UI, which it copies and restructures into LITELLM_UI_PATH (else it falls back to the packaged read-only copy
# and extensionless /ui routes break). Migrations (prisma migrate) run in their own Job (components/gateway/database.py),
# never in this pod (DISABLE_SCHEMA_UPDATE). 65534 is the "nobody" of the Wolfi base, the uid of LiteLLM's own
# non_root image.
LITELLM_UID = 65534
LITELLM_UI_DIR = "/var/lib/litellm/ui"


# ----------------------------------------------------------------------------------------------
# Chart values


def model_list(cfg: GatewayConfig, self_hosted: Sequence[SelfHostedModel] = ()) -> list[dict[str, Any]]:
    bedrock = [
        {
            "model_name": m.name,
            "litellm_params": {"model": f"bedrock/{m.model_id}", "aws_region_name": cfg.bedrock_region},
            **model_info(m),
        }
        for m in cfg.models
    ]
    return [*bedrock, *(self_hosted_route(m) for m in self_hosted)]


def self_hosted_route(m: SelfHostedModel) -> dict[str, Any]:
    """A vLLM server as a LiteLLM route: the ``hosted_vllm`` provider (OpenAI-compatible; LiteLLM sends its fake key,
    vLLM asks for none) at the model's Service, with the per-token prices LiteLLM charges spend and budgets with
    (litellm_params fields, docs.litellm.ai/docs/proxy/custom_pricing; without them a self-hosted model costs
    nothing). Tenants call it by its name, like a Bedrock model."""
    return {
        "model_name": m.name,
        "litellm_params": {
            "model": f"hosted_vllm/{m.name}",
            "api_base": server_url(m.name),
            "input_cost_per_token": m.input_cost_per_token,
            "output_cost_per_token": m.output_cost_per_token,
        },
        "model_info": {"max_input_tokens": m.max_model_len},
    }


def model_info(m: ModelConfig) -> dict[str, Any]:
    """LiteLLM's ``model_info`` limits (what /model/info reports), when bedrockModels sets them."""
    info: dict[str, int] = {}
    if m.context_window is not None:
        info["max_input_tokens"] = m.context_window
    if m.max_output_tokens is not None:
        info["max_output_tokens"] = m.max_output_tokens
        info["max_tokens"] = m.max_output_tokens  # LiteLLM's older name for the output limit
    return {"model_info": info} if info else {}


def litellm_values(
    cfg: GatewayConfig, database_env: Sequence[dict[str, Any]] = (), self_hosted: Sequence[SelfHostedModel] = ()
) -> dict[str, Any]:
    """Only what differs from the chart's defaults (the offline render checks that every key has an effect)."""
    repository, _, tag = cfg.image.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag},
        "replicaCount": cfg.replicas,
        "serviceAccount": {"name": SERVICE_ACCOUNT},
        "masterkeySecretName": MASTER_KEY_SECRET,  # key MASTER_KEY_KEY, the chart's default key name
        "nodeSelector": dict(CORE_NODE_SELECTOR),
        "topologySpreadConstraints": topology_spread(SELECTOR),
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": LITELLM_UID,
            "runAsGroup": LITELLM_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # readOnlyRootFilesystem also makes the chart mount emptyDirs at /tmp, /.cache and /.npm.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumes": [{"name": "ui", "emptyDir": {"sizeLimit": "256Mi"}}],
        "volumeMounts": [{"name": "ui", "mountPath": LITELLM_UI_DIR}],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "proxy_config": {
            "model_list": model_list(cfg, self_hosted),
            "litellm_settings": {
                "callbacks": ["prometheus"],
                # /metrics is on the same port as the NLB: keep tenants from reading each other's spend.
                "require_auth_for_metrics_endpoint": True,
                "prometheus_initialize_budget_metrics": True,
            },
        },
        # The database (in-cluster or external) and its migrations: components/gateway/database.py.
        "db": {"deployStandalone": False},
        "migrationJob": {"enabled": False},
        "envVars": {"DISABLE_SCHEMA_UPDATE": "true", "HOME": "/tmp", "LITELLM_UI_PATH": LITELLM_UI_DIR},
        "extraEnvVars": list(database_env) or [database_url_env()],
    }


# ----------------------------------------------------------------------------------------------
# Component


MASTER_KEY_LENGTH = 64  # random characters after the sk- prefix LiteLLM requires


def generated_key(name: str, length: int, parent: pulumi.Resource) -> pulumi.Output[str]:
    """``sk-`` + ``length`` random letters and digits (about 6 bits each), as a Pulumi secret."""
    password = random.RandomPassword(name, length=length, special=False, opts=pulumi.ResourceOptions(parent=parent))
    return pulumi.Output.secret(password.result.apply(lambda value: f"sk-{value}"))


@dataclass(frozen=True)
class GatewayArgs:
    config: GatewayConfig
    tenants: tuple[TenantConfig, ...]
    tenant_models: Mapping[str, tuple[str, ...]]  # tenant -> the models its team and key may call
    cluster_name: pulumi.Input[str]
    region: str  # the cluster's region (the LB controller's); Bedrock's is config.bedrock_region
    vpc_cidr: str = ""  # NLB source range; empty leaves the controller's default
    placement: ManagedPlacement | None = None  # the managed database and cache (prod)
    self_hosted: tuple[SelfHostedModel, ...] = ()  # vLLM servers (components/models/): hosted_vllm routes
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # e.g. the core node group
    lb_controller: Sequence[pulumi.Resource] = ()  # its webhook must admit the NLB Service


class Gateway(pulumi.ComponentResource):
    url: pulumi.Output[str]
    hostname: pulumi.Output[str]
    tenant_keys: dict[str, pulumi.Output[str]]  # secret
    key_jobs: dict[str, k8s.batch.v1.Job]  # tenant -> the Job that registered its key (tenant pods wait for it)
    release: k8s.helm.v3.Release
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:Gateway", name, None, opts)
        cfg = args.config
        placement = args.placement
        if (cfg.rds_database or cfg.elasticache) and (placement is None or not placement.subnet_ids):
            raise pulumi.RunError("agent-platform:litellmDatabase: rds and elasticache need the subnets and core SG")

        k8s_opts = child_options(self)

        ns = platform_namespace(
            name, NAMESPACE, {"enforce": "baseline", "warn": "restricted"}, k8s_opts(*args.depends_on)
        )
        self.namespace = ns

        # --- identity: Bedrock through Pod Identity, only the configured models
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
            opts=k8s_opts(ns),
        )
        model_ids = [m.model_id for m in cfg.models]
        policy = account_policy(
            self,
            lambda partition, account: bedrock_policy(
                model_ids, cfg.bedrock_region, account, partition, cfg.marketplace_product_ids
            ),
        )
        bedrock_identity = PodIdentity(
            f"{name}-bedrock",
            cluster_name=args.cluster_name,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
            type_token=POD_IDENTITY_TYPE,
        )

        # --- secrets the chart references. The master key is generated here, never chosen by hand.
        master_key = k8s.core.v1.Secret(
            f"{name}-master-key",
            metadata={"name": MASTER_KEY_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={MASTER_KEY_KEY: generated_key(f"{name}-master-key-value", MASTER_KEY_LENGTH, self)},
            opts=pulumi.ResourceOptions.merge(
                k8s_opts(ns), pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            ),
        )
        database = LitellmDatabase(
            f"{name}-db",
            LitellmDatabaseArgs(
                namespace=NAMESPACE,
                image=cfg.image,
                postgres_image=cfg.postgres_image,
                service_account=SERVICE_ACCOUNT,
                rds=RdsPostgresArgs(
                    config=cfg.rds,
                    namespace=NAMESPACE,
                    cluster_name=args.cluster_name,
                    region=args.region,
                    placement=placement,
                    litellm_role=bedrock_identity.role,
                    litellm_image=cfg.image,
                    postgres_image=cfg.postgres_image,
                    # LiteLLM's Pod Identity association: the migrations log in with its IAM token
                    depends_on=(ns, service_account, bedrock_identity),
                )
                if cfg.rds_database and cfg.rds is not None and placement is not None
                else None,
                depends_on=(ns, service_account),
            ),
            pulumi.ResourceOptions(parent=self),
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
                depends_on=(ns,),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-litellm",
            name=RELEASE,
            namespace=NAMESPACE,
            chart=LITELLM_CHART,
            version=cfg.chart_version,
            values=with_cache(litellm_values(cfg, database.env, args.self_hosted), cache.settings, ca=cache.ca),
            timeout=900,
            opts=k8s_opts(ns, service_account, master_key, database.migrations, bedrock_identity, *cache.ready),
        )
        keep_one_available(f"{name}-pdb", {"name": RELEASE, "namespace": NAMESPACE}, SELECTOR, k8s_opts(ns))

        # --- the internal NLB Kata pods use (they cannot reach the ClusterIP Service). It targets the tenant
        # gateway (nginx, inference routes only), never LiteLLM itself: components/gateway/tenant_gateway.py.
        self.tenant_gateway = TenantGateway(
            f"{name}-tenant-gateway",
            TenantGatewayArgs(
                namespace=NAMESPACE,
                image=cfg.tenant_gateway_image,
                replicas=cfg.replicas,
                upstream=f"{RELEASE}.{NAMESPACE}.svc.cluster.local:{PORT}",
                depends_on=(ns, self.release),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        nlb_spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "loadBalancerClass": NLB_CLASS,
            "selector": dict(TENANT_GATEWAY_SELECTOR),
            "ports": [{"name": "http", "port": PORT, "targetPort": TENANT_GATEWAY_PORT, "protocol": "TCP"}],
        }
        if args.vpc_cidr:
            nlb_spec["loadBalancerSourceRanges"] = [args.vpc_cidr]
        nlb = k8s.core.v1.Service(
            f"{name}-nlb",
            metadata={
                "name": NLB_SERVICE,
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/part-of": "agent-platform"},
                "annotations": dict(NLB_ANNOTATIONS),
            },
            spec=nlb_spec,
            # The controller's webhook must be up before a LoadBalancer Service is admitted.
            opts=k8s_opts(ns, *args.lb_controller),
        )
        self.hostname = nlb.status.apply(lambda status: status.load_balancer.ingress[0].hostname)
        self.url = self.hostname.apply(lambda host: f"http://{host}:{PORT}")

        # --- tenant virtual keys: generated here, registered in LiteLLM by in-cluster Jobs
        passwords: dict[str, random.RandomPassword] = {}
        self.tenant_keys = {}
        self.key_jobs = {}
        for tenant in args.tenants:
            passwords[tenant.name] = random.RandomPassword(
                f"{name}-key-{tenant.name}", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            self.tenant_keys[tenant.name] = pulumi.Output.secret(
                passwords[tenant.name].result.apply(lambda value: f"sk-{value}")
            )
        if args.tenants:
            self._key_jobs(name, args, ns, passwords, [self.release, master_key])

        self.register_outputs({"url": self.url, "hostname": self.hostname})

    def _key_jobs(
        self,
        name: str,
        args: GatewayArgs,
        ns: k8s.core.v1.Namespace,
        passwords: dict[str, random.RandomPassword],
        after: list[pulumi.Resource],
    ) -> None:
        opts = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        keys = k8s.core.v1.Secret(
            f"{name}-tenant-keys",
            metadata={"name": TENANT_KEYS_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={tenant: key for tenant, key in self.tenant_keys.items()},
            opts=opts,
        )
        registrar = k8s.core.v1.ServiceAccount(
            f"{name}-key-registrar",
            metadata={"name": KEY_JOB_SERVICE_ACCOUNT, "namespace": NAMESPACE},
            automount_service_account_token=False,
            opts=opts,
        )
        for tenant in args.tenants:
            models = args.tenant_models[tenant.name]
            job_name = key_job_name(tenant, args.config.curl_image, models)
            labels = {**KEY_JOB_SELECTOR, "agent-platform.io/tenant": tenant.name}
            self.key_jobs[tenant.name] = run_to_completion_job(
                f"{name}-key-job-{tenant.name}",
                {"name": job_name, "namespace": NAMESPACE, "labels": labels},
                key_job_pod_spec(
                    tenant,
                    args.config.curl_image,
                    models=models,
                    service_account=KEY_JOB_SERVICE_ACCOUNT,
                    litellm_url=CLUSTER_URL,
                    master_key_secret=(MASTER_KEY_SECRET, MASTER_KEY_KEY),
                    tenant_keys_secret=TENANT_KEYS_SECRET,
                ),
                backoff_limit=KEY_JOB_BACKOFF_LIMIT,
                deadline_seconds=KEY_JOB_DEADLINE,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[keys, registrar, *after],
                    # a rotated key (replaced RandomPassword) must be registered again
                    replace_with=[passwords[tenant.name]],
                    # longer than the Job's activeDeadlineSeconds (gateway_keys.py states the budget)
                    custom_timeouts=pulumi.CustomTimeouts(create=KEY_JOB_PULUMI_TIMEOUT, update=KEY_JOB_PULUMI_TIMEOUT),
                ),
            )
