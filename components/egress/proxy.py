"""Egress proxy: Squid on core nodes behind an internal NLB, one proxy user and one domain allowlist per tenant.

The tenant NetworkPolicy lets sandboxes reach only this proxy, the LiteLLM NLB, the resolver and their own CIDRs, so
a client that ignores the proxy settings gets nowhere. Rules: components/egress/squid.py; details: docs/egress.md#two-layers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import EgressConfig, TenantConfig
from components.contracts.egress import APP, MTAIL_PORT, NAMESPACE, PROXY, PROXY_PORT, SELECTOR
from components.contracts.labels import PART_OF
from components.egress.squid import (
    AUTH_DIR,
    CONF_DIR,
    DENIED_BURST_THRESHOLD,
    DENIED_BURST_WINDOW,
    ERROR_PAGE,
    LOG_DIR,
    MTAIL_DIR,
    MTAIL_PROGRAM,
    MTAIL_UID,
    ROTATE_SECONDS,
    RUN_DIR,
    SPOOL_DIR,
    SQUID_UID,
    ProxyTenant,
    SquidPaths,
    error_page,
    htpasswd,
    proxy_url,
    shard_htpasswd_lines,
    shard_proxy_tenants,
    squid_conf,
)
from components.k8s.podspec import container_security_context, core_pod_template, topology_spread
from components.k8s.reach import service_metadata, service_spec
from components.k8s.resources import child_options, keep_one_available, platform_namespace, rolling_deployment
from components.tenants.lifecycle import former_aliases

CONFIG_MAP = "egress-proxy-config"
HTPASSWD_SECRET = "egress-proxy-htpasswd"


# ----------------------------------------------------------------------------------------------
# Monitoring


def pod_monitor_spec() -> dict[str, Any]:
    return {
        "selector": {"matchLabels": dict(SELECTOR)},
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
    }


def prometheus_rule_spec() -> dict[str, Any]:
    denied = f'sum by (tenant) (increase(egress_requests_total{{decision="denied"}}[{DENIED_BURST_WINDOW}]))'
    return {
        "groups": [
            {
                "name": "agent-platform-egress",
                "rules": [
                    {
                        "alert": "EgressDeniedBurst",
                        "expr": f"{denied} > {DENIED_BURST_THRESHOLD}",
                        "for": "2m",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "Tenant {{ $labels.tenant }}: burst of denied egress requests",
                            "description": (
                                f'{{{{ $value | printf "%.0f" }}}} requests from tenant {{{{ $labels.tenant }}}} were '
                                f"refused by the egress proxy in {DENIED_BURST_WINDOW}: a missing domain on its "
                                "allowlist, or an agent trying to reach somewhere it should not. The proxy's access "
                                "log names the domains."
                            ),
                        },
                    },
                    {
                        "alert": "EgressProxyDown",
                        "expr": f'sum(up{{namespace="{NAMESPACE}"}}) < 1 or absent(up{{namespace="{NAMESPACE}"}})',
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "No egress proxy pod is scraped: sandboxes cannot reach their chat platforms",
                        },
                    },
                ],
            }
        ]
    }


# ----------------------------------------------------------------------------------------------
# Kubernetes objects


SQUID_TEMPLATES = "/usr/share/squid/errors/templates"  # Debian/Ubuntu package layout


def prepare_error_directory(error_directory: str, page_source: str, templates: str = SQUID_TEMPLATES) -> str:
    """Shell lines filling ``error_directory`` with Squid's templates and the platform's 403 page."""
    return (
        f"mkdir -p {error_directory} && cp {templates}/* {error_directory}/ "
        f"&& cp {page_source} {error_directory}/{ERROR_PAGE}\n"
    )


def squid_command(
    conf: str = f"{CONF_DIR}/squid.conf",
    *,
    error_directory: str = SquidPaths().error_directory,
    page_source: str = f"{CONF_DIR}/{ERROR_PAGE}",
    rotate_seconds: int = ROTATE_SECONDS,
    squid: str = "squid",
) -> list[str]:
    """The proxy container's entrypoint (tests/test_egress.py starts the real Squid with it): fill the error
    directory, run Squid in the foreground, ``squid -k rotate`` every ``rotate_seconds`` so the access log
    (read by the metrics sidecar) stays small, and pass TERM on so Squid drains within shutdown_lifetime."""
    script = (
        "set -e\n"
        + prepare_error_directory(error_directory, page_source)
        + "set +e\n"
        + f"{squid} -N -f {conf} & pid=$!\n"
        + "trap 'kill -TERM $pid; wait $pid; exit 0' TERM INT\n"
        + f"while kill -0 $pid 2>/dev/null; do sleep {rotate_seconds} & wait $!; {squid} -f {conf} -k rotate; done\n"
        + "wait $pid\n"
    )
    return ["/bin/sh", "-c", script]


def proxy_pod_spec(image: str, mtail_image: str, config_hash: pulumi.Input[str]) -> dict[str, Any]:
    """Squid pod: core nodes, non-root (the image's proxy user), read-only root, every capability dropped;
    an mtail sidecar reads the access log and serves per-tenant metrics on :3903."""
    volumes = [
        {"name": "config", "configMap": {"name": CONFIG_MAP, "defaultMode": 0o444}},
        {"name": "htpasswd", "secret": {"secretName": HTPASSWD_SECRET, "defaultMode": 0o440}},
        {"name": "logs", "emptyDir": {"sizeLimit": "2Gi"}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "spool", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    mounts = [
        {"name": "config", "mountPath": f"{CONF_DIR}/squid.conf", "subPath": "squid.conf", "readOnly": True},
        {"name": "config", "mountPath": f"{CONF_DIR}/{ERROR_PAGE}", "subPath": ERROR_PAGE, "readOnly": True},
        {"name": "htpasswd", "mountPath": AUTH_DIR, "readOnly": True},
        {"name": "logs", "mountPath": LOG_DIR},
        {"name": "run", "mountPath": RUN_DIR},
        {"name": "spool", "mountPath": SPOOL_DIR},
    ]
    mtail = {
        "name": "mtail",
        "image": mtail_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/mtail"],
        "args": [
            f"-progs={MTAIL_DIR}",
            f"-logs={LOG_DIR}/access.log",
            f"-port={MTAIL_PORT}",
            "-logtostderr",
            "-emit_prog_label=false",
        ],
        "ports": [{"name": "metrics", "containerPort": MTAIL_PORT, "protocol": "TCP"}],
        # Reads the log as a member of the squid group (fsGroup); the log is the proxy user's.
        "securityContext": container_security_context(MTAIL_UID, read_only_root=True, gid=SQUID_UID),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": MTAIL_PORT}, "periodSeconds": 15},
        "volumeMounts": [
            {"name": "mtail", "mountPath": MTAIL_DIR, "readOnly": True},
            {"name": "logs", "mountPath": LOG_DIR, "readOnly": True},
        ],
    }
    volumes.append(
        {"name": "mtail", "configMap": {"name": CONFIG_MAP, "items": [{"key": "egress.mtail", "path": "egress.mtail"}]}}
    )
    probe = {"tcpSocket": {"port": PROXY_PORT}, "periodSeconds": 10, "timeoutSeconds": 3}
    squid = {
        "name": "squid",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": squid_command(),
        "ports": [{"name": "proxy", "containerPort": PROXY_PORT, "protocol": "TCP"}],
        "securityContext": container_security_context(SQUID_UID, read_only_root=True),
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": mounts,
    }
    return core_pod_template(
        SELECTOR,
        config_hash,
        uid=SQUID_UID,
        grace_seconds=15,
        spread=topology_spread(SELECTOR, zone="ScheduleAnyway", hosts=False),
        containers=[squid, mtail],
        volumes=volumes,
    )


@dataclass(frozen=True)
class EgressProxyArgs:
    config: EgressConfig
    tenants: tuple[TenantConfig, ...]
    vpc_cidr: str  # NLB source range: only the VPC reaches the proxy
    lb_controller: pulumi.Resource | None = None  # its webhook must admit the LoadBalancer Service
    monitoring: pulumi.Resource | None = None  # kube-prometheus-stack (PodMonitor/PrometheusRule CRDs)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the core node group
    # Tenants of shard stacks (docs/shards.md): each shard's allowlists (JSON) and htpasswd lines (secret) as it
    # exports them, {stack: text}; parsed and checked here (components/egress/squid.py). A shard hashes its
    # own passwords: the platform never sees them. Both None in single-stack mode.
    shard_allowlists: pulumi.Input[Mapping[str, str | None]] | None = None
    shard_users: pulumi.Input[Mapping[str, str | None]] | None = None


class EgressProxy(pulumi.ComponentResource):
    """Squid behind an internal cross-zone NLB; ``tenant_proxy_urls[tenant]`` is that tenant's proxy URL
    (``http://<tenant>:<password>@<nlb>:3128``, a secret)."""

    hostname: pulumi.Output[str]
    tenant_proxy_urls: dict[str, pulumi.Output[str]]
    squid_conf: str

    def __init__(self, name: str, args: EgressProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:egress:EgressProxy", name, None, opts)

        k8s_opts = child_options(self)

        labels = {**PART_OF, **SELECTOR}
        ns = platform_namespace(
            name, NAMESPACE, {"enforce": "restricted", "enforce-version": "latest"}, k8s_opts(*args.depends_on)
        )
        self.namespace = ns  # NetworkPolicies wait for it (components/network/network_policies.py)
        passwords = {
            t.name: random.RandomPassword(
                f"{name}-{t.name}-password",
                length=40,
                special=False,
                opts=pulumi.ResourceOptions(parent=self, aliases=former_aliases(f"{name}-", t, "-password")),
            ).result
            for t in args.tenants
        }
        # A decommissioned tenant's proxy user is dropped (its password is kept for a re-activation): no credential
        # of it stays valid (docs/tenants.md).
        serving = [t for t in args.tenants if not t.decommissioned]
        local = [ProxyTenant.of(t) for t in serving]
        owners = [t.name for t in args.tenants]  # a shard cannot serve a tenant of this stack (one owner per tenant)
        self.squid_conf = squid_conf(local)
        conf: pulumi.Input[str] = self.squid_conf
        if args.shard_allowlists is not None:
            conf = pulumi.Output.from_input(args.shard_allowlists).apply(  # one order for all tenants
                lambda texts: squid_conf(sorted(local + shard_proxy_tenants(texts, owners), key=lambda t: t.name))
            )
        config_hash = (
            _config_hash(conf) if isinstance(conf, str) else pulumi.Output.from_input(conf).apply(_config_hash)
        )
        k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": NAMESPACE, "labels": labels},
            data={"squid.conf": conf, ERROR_PAGE: error_page(), "egress.mtail": MTAIL_PROGRAM},
            opts=k8s_opts(ns),
        )
        names = sorted(t.name for t in serving)
        htpasswd_text = pulumi.Output.secret(
            pulumi.Output.all(
                args.shard_users or {}, args.shard_allowlists or {}, *(passwords[n] for n in names)
            ).apply(lambda v: htpasswd(dict(zip(names, v[2:], strict=True)), shard_htpasswd_lines(v[0], owners, v[1])))
        )
        secret = k8s.core.v1.Secret(
            f"{name}-htpasswd",
            metadata={"name": HTPASSWD_SECRET, "namespace": NAMESPACE, "labels": labels},
            type="Opaque",
            string_data={"htpasswd": htpasswd_text},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns], additional_secret_outputs=["data", "stringData"]),
        )
        template = proxy_pod_spec(args.config.squid_image, args.config.mtail_image, config_hash)
        metadata = {"name": APP, "namespace": NAMESPACE, "labels": labels}
        rolling_deployment(f"{name}-squid", metadata, SELECTOR, args.config.replicas, template, k8s_opts(ns, secret))
        keep_one_available(f"{name}-pdb", metadata, SELECTOR, k8s_opts(ns))
        nlb = k8s.core.v1.Service(
            f"{name}-nlb",
            metadata=service_metadata(PROXY, labels),
            spec=service_spec(PROXY, args.vpc_cidr),
            opts=k8s_opts(ns, *([args.lb_controller] if args.lb_controller is not None else [])),
        )
        if args.monitoring is not None:
            # Prometheus selects every PodMonitor and rule (observability.stack_values); CRDs come with the chart.
            for kind, suffix, spec in (
                ("PodMonitor", "monitor", pod_monitor_spec()),
                ("PrometheusRule", "rules", prometheus_rule_spec()),
            ):
                k8s.apiextensions.CustomResource(
                    f"{name}-{suffix}",
                    api_version="monitoring.coreos.com/v1",
                    kind=kind,
                    metadata={"name": APP, "namespace": NAMESPACE, "labels": labels},
                    spec=spec,
                    opts=k8s_opts(ns, args.monitoring),
                )
        self.hostname = nlb.status.apply(lambda status: status.load_balancer.ingress[0].hostname)
        self.tenant_proxy_urls = {
            tenant: pulumi.Output.secret(
                pulumi.Output.all(self.hostname, password).apply(lambda v, t=tenant: proxy_url(t, v[1], v[0]))
            )
            for tenant, password in passwords.items()
        }
        self.register_outputs({"hostname": self.hostname, "allowlists": json.dumps(allowlists(args.tenants))})


def _config_hash(conf: str) -> str:
    """Rolls the proxy pods when the configuration they load changes."""
    return hashlib.sha256((conf + error_page() + MTAIL_PROGRAM).encode()).hexdigest()[:16]


def allowlists(tenants: Iterable[TenantConfig]) -> dict[str, dict[str, list[str]]]:
    """Tenant -> the domains and CIDRs it may reach (what the proxy and the NetworkPolicy enforce)."""
    return {t.name: {"domains": list(t.egress_domains), "cidrs": list(t.egress_cidrs)} for t in tenants}
