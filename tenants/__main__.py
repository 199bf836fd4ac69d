"""A shard of tenants: reads the platform's tenantContract through a stack reference and deploys its tenants the way
the platform stack does in single-stack mode (same components, same names), plus what a shard owns of the gateway
and the egress proxy: its tenants' LiteLLM keys, MCP server tokens and proxy passwords. docs/shards.md.
"""

import asyncio
import gc
import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # components/ lives at the repository root

from components.config import ConfigError, decode_raw  # noqa: E402
from components.config.shards import PLATFORM_STACK_KEY, shard_config  # noqa: E402
from components.tenants.gateway_access import (  # noqa: E402
    MCP_SERVERS,
    MCP_TOKENS,
    McpTokens,
    TenantKeys,
    TenantKeysArgs,
    check_mcp_registration,
)
from components.tenants.shard import EGRESS_ALLOWLISTS, EGRESS_USERS, TenantProxyUsers, check_contract  # noqa: E402
from components.tenants.tenant import Tenant, TenantArgs  # noqa: E402

config = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
secret_keys = {*runtime_config.get_config_secret_keys_env(), *filter(runtime_config.is_config_secret, config)}
platform_stack = config.get(PLATFORM_STACK_KEY) or ""
if not platform_stack:
    raise pulumi.RunError(f"{PLATFORM_STACK_KEY}: is required (<org>/agent-platform/<stack>)")
platform = pulumi.StackReference(platform_stack)
# Everything a shard declares (resources, their Outputs, the SDK's futures) stays referenced until the run ends, so
# the cyclic collector traverses a growing heap again and again for little garbage: about a third of a 500-tenant
# shard's CPU (docs/benchmarks.md, Tenants in shards). This process ends with the run.
gc.disable()


async def shard() -> None:
    """Declared once the contract is read: tenants need its settings as plain values (pulumi.run's purpose)."""
    details = await platform.get_output_details("tenantContract")
    contract = check_contract(details.value)
    try:
        cfg = shard_config(
            contract,
            decode_raw("tenants", config.get("agent-platform:tenants", "[]")),
            decode_raw("tenantSecrets", config.get("agent-platform:tenantSecrets", "{}")),
            secret_keys,
            decode_raw("knownTenants", config["agent-platform:knownTenants"])
            if "agent-platform:knownTenants" in config
            else None,
        )
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
    stack = pulumi.get_stack()
    # The platform's provider, as `pulumi state move` copies it with the tenants it serves (same name at the root,
    # same inputs): moved resources keep their provider, so nothing is replaced for a provider change.
    provider = k8s.Provider(
        "cluster-k8s", kubeconfig=platform.require_output("kubeconfig"), enable_server_side_apply=True
    )
    in_cluster = pulumi.ResourceOptions(providers=[provider])
    models = {t.name: cfg.tenant_models(t) for t in cfg.tenants}
    keys = TenantKeys(stack, TenantKeysArgs.shard(stack, cfg.tenants, cfg.gateway.curl_image, models), opts=in_cluster)
    # Its MCP servers' tokens (the platform's gateway registers the servers from this shard's outputs, below)
    mcp = McpTokens(f"{stack}-mcp-token", cfg.tenants, former_parent=None)
    check_mcp_registration(contract, mcp.servers)
    proxy = (
        TenantProxyUsers(stack, cfg.tenants, contract["egressProxyHost"], opts=in_cluster)
        if cfg.egress.allowlist
        else None
    )
    tenant_secrets = pulumi.Config("agent-platform").get_secret_object("tenantSecrets") or pulumi.Output.secret({})
    for tenant in cfg.tenants:
        Tenant(
            tenant.name,
            TenantArgs.for_tenant(
                tenant,
                cfg,
                litellm_url=contract["gatewayUrl"],
                litellm_key=keys.keys[tenant.name],
                secrets=tenant_secrets.apply(lambda s, t=tenant.name: (s or {}).get(t, {})),
                # warm pools: the platform installs agent-sandbox when it serves shards (contract agentSandbox)
                sandbox_controller=platform if contract["agentSandbox"] else None,
                depends_on=(keys.jobs[tenant.name],),
                proxy_url=proxy.urls[tenant.name] if proxy else None,
                mcp_tokens=mcp.tokens.get(tenant.name),
            ),
            opts=in_cluster,
        )
        # Let the tenant's registrations go to the engine now (its event loop runs them) rather than after the last
        # tenant is declared: the engine checks and previews them while the program declares the next one.
        await asyncio.sleep(0)
    pulumi.export("platformContractVersion", contract["version"])
    pulumi.export("tenantNamespaces", {t.name: t.namespace for t in cfg.tenants})
    servers, tokens = mcp.exported()
    pulumi.export(MCP_SERVERS, servers)  # JSON text: {tenant: {server: LiteLLM registration}}
    pulumi.export(MCP_TOKENS, tokens)  # JSON text, secret: {tenant: {server: token}}
    if proxy is not None:
        pulumi.export(EGRESS_ALLOWLISTS, proxy.allowlists)  # JSON text
        pulumi.export(EGRESS_USERS, proxy.htpasswd)  # htpasswd lines, secret


pulumi.run(shard)
