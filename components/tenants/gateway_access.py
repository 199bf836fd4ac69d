"""A tenant's access to the model gateway, one owner for both modes: its LiteLLM key (team, virtual key and the
in-cluster Job that registers both) and its MCP servers' tokens and registrations.

``__main__.py`` composes these for the platform stack's own tenants, ``tenants/__main__.py`` for a shard's; the
Gateway serves what it is given (the servers' registrations and tokens) and mints nothing per tenant. The Gateway
created these resources before (names ``gateway-key-<tenant>``, ``gateway-key-job-<tenant>``,
``gateway-mcp-token-<tenant>-<agent>``): each keeps its state through an alias naming that URN under its former
parent, the Gateway in the platform stack or the root of a shard after ``pulumi state move`` (docs/shards.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import TenantConfig
from components.config.shards import merge_shard_entries
from components.contracts.gateway import CLUSTER_URL, KEY_JOB_SELECTOR, MASTER_KEY_KEY, MASTER_KEY_SECRET, NAMESPACE
from components.gateway.keys import (
    KEY_JOB_BACKOFF_LIMIT,
    KEY_JOB_DEADLINE,
    KEY_JOB_PULUMI_TIMEOUT,
    key_job_name,
    key_job_pod_spec,
)
from components.gateway.mcp import check_shard_registration, mcp_servers
from components.k8s.resources import run_to_completion_job
from components.tenants.lifecycle import former_aliases
from components.tenants.shard import shard_resource_name, shard_texts

# The names the Gateway gave these resources: the aliases of a moved resource name them.
FORMER_KEY, FORMER_KEY_JOB, FORMER_MCP_TOKEN = "gateway-key-", "gateway-key-job-", "gateway-mcp-token-"
FORMER_KEYS_SECRET = "gateway-tenant-keys"
# What a shard exports for the platform's gateway (read through tenantShards): registrations, secret tokens.
MCP_SERVERS, MCP_TOKENS = "mcpServers", "mcpTokens"


def adopted(
    parent: pulumi.Resource,
    former_parent: pulumi.Input[str] | None,
    new: str,
    old: str,
    tenant: TenantConfig,
    suffix: str = "",
) -> pulumi.ResourceOptions:
    """Options for the child ``<new><tenant><suffix>`` of ``parent`` that was ``<old><tenant><suffix>`` under
    ``former_parent`` (a URN; None: the stack's root), under the tenant's former names too (docs/tenants.md)."""
    names = [tenant.name, *tenant.former_names]
    moved = [pulumi.Alias(name=f"{old}{n}{suffix}", parent=former_parent) for n in names]
    return pulumi.ResourceOptions(parent=parent, aliases=[*moved, *former_aliases(new, tenant, suffix)])


@dataclass(frozen=True)
class TenantKeysArgs:
    tenants: Sequence[TenantConfig]
    curl_image: str
    models: Mapping[str, Sequence[str]]  # tenant -> the models its team and key may call
    secret_name: str  # the Secret in the gateway's namespace the Jobs read the keys from (one per stack)
    former_parent: pulumi.Input[str] | None  # where the keys and Jobs were: the Gateway's URN, or None (a shard's root)
    registrar: str = ""  # the Jobs' own service account ("": the namespace's default; no token either way)
    namespace: Sequence[pulumi.Resource] = ()  # the gateway's namespace (the same stack only)
    litellm: Sequence[pulumi.Resource] = ()  # LiteLLM's release and master key: the Jobs wait for them (same stack)

    @classmethod
    def platform(
        cls,
        tenants: Sequence[TenantConfig],
        curl_image: str,
        models: Mapping[str, Sequence[str]],
        *,
        gateway: pulumi.Input[str],
        namespace: pulumi.Resource,
        litellm: Sequence[pulumi.Resource],
    ) -> TenantKeysArgs:
        """The platform stack's own tenants: the Jobs run as a registrar account of their own, after LiteLLM; the
        keys and Jobs were the Gateway's (``gateway``: its URN)."""
        return cls(
            tenants,
            curl_image,
            models,
            secret_name="litellm-tenant-keys",
            former_parent=gateway,
            registrar="litellm-key-registrar",
            namespace=(namespace,),
            litellm=tuple(litellm),
        )

    @classmethod
    def shard(
        cls, stack: str, tenants: Sequence[TenantConfig], curl_image: str, models: Mapping[str, Sequence[str]]
    ) -> TenantKeysArgs:
        """A shard's tenants: a Secret of the shard's own, the namespace's default account; the platform's keys and
        Jobs land at the shard's root when ``pulumi state move`` brings them."""
        return cls(tenants, curl_image, models, f"litellm-tenant-keys-{shard_resource_name(stack)}", None)


class TenantKeys(pulumi.ComponentResource):
    """One LiteLLM key per tenant, generated here (a secret), and the idempotent Job that registers its team and key
    in the gateway's namespace; the Job reads the master key Secret by reference only (components/gateway/keys.py)."""

    keys: dict[str, pulumi.Output[str]]  # secret
    jobs: dict[str, k8s.batch.v1.Job]  # tenant -> the Job that registered its key (its pods wait for it)

    def __init__(self, name: str, args: TenantKeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:agents:TenantKeys", name, None, opts)
        passwords = {
            t.name: random.RandomPassword(
                f"{name}-{t.name}",
                length=40,
                special=False,
                opts=adopted(self, args.former_parent, f"{name}-", FORMER_KEY, t),
            )
            for t in args.tenants
        }
        self.keys = {t: pulumi.Output.secret(p.result.apply(lambda v: f"sk-{v}")) for t, p in passwords.items()}
        self.jobs = {}
        if not args.tenants:
            self.register_outputs({})
            return
        within = pulumi.ResourceOptions(parent=self, depends_on=list(args.namespace))
        # the platform's Secret was the Gateway's; a shard's is its own from the start
        platform = args.former_parent is not None
        aliases = [pulumi.Alias(name=FORMER_KEYS_SECRET, parent=args.former_parent)] if platform else []
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": args.secret_name, "namespace": NAMESPACE},
            type="Opaque",
            string_data=dict(self.keys),
            opts=pulumi.ResourceOptions.merge(
                within, pulumi.ResourceOptions(aliases=aliases, additional_secret_outputs=["data", "stringData"])
            ),
        )
        before: list[pulumi.Resource] = [secret, *args.litellm]
        if args.registrar:
            before.append(
                k8s.core.v1.ServiceAccount(
                    f"{name}-registrar",
                    metadata={"name": args.registrar, "namespace": NAMESPACE},
                    automount_service_account_token=False,
                    opts=pulumi.ResourceOptions.merge(
                        within, pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=args.former_parent)])
                    ),
                )
            )
        for tenant in args.tenants:
            models = args.models[tenant.name]
            self.jobs[tenant.name] = run_to_completion_job(
                f"{name}-job-{tenant.name}",
                {
                    "name": key_job_name(tenant, args.curl_image, models),
                    "namespace": NAMESPACE,
                    "labels": {**KEY_JOB_SELECTOR, "agent-platform.io/tenant": tenant.name},
                },
                key_job_pod_spec(
                    tenant,
                    args.curl_image,
                    models=models,
                    service_account=args.registrar,
                    litellm_url=CLUSTER_URL,
                    master_key_secret=(MASTER_KEY_SECRET, MASTER_KEY_KEY),
                    tenant_keys_secret=args.secret_name,
                ),
                backoff_limit=KEY_JOB_BACKOFF_LIMIT,
                deadline_seconds=KEY_JOB_DEADLINE,
                opts=pulumi.ResourceOptions.merge(
                    adopted(self, args.former_parent, f"{name}-job-", FORMER_KEY_JOB, tenant),
                    pulumi.ResourceOptions(
                        depends_on=before,
                        # a rotated key (replaced RandomPassword) must be registered again
                        replace_with=[passwords[tenant.name]],
                        # longer than the Job's activeDeadlineSeconds (components/gateway/keys.py states the budget)
                        custom_timeouts=pulumi.CustomTimeouts(
                            create=KEY_JOB_PULUMI_TIMEOUT, update=KEY_JOB_PULUMI_TIMEOUT
                        ),
                    ),
                ),
            )
        self.register_outputs({})


class McpTokens(pulumi.ComponentResource):
    """One generated bearer token per MCP server (its own: a leaked one opens nothing else), and each server's
    LiteLLM registration (plain data, components/gateway/mcp.py). The server's pod gets the token (``tokens``), the
    gateway the registration and the same token (``servers``, ``by_server``), in this stack or, from a shard,
    through its outputs (``exported``)."""

    tokens: dict[str, dict[str, pulumi.Output[str]]]  # tenant -> agent -> token (secret)
    servers: dict[str, dict[str, Any]]  # LiteLLM server name -> its mcp_servers entry
    by_server: dict[str, pulumi.Output[str]]  # LiteLLM server name -> its token (secret)

    def __init__(
        self,
        name: str,
        tenants: Sequence[TenantConfig],
        former_parent: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("agent-platform:agents:McpTokens", name, None, opts)
        self.tokens, self.servers, self.by_server = {}, {}, {}
        self._tenants_config = tuple(tenants)
        for server in mcp_servers(tenants):
            tenant, agent = server.tenant, server.agent.name
            password = random.RandomPassword(
                f"{name}-{tenant.name}-{agent}",
                length=48,
                special=False,
                # a renamed tenant keeps its servers' tokens (its LiteLLM server names follow the new name)
                opts=adopted(self, former_parent, f"{name}-", FORMER_MCP_TOKEN, tenant, f"-{agent}"),
            )
            token = pulumi.Output.secret(password.result)
            self.tokens.setdefault(tenant.name, {})[agent] = token
            self.servers[server.name] = server.registration()
            self.by_server[server.name] = token
        self.register_outputs({})

    def exported(self) -> tuple[str, pulumi.Output[str]]:
        """A shard's outputs for the platform: ``{tenant: {server: registration}}`` as JSON text, and
        ``{tenant: {server: token}}`` as JSON text in a Pulumi secret (one string each, as the egress entries)."""
        servers = shard_mcp_entries(self._tenants_config)
        tokens = pulumi.Output.from_input(self.by_server).apply(
            lambda by: mcp_text({t: {s: by[s] for s in entries} for t, entries in servers.items()})
        )
        return mcp_text(servers), pulumi.Output.secret(tokens)


def shard_mcp_entries(tenants: Sequence[TenantConfig]) -> dict[str, dict[str, Any]]:
    """``{tenant: {LiteLLM server name: its mcp_servers entry}}`` for the tenants with MCP servers."""
    found: dict[str, dict[str, Any]] = {}
    for server in mcp_servers(tenants):
        found.setdefault(server.tenant.name, {})[server.name] = server.registration()
    return found


def check_mcp_registration(contract: Mapping[str, Any], servers: Mapping[str, Any]) -> None:
    """A shard with MCP servers needs a platform that registers them (tenantContract 1.1 ``mcpServers``)."""
    if servers and not contract.get("mcpServers"):
        raise pulumi.RunError(
            f"platform tenantContract {contract.get('version')} does not register shards' MCP servers "
            f"({', '.join(sorted(servers))}): update the platform first (docs/shards.md)"
        )


def mcp_text(entries: Mapping[str, Any]) -> str:
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def _shard_map(stack: str, output: str, text: str | None) -> dict[str, Any]:
    try:
        entries = json.loads(text) if text else {}
    except ValueError:
        entries = None
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise pulumi.RunError(f"shard {stack}: {output} is not a JSON map of tenants to maps")
    return entries


def shard_servers(stack: str, text: str | None) -> dict[str, dict[str, Any]]:
    """A shard's ``mcpServers`` (``{tenant: {server: entry}}``), every entry exactly what the platform would register
    for a server of that tenant (components/gateway/mcp.py ``check_shard_registration``)."""
    entries = _shard_map(stack, MCP_SERVERS, text)
    for tenant, servers in entries.items():
        for name, entry in servers.items():
            try:
                check_shard_registration(tenant, name, entry)
            except ValueError as error:
                raise pulumi.RunError(
                    f"shard {stack}: {MCP_SERVERS}.{tenant}.{name} {error}: the platform registers only the servers "
                    "a shard's configuration declares"
                ) from None
    return entries


def shard_tokens(stack: str, text: str | None, servers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """A shard's ``mcpTokens`` (``{tenant: {server: token}}``): a token for each of its own servers only."""
    tokens = _shard_map(stack, MCP_TOKENS, text)
    for tenant, by_server in tokens.items():
        strays = sorted(set(by_server) - set(servers.get(tenant, {})))
        if strays or not all(isinstance(t, str) and t for t in by_server.values()):
            raise pulumi.RunError(
                f"shard {stack}: {MCP_TOKENS}.{tenant} holds a token that is not text or for a server it does not "
                f"export ({', '.join(strays) or 'an empty token'})"
            )
    return tokens


def gateway_mcp(
    own: McpTokens, refs: Mapping[str, pulumi.StackReference], own_tenants: Sequence[str]
) -> tuple[pulumi.Input[Mapping[str, Any]], pulumi.Input[Mapping[str, Any]]]:
    """What the platform's gateway registers: its own tenants' servers and tokens, and, with shards, each shard's
    (read through its stack reference, checked and merged: one owner per tenant and per server name) as Outputs, the
    tokens secret."""
    if not refs:
        return own.servers, own.by_server

    # Each shard's servers, checked once: registered, and the tokens are checked against them.
    checked = shard_texts(refs, MCP_SERVERS).apply(
        lambda texts: {stack: shard_servers(stack, text) for stack, text in texts.items()}
    )
    servers = checked.apply(lambda of: flat_servers(own.servers, merge_shard_entries(of, own_tenants)))

    def merged_tokens(values: list[Any]) -> dict[str, Any]:
        mine, servers_of, token_texts = values
        tokens = {stack: shard_tokens(stack, text, servers_of[stack]) for stack, text in token_texts.items()}
        return flat_servers(mine, merge_shard_entries(tokens, own_tenants))

    tokens = pulumi.Output.all(own.by_server, checked, shard_texts(refs, MCP_TOKENS)).apply(merged_tokens)
    return servers, pulumi.Output.secret(tokens)


def flat_servers(own: Mapping[str, Any], shards: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The platform's own servers, then the shards' (``{tenant: {server: value}}``) by server name; two servers of
    one LiteLLM name (``a-b``/``c`` and ``a``/``b-c`` both map to ``a_b_c``) are refused."""
    found = dict(own)
    for tenant, servers in shards.items():
        for name, value in servers.items():
            if name in found:
                raise pulumi.RunError(f"MCP server {name!r} of tenant {tenant!r} is registered twice: rename one")
            found[name] = value
    return found
