"""LiteLLM's chart values: only what differs from the chart's defaults (the offline render checks that every key has an
effect). Plain data. Details: docs/gateway.md#litellm-on-core-nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.config import GatewayConfig, ModelConfig, SelfHostedModel
from components.contracts.gateway import MASTER_KEY_SECRET, MCP_TOKENS_SECRET, SELECTOR, mcp_token_env
from components.contracts.labels import CORE_NODE_SELECTOR
from components.contracts.models import server_url
from components.gateway.cache import with_cache
from components.gateway.database import database_url_env
from components.k8s.podspec import topology_spread

SERVICE_ACCOUNT = "litellm"
LITELLM_CHART = "oci://ghcr.io/berriai/litellm-helm"


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


def release_values(
    cfg: GatewayConfig,
    database_env: Sequence[dict[str, Any]],
    cache_settings: Any,
    cache_ca: bool,
    self_hosted: Sequence[SelfHostedModel] = (),
) -> dict[str, Any]:
    """The release's values: LiteLLM's own (its routes: Bedrock's and the self-hosted models'), with its database
    and its cache (settings, password, CA)."""
    return with_cache(litellm_values(cfg, database_env, self_hosted), cache_settings, ca=cache_ca)


def _registered(proxy_config: Mapping[str, Any], servers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    general = {**(proxy_config.get("general_settings") or {}), "require_key_mcp_access_defined": True}
    found = {"mcp_servers": {name: dict(entry) for name, entry in servers.items()}} if servers else {}
    return {**proxy_config, "general_settings": general, **found}


def _token_env(env: Sequence[Any], servers: Mapping[str, Any]) -> list[Any]:
    secret = {"name": MCP_TOKENS_SECRET}
    return [*env, *({"name": mcp_token_env(s), "valueFrom": {"secretKeyRef": {**secret, "key": s}}} for s in servers)]


def with_mcp(values: dict[str, Any], servers: pulumi.Input[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The release values plus the tenants' MCP servers (LiteLLM name -> ``mcp_servers`` entry,
    components/gateway/mcp.py), the key-grant rule (a key without its own grant sees no server) and each server's
    token in the environment (the Secret MCP_TOKENS_SECRET, by server name). ``servers`` is an Output when shards
    bring servers: then only the two keys it changes wait for it."""
    proxy_config, env = values["proxy_config"], values.get("extraEnvVars", [])
    if not isinstance(servers, pulumi.Output):
        return {**values, "proxy_config": _registered(proxy_config, servers), "extraEnvVars": _token_env(env, servers)}
    return {
        **values,
        "proxy_config": pulumi.Output.all(pulumi.Output.from_input(proxy_config), servers).apply(
            lambda v: _registered(*v)
        ),
        "extraEnvVars": pulumi.Output.all(pulumi.Output.from_input(env), servers).apply(lambda v: _token_env(*v)),
    }
