"""The LiteLLM replicas' shared cache: one Valkey that holds the rate-limit counters of every replica.

Without it each replica counts a key's requests on its own, multiplying every tenant's rpm/tpm by the replica count.
In-cluster Valkey or ElastiCache Serverless. Details: docs/gateway.md#shared-rate-limits-litellmcache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.gateway_vpc import ManagedPlacement
from components.kube import in_cluster_store
from components.labels import CORE_NODE_SELECTOR
from components.podspec import container_security_context, pod_security_context, selecting

CACHE_SECRET = "litellm-cache"  # keys: password (LiteLLM), valkey.conf (the in-cluster server)
CACHE_PASSWORD_ENV = "LITELLM_CACHE_PASSWORD"  # not REDIS_*: LiteLLM reads those as a second, implicit config
VALKEY = "litellm-valkey"
VALKEY_PORT = 6379
VALKEY_UID = 999  # the valkey user of the official image
VALKEY_LABELS = {"app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": VALKEY}
ELASTICACHE_USER = "litellm"
# Everything LiteLLM's counters and locks need, nothing that reconfigures or reads the server's users.
ELASTICACHE_ACCESS = "on ~* &* +@all -@admin -@dangerous"


def password_env() -> dict[str, Any]:
    return {"name": CACHE_PASSWORD_ENV, "valueFrom": {"secretKeyRef": {"name": CACHE_SECRET, "key": "password"}}}


def coordination_redis(host: str, port: int, tls: bool, username: str | None = None) -> dict[str, Any]:
    """``general_settings.coordination_redis`` of the LiteLLM config; the password stays in the pod's env."""
    settings: dict[str, Any] = {"host": host, "port": port, "password": f"os.environ/{CACHE_PASSWORD_ENV}"}
    if username:
        settings["username"] = username
    if tls:
        settings["ssl"] = True
    return settings


def in_cluster_settings(namespace: str) -> dict[str, Any]:
    return coordination_redis(f"{VALKEY}.{namespace}.svc.cluster.local", VALKEY_PORT, tls=False)


def with_cache(values: dict[str, Any], settings: pulumi.Input[dict[str, Any]]) -> dict[str, Any]:
    """LiteLLM chart values plus the cache: its settings in the proxy config, its password in the env."""
    proxy_config = dict(values["proxy_config"])
    general = dict(proxy_config.get("general_settings") or {})
    general["coordination_redis"] = settings
    proxy_config["general_settings"] = general
    return {
        **values,
        "proxy_config": proxy_config,
        "extraEnvVars": [*values.get("extraEnvVars", []), password_env()],
    }


def valkey_conf(password: str) -> str:
    """A cache, not a store: no snapshots, no AOF, bounded memory, the oldest counters go first."""
    return "\n".join(
        [
            f"port {VALKEY_PORT}",
            "bind * -::*",
            "protected-mode yes",
            f'requirepass "{password}"',
            'save ""',
            "appendonly no",
            "maxmemory 200mb",
            "maxmemory-policy volatile-ttl",
            "",
        ]
    )


def valkey_deployment_spec(image: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "nodeSelector": dict(CORE_NODE_SELECTOR),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(VALKEY_UID, fs_group=VALKEY_UID),
        "containers": [
            {
                "name": "valkey",
                "image": image,
                "command": ["valkey-server", "/etc/valkey/valkey.conf"],
                "workingDir": "/data",  # the server's dir (nothing is persisted there)
                "ports": [{"name": "valkey", "containerPort": VALKEY_PORT}],
                "securityContext": container_security_context(VALKEY_UID, read_only_root=True),
                "readinessProbe": {"tcpSocket": {"port": "valkey"}, "periodSeconds": 5},
                "livenessProbe": {"tcpSocket": {"port": "valkey"}, "periodSeconds": 20},
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/valkey", "readOnly": True},
                    {"name": "data", "mountPath": "/data"},
                ],
            }
        ],
        "volumes": [
            {
                "name": "config",
                "secret": {
                    "secretName": CACHE_SECRET,
                    "items": [{"key": "valkey.conf", "path": "valkey.conf"}],
                },
            },
            {"name": "data", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    return {"replicas": 1, "strategy": {"type": "Recreate"}, **selecting(VALKEY_LABELS, pod)}


@dataclass(frozen=True)
class LitellmCacheArgs:
    mode: str  # "in-cluster" | "elasticache"
    namespace: str
    image: str = ""  # in-cluster Valkey
    engine_version: str = "8"  # ElastiCache
    placement: ManagedPlacement | None = None  # ElastiCache
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class LitellmCache(pulumi.ComponentResource):
    settings: pulumi.Output[dict[str, Any]]  # general_settings.coordination_redis
    ready: list[pulumi.Resource]  # LiteLLM waits for these

    def __init__(self, name: str, args: LitellmCacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:LitellmCache", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        password = pulumi.Output.secret(
            random.RandomPassword(
                f"{name}-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
            ).result
        )
        managed = args.mode == "elasticache"
        # LiteLLM reads the password; the in-cluster server reads its config file (with the password) too.
        data = {"password": password} if managed else {"password": password, "valkey.conf": password.apply(valkey_conf)}
        meta = {"name": CACHE_SECRET, "namespace": args.namespace}
        secret = k8s.core.v1.Secret(f"{name}-secret", metadata=meta, type="Opaque", string_data=data, opts=k8s_opts)
        if managed:
            cache = self._elasticache(name, args, password)
            endpoint = cache.endpoints[0]
            self.settings = pulumi.Output.all(endpoint.address, endpoint.port).apply(
                lambda v: coordination_redis(v[0], int(v[1]), tls=True, username=ELASTICACHE_USER)
            )
            self.ready = [secret, cache]
        else:
            self.settings = pulumi.Output.from_input(in_cluster_settings(args.namespace))
            store = {"name": VALKEY, "namespace": args.namespace, "labels": dict(VALKEY_LABELS)}
            spec = valkey_deployment_spec(args.image)
            service, deployment = in_cluster_store(
                k8s.apps.v1.Deployment, f"{name}-valkey", store, ("valkey", VALKEY_PORT), spec, secret, k8s_opts
            )
            self.ready = [secret, service, deployment]
        self.register_outputs({"secret": CACHE_SECRET})

    def _elasticache(
        self, name: str, args: LitellmCacheArgs, password: pulumi.Output[str]
    ) -> aws.elasticache.ServerlessCache:
        placement = args.placement
        if placement is None or not placement.subnet_ids:
            raise pulumi.RunError("agent-platform:litellmCache: elasticache needs the VPC, subnets and core node SG")
        aws_opts = pulumi.ResourceOptions(parent=self)
        group = placement.clients_only_group(
            name, VALKEY_PORT, "litellm-cache", "LiteLLM cache: Valkey from the core nodes only", self
        )
        user = aws.elasticache.User(
            f"{name}-user",
            user_id=f"{name}-litellm",
            user_name=ELASTICACHE_USER,
            engine="valkey",
            access_string=ELASTICACHE_ACCESS,
            authentication_mode={"type": "password", "passwords": [password]},
            opts=aws_opts,
        )
        # A Valkey user group needs no "default" user, so no client gets in without a password.
        user_group = aws.elasticache.UserGroup(
            f"{name}-users",
            user_group_id=f"{name}-litellm",
            engine="valkey",
            user_ids=[user.user_id],
            opts=aws_opts,
        )
        return aws.elasticache.ServerlessCache(
            f"{name}-valkey",
            name=f"{name}-litellm",
            engine="valkey",
            major_engine_version=args.engine_version,
            description="LiteLLM shared rate-limit counters",
            subnet_ids=list(placement.subnet_ids),
            security_group_ids=[group.id],
            user_group_id=user_group.user_group_id,
            opts=pulumi.ResourceOptions(parent=self, protect=placement.protect),
        )
