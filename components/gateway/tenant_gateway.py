"""Tenant-facing gateway: nginx in front of LiteLLM, the only thing the LiteLLM NLB reaches.

LiteLLM serves admin and management routes on the inference port, and a sandbox is assumed hostile: nginx forwards
only the routes agents call, each to its own fixed path, and answers the rest with a 403.
Details: docs/gateway.md#tenant-gateway-componentsgatewaytenant_gatewaypy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts.gateway import MCP_PATH, TENANT_GATEWAY, TENANT_GATEWAY_SELECTOR
from components.contracts.labels import PART_OF
from components.k8s.podspec import container_security_context, core_pod_template, topology_spread
from components.k8s.reach import service_metadata, service_spec
from components.k8s.resources import keep_one_available, rolling_deployment

APP = "litellm-tenant-gateway"
SELECTOR = TENANT_GATEWAY_SELECTOR
CONFIG_MAP = APP
LISTEN_PORT = TENANT_GATEWAY.pod_port  # the NLB's target port, its listener's too: gateway.url does not change
HEALTH_PORT = 8081  # kubelet probes only; answered by nginx itself
NGINX_UID = 101  # the nginx user of the nginx-unprivileged image
CONF_PATH = "/etc/nginx/nginx.conf"
CACHE_DIR = "/var/cache/nginx"
BODY_LIMIT = "20m"  # base64 images in chat requests; LiteLLM has no smaller limit of its own
READ_TIMEOUT_S = 600  # long generations and SSE streams with pauses between events
STREAM_WORKER_CONNECTIONS = 4096


@dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    upstream: str = ""  # LiteLLM's path when it is not ``path``
    # Only these request headers reach LiteLLM (None: every header). The MCP routes: LiteLLM 1.93 turns a caller's
    # x-mcp-<server>-authorization into the upstream server's Authorization, and reads x-mcp-auth, x-mcp-servers,
    # x-mcp-access-groups (docs/mcp.md); stock nginx cannot drop headers by prefix, so it forwards a list.
    headers: tuple[str, ...] | None = None


# What the agents call (OpenAI-compatible), each with and without the /v1 prefix LiteLLM also serves, plus the
# liveness/readiness routes (no model calls, unlike /health). Nothing else reaches LiteLLM from a sandbox.
OPENAI_ROUTES = {
    "chat/completions": "POST",
    "completions": "POST",
    "embeddings": "POST",
    "models": "GET",
    "model/info": "GET",
}
# The streamable-HTTP MCP endpoint (every server the caller's key is granted): POST messages, GET the server's event
# stream, DELETE ends a session. /mcp goes to /mcp/ directly: LiteLLM would answer it with a 307 built from the Host
# nginx sends. What the MCP client sends that LiteLLM needs: the key, the body's type, the accepted types, the session
# and protocol version, and the event to resume a stream from.
MCP_METHODS = ("POST", "GET", "DELETE")
MCP_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "Mcp-Session-Id",
    "Mcp-Protocol-Version",
    "Last-Event-ID",
)
MCP_ROUTES = tuple(Route(path, MCP_METHODS, MCP_PATH, MCP_REQUEST_HEADERS) for path in (MCP_PATH.rstrip("/"), MCP_PATH))
ROUTES: tuple[Route, ...] = (
    *(Route(f"{prefix}/{path}", (method,)) for path, method in OPENAI_ROUTES.items() for prefix in ("/v1", "")),
    Route("/health/liveliness", ("GET",)),
    Route("/health/readiness", ("GET",)),
    *MCP_ROUTES,
)
# LiteLLM 1.93's response headers that describe the backend or the platform rather than the tenant's own call
# (proxy/common_request_processing.py get_custom_headers, proxy/common_utils/callback_utils.py,
# router_utils/add_retry_fallback_headers.py, the dynamic rate limiters, the adaptive and quality routers): the
# version, the model's api base (an internal URL for self-hosted models) and region, deployment ids, cache keys,
# cost internals (discount, margin), timings, retries and fallbacks (with other deployments' errors), guardrails and
# policies. nginx drops them from every response. Kept: the call id (support requests), the key's own spend,
# budget and limits (x-litellm-key-*), the response cost and duration, and the OpenAI x-ratelimit-* headers.
HIDDEN_RESPONSE_HEADERS: tuple[str, ...] = (
    "x-litellm-version",
    "x-litellm-model-api-base",
    "x-litellm-model-region",
    "x-litellm-model-id",
    "x-litellm-model-group",
    "x-litellm-model_group",
    "x-litellm-cache-key",
    "x-litellm-response-cost-original",
    "x-litellm-response-cost-discount-amount",
    "x-litellm-response-cost-margin-amount",
    "x-litellm-response-cost-margin-percent",
    "x-litellm-overhead-duration-ms",
    "x-litellm-callback-duration-ms",
    "x-litellm-timing-pre-processing-ms",
    "x-litellm-timing-llm-api-ms",
    "x-litellm-timing-post-processing-ms",
    "x-litellm-timing-message-copy-ms",
    "x-litellm-attempted-retries",
    "x-litellm-max-retries",
    "x-litellm-attempted-fallbacks",
    "x-litellm-fallback-errors",
    "x-litellm-timeout",
    "x-litellm-fastest_response_batch_completion",
    "x-litellm-applied-guardrails",
    "x-litellm-applied-policies",
    "x-litellm-policy-sources",
    "x-litellm-semantic-similarity",
    "x-litellm-semantic-filter",
    "x-litellm-semantic-filter-tools",
    "x-litellm-saturation",
    "x-litellm-rate-limiter-version",
    "x-litellm-request-prioritization-used",
    "x-litellm-adaptive-router-model",
    "x-litellm-quality-router-model",
    "x-litellm-quality-router-tier",
    "x-litellm-quality-router-via",
    "x-litellm-quality-router-keyword",
    "x-litellm-quality-router-complexity",
)
FORBIDDEN_BODY = json.dumps(
    {
        "error": {
            "message": "agent-platform tenant gateway: only inference and MCP routes are served here "
            "(/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /v1/model/info, /mcp/)",
            "type": "forbidden",
            "code": "route_not_allowed",
        }
    },
    sort_keys=True,
)
METHOD_BODY = json.dumps(
    {
        "error": {
            "message": "agent-platform tenant gateway: method not allowed on this route",
            "type": "method_not_allowed",
            "code": "method_not_allowed",
        }
    },
    sort_keys=True,
)


@dataclass(frozen=True)
class NginxPaths:
    """Where the rendered configuration points nginx (the pod mounts these; tests use a temp dir)."""

    pid: str = "/tmp/nginx.pid"
    temp: str = CACHE_DIR
    access_log: str = "/dev/stdout"
    error_log: str = "/dev/stderr"


def _quoted(text: str) -> str:
    """An nginx single-quoted string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _only_headers(headers: tuple[str, ...] | None) -> list[str]:
    """A location's request headers: only ``headers`` (an empty value is not sent), plus the server's own settings,
    which a location with proxy_set_header of its own no longer inherits."""
    if headers is None:
        return []
    variables = {"Content-Type": "$content_type"}
    return [
        "      proxy_pass_request_headers off;",
        '      proxy_set_header Connection "";',
        "      proxy_set_header X-Forwarded-For $remote_addr;",
        *(f"      proxy_set_header {h} {variables.get(h, '$http_' + h.lower().replace('-', '_'))};" for h in headers),
    ]


def nginx_conf(
    upstream: str,
    *,
    listen: str = "",
    port: int = LISTEN_PORT,
    health_port: int = HEALTH_PORT,
    paths: NginxPaths = NginxPaths(),
    routes: Sequence[Route] = ROUTES,
    body_limit: str = BODY_LIMIT,
    read_timeout_s: int = READ_TIMEOUT_S,
    workers: int = 2,
) -> str:
    """The complete nginx.conf. ``upstream`` is ``host:port`` of LiteLLM's ClusterIP Service (tests: a stub);
    ``listen`` binds an address (tests use 127.0.0.1), empty means every address."""
    bind = f"{listen}:" if listen else ""
    lines = [
        # The module's path before issue 21: the header is part of the config, whose hash rolls the pods.
        "# Rendered by components/gateway_proxy.py (agent-platform tenant gateway): do not edit by hand.",
        "daemon off;",
        f"worker_processes {workers};",
        f"pid {paths.pid};",
        f"error_log {paths.error_log} warn;",
        "",
        f"events {{ worker_connections {STREAM_WORKER_CONNECTIONS}; }}",
        "",
        "http {",
        "  server_tokens off;",
        "  default_type application/json;",
        "  log_format tenant_gateway '$remote_addr $request_method $uri $status $body_bytes_sent '",
        "                            '$request_time upstream=$upstream_status';",
        f"  access_log {paths.access_log} tenant_gateway;",
        f"  client_body_temp_path {paths.temp}/client_body;",
        f"  proxy_temp_path {paths.temp}/proxy;",
        f"  fastcgi_temp_path {paths.temp}/fastcgi;",
        f"  uwsgi_temp_path {paths.temp}/uwsgi;",
        f"  scgi_temp_path {paths.temp}/scgi;",
        f"  client_max_body_size {body_limit};",
        "  client_body_buffer_size 1m;",
        "  keepalive_timeout 75s;",
        "",
        "  upstream litellm {",
        f"    server {upstream};",
        "    keepalive 32;",
        "    keepalive_timeout 4s;  # below uvicorn's 5 s: never reuse a connection LiteLLM is closing",
        "  }",
        "",
        "  server {",
        f"    listen {bind}{port};",
        "    # Streaming: events go out as LiteLLM writes them; long generations keep the connection.",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_buffering off;",
        "    proxy_cache off;",
        "    proxy_connect_timeout 5s;",
        f"    proxy_read_timeout {read_timeout_s}s;",
        f"    proxy_send_timeout {read_timeout_s}s;",
        "    # Backend fingerprints out of every response (HIDDEN_RESPONSE_HEADERS).",
        *(f"    proxy_hide_header {header};" for header in HIDDEN_RESPONSE_HEADERS),
        "",
    ]
    for route in routes:
        methods = "|".join(route.methods)
        lines += [
            f"    location = {route.path} {{",
            f"      if ($request_method !~ ^({methods})$) {{ return 405 {_quoted(METHOD_BODY)}; }}",
            *_only_headers(route.headers),
            f"      proxy_pass http://litellm{route.upstream or route.path};",
            "    }",
        ]
    lines += [
        "",
        "    # Everything else (admin UI, key/user/team/spend management, metrics, config): refused here.",
        f"    location / {{ return 403 {_quoted(FORBIDDEN_BODY)}; }}",
        "  }",
        "",
        "  server {",
        f"    listen {bind}{health_port};",
        "    access_log off;",
        '    location = /healthz { return 200 \'{"status":"ok"}\'; }',
        "    location / { return 404; }",
        "  }",
        "}",
        "",
    ]
    return "\n".join(lines)


def pod_template(image: str, config_hash: str) -> dict[str, Any]:
    """nginx pod: core nodes, spread over zones, non-root, read-only root with emptyDirs for the pid file and
    temp files, every capability dropped, seccomp RuntimeDefault, no service account token."""
    probe = {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10, "timeoutSeconds": 3}
    nginx = {
        "name": "nginx",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # nginx itself, not the image's entrypoint scripts (they rewrite files under /etc/nginx).
        "command": ["nginx", "-c", CONF_PATH],
        "ports": [
            {"name": "http", "containerPort": LISTEN_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "securityContext": container_security_context(NGINX_UID, read_only_root=True),
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "config", "mountPath": CONF_PATH, "subPath": "nginx.conf", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "cache", "mountPath": CACHE_DIR},
        ],
    }
    volumes = [
        {"name": "config", "configMap": {"name": CONFIG_MAP, "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "cache", "emptyDir": {"sizeLimit": "512Mi"}},  # request bodies above 1 MiB
    ]
    # Open SSE streams get time to finish (nginx's image stops with SIGQUIT: graceful shutdown).
    return core_pod_template(
        SELECTOR,
        config_hash,
        uid=NGINX_UID,
        grace_seconds=60,
        spread=topology_spread(SELECTOR),
        containers=[nginx],
        volumes=volumes,
    )


@dataclass(frozen=True)
class TenantGatewayArgs:
    namespace: str
    image: str
    replicas: int
    upstream: str  # host:port of LiteLLM's ClusterIP Service
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class TenantGateway(pulumi.ComponentResource):
    """nginx Deployment (2+ replicas over zones) with its rendered config and a disruption budget; the caller's
    NLB Service selects :data:`SELECTOR` on :data:`LISTEN_PORT`."""

    nginx_conf: str

    def __init__(self, name: str, args: TenantGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:TenantGateway", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        labels = {"app.kubernetes.io/part-of": "agent-platform", **SELECTOR}
        self.nginx_conf = nginx_conf(args.upstream)
        config_hash = hashlib.sha256(self.nginx_conf.encode()).hexdigest()[:16]
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": args.namespace, "labels": labels},
            data={"nginx.conf": self.nginx_conf},
            opts=k8s_opts,
        )
        metadata = {"name": APP, "namespace": args.namespace, "labels": labels}
        after_config = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[config]))
        template = pod_template(args.image, config_hash)
        rolling_deployment(f"{name}-nginx", metadata, SELECTOR, max(2, args.replicas), template, after_config)
        keep_one_available(f"{name}-pdb", metadata, SELECTOR, k8s_opts)
        self.register_outputs({"configHash": config_hash})


def tenant_nlb(name: str, vpc_cidr: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    """The internal cross-zone NLB in front of the nginx pods, open to the VPC only: what sandboxes call (Kata pods
    reach no ClusterIP). ``opts`` must wait for the AWS Load Balancer Controller, whose webhook admits it."""
    return k8s.core.v1.Service(
        name, metadata=service_metadata(TENANT_GATEWAY, PART_OF), spec=service_spec(TENANT_GATEWAY, vpc_cidr), opts=opts
    )
