"""One agent's resources in its tenant's namespace (Secret, ConfigMap, PVC, Deployment or warm pool, Service):
built from data the Tenant component hands over (components/tenants/tenant.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.capacity.keda import scaled_object
from components.config import AgentConfig
from components.contracts.cluster import STORAGE_CLASS
from components.contracts.labels import SANDBOX_LABEL, selector_labels
from components.runtime.agent_sandbox import sandbox_template, warm_pool
from components.tenants.agent_pod import (
    agent_image,
    agent_pod_template,
    proxy_secret_data,
)
from components.tenants.agent_service import admit_callers, agent_service
from components.tenants.agent_types.base import LITELLM_KEY_ENV, MCP_URL_ENV, PROXY_ENV, AgentFiles, AgentType

if TYPE_CHECKING:
    from components.tenants.tenant import TenantArgs

PROXY_SECRET = "egress-proxy"  # per tenant: the proxy URL with the tenant's credentials, and NO_PROXY
LITELLM_KEY_HASH_ANNOTATION = "agent-platform.io/litellm-key-sha256"


def litellm_key_hash(key: str) -> str:
    """First 16 hex digits of the key's SHA-256: changes with the key, reveals nothing usable about it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Meta:
    """Metadata of the tenant's objects: their namespace and the tenant's labels."""

    namespace: str
    labels: Mapping[str, str]

    def __call__(self, object_name: str, **labels: str) -> dict[str, Any]:
        return {"name": object_name, "namespace": self.namespace, "labels": {**self.labels, **labels}}


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
        secrets: pulumi.Output[Any],
        egress_rules: list[dict[str, Any]],  # the tenant's sandbox egress (its NetworkPolicy's), for warm pools
        token_opts: pulumi.ResourceOptions,  # where the agents' token passwords live (the Tenant: their URNs)
        ready: Sequence[pulumi.Resource] = (),  # what the pods wait for (a security group applies only to later pods)
    ) -> None:
        self.name, self.args, self.namespace, self.meta, self.token_opts = name, args, namespace, meta, token_opts
        self.secrets, self.egress_rules = secrets, egress_rules
        self.proxy_secret = self._proxy_secret()
        self.ready = list(ready)
        self.key_hash = pulumi.Output.unsecret(pulumi.Output.from_input(args.litellm_key).apply(litellm_key_hash))

    def add(self, agent: AgentConfig, kind: AgentType) -> None:
        name, args, meta = f"{self.name}-{agent.name}", self.args, self.meta
        labels = {"app.kubernetes.io/name": agent.type, "agent-platform.io/agent": agent.name}
        child = pulumi.ResourceOptions(parent=self.namespace)
        if kind.mcp_server:  # the gateway generated its token: LiteLLM sends it, the server requires it
            token: pulumi.Input[str] = args.mcp_tokens[agent.name]
        else:
            token = random.RandomPassword(f"{name}-token", length=48, special=False, opts=self.token_opts).result
        # An MCP server has no use for the tenant's LiteLLM key (it is called, it calls no model) nor for the MCP URL;
        # the tenant's other agents get both (the URL is no secret, but it is an output: the pod template is data).
        values = {LITELLM_KEY_ENV: args.litellm_key, MCP_URL_ENV: args.mcp_url}
        gateway = {} if kind.mcp_server else {env: values[env] for env in self.gateway_env()}
        # Every value is a secret on its own (keys stay readable in previews and manifests).
        string_data = {
            **{env: pulumi.Output.secret(value) for env, value in gateway.items()},
            kind.token_env: pulumi.Output.secret(token),
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
        if not kind.mcp_server:  # an MCP server's image carries its own configuration
            k8s.core.v1.ConfigMap(
                f"{name}-config", metadata=meta(f"{agent.name}-config", **labels), data=files, opts=child
            )
        if agent.storage_gib > 0:
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-data",
                metadata=meta(f"{agent.name}-data", **labels),
                spec=data_claim_spec(agent.storage_gib),
                opts=pulumi.ResourceOptions(parent=self.namespace, retain_on_delete=args.protect),
            )
        template = self._template(agent, kind, "deployment", (*gateway, kind.token_env, *agent.secret_env))
        # A PVC is ReadWriteOnce: replace the pod (Recreate). Without one, never run two copies either:
        # both would hold the same bot connection (maxSurge 0).
        strategy = (
            {"type": "Recreate"}
            if agent.storage_gib > 0
            else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        )
        scheduled = agent.schedule is not None and args.config.runs(agent)
        spec: dict[str, Any] = {
            "revisionHistoryLimit": 3,
            "strategy": strategy,
            "selector": {"matchLabels": selector_labels(args.config.name, agent.name, "deployment")},
            "template": template,
        }
        if not scheduled:  # a schedule leaves replicas to KEDA: Pulumi does not set them, so it never fights it
            # suspended (or its tenant suspended / decommissioned): no pod; the volume and Secrets stay
            spec["replicas"] = 1 if args.config.runs(agent) else 0
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=meta(agent.name, **labels, **{SANDBOX_LABEL: "true"}),
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self.namespace, depends_on=self.ready or None),
        )
        if scheduled and agent.schedule is not None:
            if args.scaler is None:
                raise ValueError(
                    f"tenant {args.config.name}: agent {agent.name} has a schedule but KEDA is not installed"
                )
            scaled_object(
                f"{name}-schedule",
                meta(agent.name, **labels),
                agent.name,
                agent.schedule,
                pulumi.ResourceOptions(parent=self.namespace, depends_on=[args.scaler, deployment]),
            )
        if kind.callers:
            admit_callers(name, agent_service(args.config, agent, kind), {**labels}, args.network.cidr, child)
        if agent.warm_pool > 0:
            self._warm_pool(agent, labels, kind)

    def gateway_env(self) -> tuple[str, ...]:
        """What an agent (not an MCP server) reads of the gateway from its Secret: its key, the MCP URL."""
        return (LITELLM_KEY_ENV, *((MCP_URL_ENV,) if self.args.mcp_url is not None else ()))

    def _proxy_secret(self) -> str | None:
        """The tenant's egress proxy settings every agent's pods read (allowlist mode): the proxy URL with the
        tenant's credentials, and NO_PROXY. Its name, or None without a proxy."""
        args = self.args
        if not args.egress.allowlist or args.proxy_url is None:
            return None
        k8s.core.v1.Secret(
            f"{self.name}-egress-proxy",
            metadata=self.meta(PROXY_SECRET),
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
            opts=pulumi.ResourceOptions(parent=self.namespace, additional_secret_outputs=["data", "stringData"]),
        )
        return PROXY_SECRET

    def _template(
        self, agent: AgentConfig, kind: AgentType, workload: str, secret_names: Sequence[str]
    ) -> dict[str, Any]:
        storage = {"deployment": "pvc", "warm-pool": "claimTemplate"}[workload]
        template = agent_pod_template(
            tenant=self.args.config,
            agent_name=agent.name,
            image=agent_image(self.args.images, agent),
            network=self.args.network,
            workload=workload,
            data=storage if agent.storage_gib > 0 else "emptyDir",
            secret_names=tuple(secret_names),
            proxy_secret=self.proxy_secret,
        )
        if kind.mcp_server:
            return template  # no LiteLLM key to roll onto
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
            pod_template=self._template(agent, kind, "warm-pool", (*self.gateway_env(), kind.token_env)),
            egress=self.egress_rules,
            volume_claim_templates=claims,
            opts=pulumi.ResourceOptions(parent=self.namespace, depends_on=[args.sandbox_controller]),
        )
        warm_pool(
            f"{name}-pool",
            metadata=self.meta(agent.name, **labels),
            template_name=agent.name,
            replicas=agent.warm_pool if args.config.runs(agent) else 0,
            opts=pulumi.ResourceOptions(parent=self.namespace, depends_on=[args.sandbox_controller, template_cr]),
        )
