"""What the gateway area provides the others: its namespace, pods and services (who may call each), the URL tenants
call, and the Secrets other areas read (the scrape key)."""

from components.contracts import observability
from components.contracts.namespaces import LITELLM_NAMESPACE
from components.contracts.services import SANDBOXES, Pods, Service

NAMESPACE = LITELLM_NAMESPACE
RELEASE = "litellm"  # the chart's fullname is the release name when it contains "litellm"
PORT = 4000  # LiteLLM's port, and the tenant-facing NLB listener
SELECTOR = {"app.kubernetes.io/name": "litellm", "app.kubernetes.io/instance": RELEASE}  # the LiteLLM pods
TENANT_GATEWAY_SELECTOR = {
    "app.kubernetes.io/name": "litellm-tenant-gateway",
    "app.kubernetes.io/component": "tenant-gateway",
}
KEY_JOB_SELECTOR = {"app.kubernetes.io/name": "litellm-key-registrar"}  # the key Jobs' pods
MIGRATION_LABELS = {"app.kubernetes.io/name": "litellm-migrations", "app.kubernetes.io/instance": "litellm"}
RDS_BOOTSTRAP_LABELS = {"app.kubernetes.io/name": "litellm-db-bootstrap", "app.kubernetes.io/instance": "litellm"}
POSTGRES_LABELS = {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "litellm-postgres"}
POSTGRES_PORT = 5432
VALKEY_LABELS = {"app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": "litellm-valkey"}
VALKEY_PORT = 6379
MASTER_KEY_SECRET, MASTER_KEY_KEY = "litellm-masterkey", "masterkey"
METRICS_KEY_SECRET, METRICS_KEY_KEY = "litellm-metrics-key", "token"  # Prometheus' bearer token for /metrics

GATEWAY_PODS = Pods(SELECTOR, NAMESPACE)  # LiteLLM as a caller (of MCP or model servers, say)

# Sandboxes call the tenant gateway (nginx, inference routes only) through the internal NLB, never LiteLLM itself.
TENANT_GATEWAY = Service("litellm-nlb", NAMESPACE, TENANT_GATEWAY_SELECTOR, PORT, callers=(SANDBOXES,), nlb=True)
# LiteLLM (the chart's ClusterIP Service): the tenant gateway, the key Jobs and Prometheus.
LITELLM = Service(
    RELEASE,
    NAMESPACE,
    SELECTOR,
    PORT,
    callers=(
        Pods(TENANT_GATEWAY_SELECTOR),
        Pods(KEY_JOB_SELECTOR),
        Pods(observability.PROMETHEUS_PODS, observability.NAMESPACE),
    ),
)
# The in-cluster stores (dev, staging): LiteLLM only, and the migrations for the database.
POSTGRES = Service(
    "litellm-postgres", NAMESPACE, POSTGRES_LABELS, POSTGRES_PORT, (Pods(SELECTOR), Pods(MIGRATION_LABELS)), "postgres"
)
VALKEY = Service("litellm-valkey", NAMESPACE, VALKEY_LABELS, VALKEY_PORT, (Pods(SELECTOR),), "valkey")
CLUSTER_URL = LITELLM.url()  # core pods only (runc), never Kata pods


# Tenants' MCP servers (docs/mcp.md): the gateway reads each server's token from this Secret into its environment
# (the proxy config, a ConfigMap, only names the variable); agents reach them through the tenant gateway's /mcp/.
MCP_TOKENS_SECRET = "litellm-mcp-tokens"
MCP_PATH = "/mcp/"  # LiteLLM answers /mcp with a 307 to /mcp/ built from the request's Host


def mcp_server_name(tenant: str, agent: str) -> str:
    """LiteLLM's name of a tenant's MCP server: ``-`` is its tool-name separator (``<server>-<tool>``) and refused in
    server names, so both DNS labels map it to ``_`` (the configuration refuses two servers with one name)."""
    return f"{tenant}_{agent}".replace("-", "_")


def mcp_token_env(server: str) -> str:
    """The gateway's environment variable holding ``server``'s token."""
    return f"MCP_TOKEN_{server.upper()}"
