"""Tenants and their agents: one namespace per tenant, one Deployment (and optionally a warm pool) per agent.

A tenant gets a Namespace (sandbox label, Pod Security admission), a ResourceQuota and LimitRange, a
NetworkPolicy that denies all ingress and allows only the egress sandboxes need, and a ServiceAccount
without token. Each agent gets a Secret (LiteLLM virtual key, generated API/gateway token, bot tokens), a
ConfigMap with its config files, an optional gp3 PVC and a Deployment whose pod template comes from
components/podspec.py. Agents with ``warmPool > 0`` also get a SandboxTemplate and a SandboxWarmPool
(components/sandbox.py) built from the same pod template.

Agent types (image facts, config files, entrypoints) live in components/agent_types.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.agent_types import (  # noqa: F401 (AgentFiles, hermes_files, openclaw_files: re-exported)
    AGENT_TYPES,
    LITELLM_KEY_ENV,
    SEED_PATH,
    AgentFiles,
    AgentType,
    hermes_files,
    openclaw_files,
)
from components.config import (
    ImagesConfig,
    KataConfig,
    NetworkConfig,
    PlatformConfig,
    TenantConfig,
)
from components.labels import SANDBOX_LABEL, STORAGE_CLASS
from components.podspec import (
    OPEN_EGRESS,
    Container,
    SandboxEgress,
    SandboxPod,
    sandbox_egress_rules,
    sandbox_pod_template,
    secret_env,
    selector_labels,
    volume_mount,
)
from components.sandbox import sandbox_template, warm_pool

SERVICE_ACCOUNT = "sandbox"
PROXY_SECRET = "egress-proxy"  # per tenant: the proxy URL with the tenant's credentials, and NO_PROXY
# Both spellings: Python (httpx, requests, aiohttp with trust_env), curl and pip read either; Node's
# NODE_USE_ENV_PROXY and undici's EnvHttpProxyAgent read both too.
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
PSA_LABELS = {
    # Enforce restricted: the sandbox pod template meets it (non-root, no escalation, every capability
    # dropped, seccomp RuntimeDefault, only emptyDir/configMap/PVC volumes; tests/test_admission.py checks
    # every rendered template), so a pod that kubectl or a controller creates must too.
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/audit-version": "latest",
}


def agent_image(images: ImagesConfig, agent_type: str) -> str:
    """The configured image. checkov CKV_K8S_43 asks for a digest: the stack config may give one
    (``repo:tag@sha256:...``); the defaults pin release tags."""
    return {"hermes": images.hermes, "openclaw": images.openclaw}[agent_type]


def agent_pod_template(
    *,
    tenant: TenantConfig,
    agent_name: str,
    image: str,
    network: NetworkConfig,
    workload: str,
    data: str,
    secret_names: Sequence[str],
    proxy_secret: str | None = None,
) -> dict[str, Any]:
    """The pod template of one agent. ``data`` is "pvc", "emptyDir" or "claimTemplate" (the agent-sandbox
    controller adds a volume named "data" from the SandboxTemplate's volumeClaimTemplates itself).
    ``proxy_secret`` names the tenant's egress proxy Secret (allowlist mode)."""
    agent = next(a for a in tenant.agents if a.name == agent_name)
    kind = AGENT_TYPES[agent.type]
    volumes: list[dict[str, Any]] = [
        {"name": "seed", "configMap": {"name": f"{agent.name}-config", "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"sizeLimit": kind.tmp_size, **({"medium": "Memory"} if kind.tmp_medium else {})}},
    ]
    if data == "pvc":
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{agent.name}-data"}})
    elif data == "emptyDir":
        volumes.append({"name": "data", "emptyDir": {}})
    elif data != "claimTemplate":
        raise ValueError(f"data must be pvc, emptyDir or claimTemplate, got {data!r}")
    # Secrets arrive as environment variables (checkov CKV_K8S_35 prefers files): both agents read their
    # LiteLLM key, token and bot tokens from the environment (${VAR} in their config files).
    container = Container(
        name=agent.type,
        image=image,
        command=("/bin/sh", "-c", kind.entrypoint),
        env=(
            *kind.env(agent.memory),
            *secret_env(secret_names, f"{agent.name}-secrets"),
            *(proxy_env(proxy_secret) if proxy_secret else ()),
        ),
        ports=kind.ports,
        volume_mounts=(
            volume_mount("data", kind.data_path),
            volume_mount("seed", SEED_PATH, read_only=True),
            volume_mount("tmp", "/tmp"),
        ),
        startup_probe=kind.probes["startupProbe"],
        readiness_probe=kind.probes["readinessProbe"],
        liveness_probe=kind.probes["livenessProbe"],
        working_dir=kind.data_path,
    )
    pod = SandboxPod(
        tenant=tenant.name,
        namespace=tenant.namespace,
        app=agent.type,
        agent=agent.name,
        workload=workload,
        runtime_class=agent.runtime_class,
        uid=kind.uid,
        cpu=agent.cpu,
        memory=agent.memory,
        service_account=SERVICE_ACCOUNT,
        container=container,
        volumes=tuple(volumes),
        vm_cpus=agent.vm_cpus,
        vm_memory_mib=agent.vm_memory_mib,
        dedicated_nodes=tenant.dedicated_nodes,
    )
    return sandbox_pod_template(pod, network)


def proxy_env(secret: str) -> list[dict[str, Any]]:
    """The egress proxy settings, from the tenant's Secret (the URL carries the tenant's proxy password).
    NODE_USE_ENV_PROXY=1 makes Node >= 24 (OpenClaw, and any npx tool an agent runs) honour them in
    node:http/https and fetch; Python's httpx/requests/aiohttp(trust_env) read them natively."""
    return [*secret_env(PROXY_ENV, secret), {"name": "NODE_USE_ENV_PROXY", "value": "1"}]


def proxy_secret_data(proxy_url: str, litellm_url: str) -> dict[str, str]:
    """HTTPS_PROXY/HTTP_PROXY/NO_PROXY (both spellings) for one tenant: everything goes through the proxy
    except loopback and the LiteLLM NLB, which the NetworkPolicy lets the pods reach directly."""
    host = urlsplit(litellm_url).hostname or ""
    bypass = ",".join(dict.fromkeys(("localhost", "127.0.0.1", "::1", *([host] if host else []))))
    values = {"HTTPS_PROXY": proxy_url, "HTTP_PROXY": proxy_url, "NO_PROXY": bypass}
    return {**values, **{k.lower(): v for k, v in values.items()}}


# ---------------------------------------------------------------------------------------------------
# Tenant component

LITELLM_KEY_HASH_ANNOTATION = "agent-platform.io/litellm-key-sha256"


def litellm_key_hash(key: str) -> str:
    """First 16 hex digits of the key's SHA-256: changes with the key, reveals nothing usable about it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TenantArgs:
    config: TenantConfig
    network: NetworkConfig
    kata: KataConfig
    images: ImagesConfig
    litellm_url: pulumi.Input[str]  # http://<internal NLB>:4000
    litellm_key: pulumi.Input[str]  # the tenant's LiteLLM virtual key (secret)
    models: tuple[str, ...]  # LiteLLM model names, first is the agents' default
    model_limits: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)  # see AgentFiles
    # tenantSecrets.<tenant> as {agent: {ENV: value}} (secret); every agent.secretEnv key must be there.
    secrets: pulumi.Input[Mapping[str, Mapping[str, str]]] | None = None
    # The agent-sandbox install (CRDs + controller), required when an agent has a warm pool.
    sandbox_controller: pulumi.Resource | None = None
    depends_on: tuple[pulumi.Resource, ...] = ()  # e.g. the RuntimeClasses
    egress: SandboxEgress = OPEN_EGRESS  # allowlist mode needs proxy_url
    proxy_url: pulumi.Input[str] | None = None  # http://<tenant>:<password>@<proxy NLB>:3128 (secret)

    @classmethod
    def for_tenant(
        cls,
        tenant: TenantConfig,
        platform: PlatformConfig,
        *,
        litellm_url: pulumi.Input[str],
        litellm_key: pulumi.Input[str],
        secrets: pulumi.Input[Mapping[str, Mapping[str, str]]] | None = None,
        sandbox_controller: pulumi.Resource | None = None,
        depends_on: tuple[pulumi.Resource, ...] = (),
        proxy_url: pulumi.Input[str] | None = None,
    ) -> TenantArgs:
        """Args for one of the platform's tenants; its models default to every gateway model, its egress
        follows the stack's egressMode and its own cidrs."""
        return cls(
            tenant,
            network=platform.network,
            kata=platform.kata,
            images=platform.images,
            litellm_url=litellm_url,
            litellm_key=litellm_key,
            models=tenant.litellm.models or platform.gateway.model_names,
            model_limits={m.name: (m.context_window, m.max_output_tokens) for m in platform.gateway.models},
            secrets=secrets,
            sandbox_controller=sandbox_controller,
            depends_on=depends_on,
            egress=SandboxEgress(allowlist=platform.egress.allowlist, cidrs=tenant.egress_cidrs),
            proxy_url=proxy_url,
        )


class Tenant(pulumi.ComponentResource):
    namespace: str
    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:agents:Tenant", name, None, opts)
        cfg = args.config
        if not args.models:
            raise ValueError(f"tenant {cfg.name}: no LiteLLM model to configure the agents with")
        if args.egress.allowlist and args.proxy_url is None:
            raise ValueError(f"tenant {cfg.name}: egressMode allowlist needs the egress proxy URL (proxy_url)")
        ns_name = cfg.namespace
        base_labels = {"app.kubernetes.io/part-of": "agent-platform", "agent-platform.io/tenant": cfg.name}
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": ns_name, "labels": {**base_labels, SANDBOX_LABEL: "true", **PSA_LABELS}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        child = pulumi.ResourceOptions(parent=namespace)

        def meta(object_name: str, **labels: str) -> dict[str, Any]:
            return {"name": object_name, "namespace": ns_name, "labels": {**base_labels, **labels}}

        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=meta("sandbox-quota"),
            spec={
                # Kata RuntimeClass overhead is charged to every pod on top of its requests/limits.
                "hard": {
                    "requests.cpu": cfg.quota.cpu,
                    "limits.cpu": cfg.quota.cpu,
                    "requests.memory": cfg.quota.memory,
                    "limits.memory": cfg.quota.memory,
                    "pods": str(cfg.quota.pods),
                    "requests.storage": cfg.quota.storage,
                    "persistentvolumeclaims": str(cfg.quota.pods),
                }
            },
            opts=child,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta("sandbox-limits"),
            spec={
                "limits": [
                    {
                        # Defaults for pods that do not size themselves (agents always do).
                        "type": "Container",
                        "default": {"cpu": "1", "memory": "2Gi"},
                        "defaultRequest": {"cpu": "1", "memory": "2Gi"},
                        "max": {"cpu": cfg.quota.cpu, "memory": cfg.quota.memory},
                    },
                    {"type": "PersistentVolumeClaim", "max": {"storage": cfg.quota.storage}},
                ]
            },
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta("sandbox-isolation"),
            spec={
                "podSelector": {},  # every pod in the namespace
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],  # agents only connect out (WebSocket / long polling)
                "egress": sandbox_egress_rules(args.network, args.egress),
            },
            opts=child,
        )
        proxy_secret: str | None = None
        if args.egress.allowlist and args.proxy_url is not None:
            proxy_secret = PROXY_SECRET
            k8s.core.v1.Secret(
                f"{name}-egress-proxy",
                metadata=meta(PROXY_SECRET),
                type="Opaque",
                # Every value a secret on its own (keys stay readable in previews and manifests).
                string_data={
                    key: pulumi.Output.secret(
                        pulumi.Output.all(args.proxy_url, args.litellm_url).apply(
                            lambda v, key=key: proxy_secret_data(v[0], v[1])[key]
                        )
                    )
                    for key in PROXY_ENV
                },
                opts=pulumi.ResourceOptions(parent=namespace, additional_secret_outputs=["data", "stringData"]),
            )
        k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(SERVICE_ACCOUNT),
            automount_service_account_token=False,
            opts=child,
        )

        secrets = pulumi.Output.secret(args.secrets if args.secrets is not None else {})
        self.deployments = {}
        for agent in cfg.agents:
            kind = AGENT_TYPES[agent.type]
            image = agent_image(args.images, agent.type)
            agent_labels = {"app.kubernetes.io/name": agent.type, "agent-platform.io/agent": agent.name}
            token = random.RandomPassword(
                f"{name}-{agent.name}-token",
                length=48,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            bot_env = agent.secret_env
            # Every value is a secret on its own (keys stay readable in previews and manifests).
            string_data = {
                LITELLM_KEY_ENV: pulumi.Output.secret(args.litellm_key),
                kind.token_env: pulumi.Output.secret(token.result),
                **{
                    env: secrets.apply(lambda s, a=agent.name, e=env: str(s[a][e]))  # secret: derived from one
                    for env in bot_env
                },
            }
            k8s.core.v1.Secret(
                f"{name}-{agent.name}-secret",
                metadata=meta(f"{agent.name}-secrets", **agent_labels),
                type="Opaque",
                string_data=string_data,
                opts=pulumi.ResourceOptions(parent=namespace, additional_secret_outputs=["data", "stringData"]),
            )
            files = pulumi.Output.from_input(args.litellm_url).apply(
                lambda url, agent_name=agent.name, kind=kind: kind.files(
                    AgentFiles(
                        tenant=cfg.name, agent=agent_name, litellm_url=url, models=args.models, limits=args.model_limits
                    )
                )
            )
            k8s.core.v1.ConfigMap(
                f"{name}-{agent.name}-config",
                metadata=meta(f"{agent.name}-config", **agent_labels),
                data=files,
                opts=child,
            )
            if agent.storage_gib > 0:
                k8s.core.v1.PersistentVolumeClaim(
                    f"{name}-{agent.name}-data",
                    metadata=meta(f"{agent.name}-data", **agent_labels),
                    spec={
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": STORAGE_CLASS,
                        "resources": {"requests": {"storage": f"{agent.storage_gib}Gi"}},
                    },
                    opts=child,
                )
            secret_names = (LITELLM_KEY_ENV, kind.token_env, *bot_env)
            key_hash = pulumi.Output.unsecret(pulumi.Output.from_input(args.litellm_key).apply(litellm_key_hash))
            template = agent_pod_template(
                tenant=cfg,
                agent_name=agent.name,
                image=image,
                network=args.network,
                workload="deployment",
                data="pvc" if agent.storage_gib > 0 else "emptyDir",
                secret_names=secret_names,
                proxy_secret=proxy_secret,
            )
            # A rotated LiteLLM key changes the template, so the pods roll onto it (the old key stays valid
            # for gateway_keys.KEY_ROTATION_GRACE); the hash is not the key and is not secret.
            template["metadata"].setdefault("annotations", {})[LITELLM_KEY_HASH_ANNOTATION] = key_hash
            # A PVC is ReadWriteOnce: replace the pod (Recreate). Without one, never run two copies either:
            # both would hold the same bot connection (maxSurge 0).
            strategy = (
                {"type": "Recreate"}
                if agent.storage_gib > 0
                else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
            )
            self.deployments[agent.name] = k8s.apps.v1.Deployment(
                f"{name}-{agent.name}",
                metadata=meta(agent.name, **agent_labels, **{SANDBOX_LABEL: "true"}),
                spec={
                    "replicas": 1,
                    "revisionHistoryLimit": 3,
                    "strategy": strategy,
                    "selector": {"matchLabels": selector_labels(cfg.name, agent.name, "deployment")},
                    "template": template,
                },
                opts=child,
            )
            if agent.warm_pool > 0:
                if args.sandbox_controller is None:
                    raise ValueError(f"tenant {cfg.name}: agent {agent.name} has a warm pool but agent-sandbox is not installed")  # fmt: skip
                # Warm sandboxes serve SandboxClaims (on-demand sessions), not the tenant's bot: they get the
                # LiteLLM key and the gateway token but not the bot tokens, so spare pods never open a second
                # connection to the chat platform.
                pool_template = agent_pod_template(
                    tenant=cfg,
                    agent_name=agent.name,
                    image=image,
                    network=args.network,
                    workload="warm-pool",
                    data="claimTemplate" if agent.storage_gib > 0 else "emptyDir",
                    secret_names=(LITELLM_KEY_ENV, kind.token_env),
                    proxy_secret=proxy_secret,
                )
                pool_template["metadata"].setdefault("annotations", {})[LITELLM_KEY_HASH_ANNOTATION] = key_hash
                claims = (
                    [
                        {
                            "metadata": {"name": "data"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "storageClassName": STORAGE_CLASS,
                                "resources": {"requests": {"storage": f"{agent.storage_gib}Gi"}},
                            },
                        }
                    ]
                    if agent.storage_gib > 0
                    else []
                )
                cr_opts = pulumi.ResourceOptions(parent=namespace, depends_on=[args.sandbox_controller])
                template_cr = sandbox_template(
                    f"{name}-{agent.name}-template",
                    metadata=meta(agent.name, **agent_labels),
                    pod_template=pool_template,
                    egress=sandbox_egress_rules(args.network, args.egress),
                    volume_claim_templates=claims,
                    opts=cr_opts,
                )
                warm_pool(
                    f"{name}-{agent.name}-pool",
                    metadata=meta(agent.name, **agent_labels),
                    template_name=agent.name,
                    replicas=agent.warm_pool,
                    opts=pulumi.ResourceOptions(parent=namespace, depends_on=[args.sandbox_controller, template_cr]),
                )

        self.namespace = ns_name
        self.register_outputs({"namespace": ns_name})
