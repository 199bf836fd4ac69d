"""Tenants and their agents: one namespace per tenant, one Deployment (and optionally a warm pool) per agent.

Pod templates come from agent_pod.py (agent types: agent_types/); this module adds the per-tenant and per-agent
objects around them. Details: docs/cluster.md#tenants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import AgentConfig, ImagesConfig, KataConfig, NetworkConfig, PlatformConfig, TenantConfig
from components.contracts.cluster import STORAGE_CLASS
from components.contracts.labels import SANDBOX_LABEL
from components.k8s.podspec import selector_labels
from components.runtime.agent_sandbox import sandbox_template, warm_pool
from components.tenants.agent_pod import (
    SERVICE_ACCOUNT,
    agent_image,
    agent_pod_template,
    proxy_secret_data,
)
from components.tenants.agent_service import admit_callers, agent_service
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.base import LITELLM_KEY_ENV, PROXY_ENV, AgentFiles, AgentType
from components.tenants.sandbox_network import OPEN_EGRESS, SandboxEgress, sandbox_egress_rules

PROXY_SECRET = "egress-proxy"  # per tenant: the proxy URL with the tenant's credentials, and NO_PROXY
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
        meta = Meta(ns_name, base_labels)

        _namespace_limits(name, cfg, meta, child)
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
                            lambda v, key=key: proxy_secret_data(v[0], [v[1]])[key]
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
        # The agents' token passwords stay children of the tenant (their URNs).
        agents = AgentBuilder(name, args, namespace, meta, proxy_secret, secrets, pulumi.ResourceOptions(parent=self))
        for agent in cfg.agents:
            agents.add(agent)

        self.namespace = ns_name
        self.register_outputs({"namespace": ns_name})


@dataclass(frozen=True)
class Meta:
    """Metadata of the tenant's objects: their namespace and the tenant's labels."""

    namespace: str
    labels: Mapping[str, str]

    def __call__(self, object_name: str, **labels: str) -> dict[str, Any]:
        return {"name": object_name, "namespace": self.namespace, "labels": {**self.labels, **labels}}


def _namespace_limits(name: str, cfg: TenantConfig, meta: Meta, opts: pulumi.ResourceOptions) -> None:
    """The tenant's ResourceQuota and LimitRange."""
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
        opts=opts,
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
        opts=opts,
    )


def data_claim_spec(storage_gib: int) -> dict[str, Any]:
    """An agent's persistent volume (Deployment PVC or warm-pool claim template)."""
    return {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": STORAGE_CLASS,
        "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
    }


class AgentBuilder:
    """One agent's resources in its tenant namespace: Secret, ConfigMap, optional PVC, Deployment, warm pool."""

    def __init__(
        self,
        name: str,
        args: TenantArgs,
        namespace: k8s.core.v1.Namespace,
        meta: Meta,
        proxy_secret: str | None,
        secrets: pulumi.Output[Any],
        token_opts: pulumi.ResourceOptions,
    ) -> None:
        self.name, self.args, self.namespace, self.meta, self.token_opts = name, args, namespace, meta, token_opts
        self.proxy_secret, self.secrets = proxy_secret, secrets
        self.key_hash = pulumi.Output.unsecret(pulumi.Output.from_input(args.litellm_key).apply(litellm_key_hash))

    def add(self, agent: AgentConfig) -> None:
        name, args, meta = f"{self.name}-{agent.name}", self.args, self.meta
        kind = AGENT_TYPES[agent.type]
        labels = {"app.kubernetes.io/name": agent.type, "agent-platform.io/agent": agent.name}
        child = pulumi.ResourceOptions(parent=self.namespace)
        token = random.RandomPassword(f"{name}-token", length=48, special=False, opts=self.token_opts)
        # Every value is a secret on its own (keys stay readable in previews and manifests).
        string_data = {
            LITELLM_KEY_ENV: pulumi.Output.secret(args.litellm_key),
            kind.token_env: pulumi.Output.secret(token.result),
            **{
                env: self.secrets.apply(lambda s, a=agent.name, e=env: str(s[a][e]))  # secret: derived from one
                for env in agent.secret_env
            },
        }
        k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=meta(f"{agent.name}-secrets", **labels),
            type="Opaque",
            string_data=string_data,
            opts=pulumi.ResourceOptions(parent=self.namespace, additional_secret_outputs=["data", "stringData"]),
        )
        files = pulumi.Output.from_input(args.litellm_url).apply(
            lambda url: kind.files(
                AgentFiles(
                    tenant=args.config.name,
                    agent=agent.name,
                    litellm_url=url,
                    models=args.models,
                    limits=args.model_limits,
                )
            )
        )
        k8s.core.v1.ConfigMap(f"{name}-config", metadata=meta(f"{agent.name}-config", **labels), data=files, opts=child)
        if agent.storage_gib > 0:
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-data",
                metadata=meta(f"{agent.name}-data", **labels),
                spec=data_claim_spec(agent.storage_gib),
                opts=child,
            )
        template = self._template(agent, "deployment", (LITELLM_KEY_ENV, kind.token_env, *agent.secret_env))
        # A PVC is ReadWriteOnce: replace the pod (Recreate). Without one, never run two copies either:
        # both would hold the same bot connection (maxSurge 0).
        strategy = (
            {"type": "Recreate"}
            if agent.storage_gib > 0
            else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        )
        k8s.apps.v1.Deployment(
            name,
            metadata=meta(agent.name, **labels, **{SANDBOX_LABEL: "true"}),
            spec={
                "replicas": 1,
                "revisionHistoryLimit": 3,
                "strategy": strategy,
                "selector": {"matchLabels": selector_labels(args.config.name, agent.name, "deployment")},
                "template": template,
            },
            opts=child,
        )
        if kind.callers:
            admit_callers(name, agent_service(args.config, agent, kind), {**labels}, args.network.cidr, child)
        if agent.warm_pool > 0:
            self._warm_pool(agent, labels, kind)

    def _template(self, agent: AgentConfig, workload: str, secret_names: Sequence[str]) -> dict[str, Any]:
        storage = {"deployment": "pvc", "warm-pool": "claimTemplate"}[workload]
        template = agent_pod_template(
            tenant=self.args.config,
            agent_name=agent.name,
            image=agent_image(self.args.images, agent.type),
            network=self.args.network,
            workload=workload,
            data=storage if agent.storage_gib > 0 else "emptyDir",
            secret_names=tuple(secret_names),
            proxy_secret=self.proxy_secret,
        )
        # A rotated LiteLLM key changes the template, so the pods roll onto it (the old key stays valid
        # for gateway_keys.KEY_ROTATION_GRACE); the hash is not the key and is not secret.
        template["metadata"].setdefault("annotations", {})[LITELLM_KEY_HASH_ANNOTATION] = self.key_hash
        return template

    def _warm_pool(self, agent: AgentConfig, labels: dict[str, str], kind: AgentType) -> None:
        args, name = self.args, f"{self.name}-{agent.name}"
        if args.sandbox_controller is None:
            raise ValueError(
                f"tenant {args.config.name}: agent {agent.name} has a warm pool but agent-sandbox is not installed"
            )
        # Warm sandboxes serve SandboxClaims (on-demand sessions), not the tenant's bot: they get the LiteLLM key
        # and the gateway token but not the bot tokens, so spare pods never open a second connection to the chat
        # platform.
        claims = (
            [{"metadata": {"name": "data"}, "spec": data_claim_spec(agent.storage_gib)}]
            if agent.storage_gib > 0
            else []
        )
        template_cr = sandbox_template(
            f"{name}-template",
            metadata=self.meta(agent.name, **labels),
            pod_template=self._template(agent, "warm-pool", (LITELLM_KEY_ENV, kind.token_env)),
            egress=sandbox_egress_rules(args.network, args.egress),
            volume_claim_templates=claims,
            opts=pulumi.ResourceOptions(parent=self.namespace, depends_on=[args.sandbox_controller]),
        )
        warm_pool(
            f"{name}-pool",
            metadata=self.meta(agent.name, **labels),
            template_name=agent.name,
            replicas=agent.warm_pool,
            opts=pulumi.ResourceOptions(parent=self.namespace, depends_on=[args.sandbox_controller, template_cr]),
        )
