"""Egress proxy: Squid on core nodes, one proxy user and one domain allowlist per tenant.

Sandboxes (Kata pods) cannot reach ClusterIPs, so the proxy sits behind an internal, cross-zone NLB like
LiteLLM (components/gateway.py). Each tenant's pods get ``HTTPS_PROXY``/``HTTP_PROXY`` with their tenant's
user and password (a per-tenant Secret built here and copied into the tenant namespace by
components/agents.py), and the tenant NetworkPolicy lets them reach only the VPC resolver, the LiteLLM NLB,
this NLB and the tenant's own CIDRs (components/podspec.py ``sandbox_egress_rules``). A client that ignores
the proxy settings therefore gets nowhere.

Squid rules (:func:`squid_conf`, a pure function run for real by tests/test_egress.py):

- basic authentication against an htpasswd file (MD5-crypt, from a Secret); no or wrong credentials: 407;
- per tenant ``acl <t>_user proxy_auth <user>`` and ``acl <t>_domains dstdomain -n ...`` (``*.x`` -> ``.x``);
- CONNECT only to port 443, plain HTTP only to port 80 (chat APIs and package indexes need nothing else);
- raw IP destinations only inside the tenant's ``cidrs``; any name resolving into a private, CGNAT,
  loopback, link-local (instance metadata) or reserved range is refused, which also stops DNS rebinding;
- everything else: 403 with a page saying the domain is not on the tenant's allowlist, logged with the
  tenant (proxy user), domain, status and bytes (``logformat egress``);
- no caching, no ``Via``/``X-Forwarded-For`` (pod addresses stay inside).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import EgressConfig, TenantConfig
from components.gateway import NLB_ANNOTATIONS, NLB_CLASS
from components.labels import CORE_NODE_SELECTOR, EGRESS_NAMESPACE
from components.podspec import PROXY_PORT, container_security_context, topology_spread

NAMESPACE = EGRESS_NAMESPACE
APP = "egress-proxy"
NLB_SERVICE = "egress-proxy-nlb"
CONFIG_MAP = "egress-proxy-config"
HTPASSWD_SECRET = "egress-proxy-htpasswd"
TENANT_PROXY_SECRET = "egress-proxy"  # in each tenant namespace: HTTPS_PROXY, HTTP_PROXY, NO_PROXY
SELECTOR = {"app.kubernetes.io/name": APP}
SQUID_UID = 13  # the "proxy" user of Debian/Ubuntu's squid package
CONF_DIR = "/etc/squid"
AUTH_DIR = "/etc/squid/auth"
LOG_DIR = "/var/log/squid"
RUN_DIR = "/run/squid"
SPOOL_DIR = "/var/spool/squid"
ERROR_PAGE = "ERR_EGRESS_DENIED"
LOG_FORMAT = "egress"
# Destinations no tenant reaches by name: RFC 1918, CGNAT, loopback, link-local (instance metadata),
# "this network", benchmarking, multicast/reserved, and their IPv6 counterparts.
BLOCKED_DESTINATIONS: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::1", "fc00::/7", "fe80::/10",
)  # fmt: skip
MTAIL_PORT = 3903
MTAIL_DIR = "/etc/mtail"
MTAIL_UID = 65534  # nobody; the image (FROM scratch) has no user of its own
# Alert when one tenant gets more than this many denials within DENIED_BURST_WINDOW.
DENIED_BURST_THRESHOLD = 30
DENIED_BURST_WINDOW = "5m"
ROTATE_SECONDS = 3600  # the access log is rotated hourly (one old file kept) so its emptyDir never fills up


# ----------------------------------------------------------------------------------------------
# Pure rendering (no Pulumi): tested against the real Squid


@dataclass(frozen=True)
class ProxyTenant:
    name: str  # tenant name; also its proxy user, so the access log names the tenant
    domains: tuple[str, ...]  # exact names and "*.example.com"
    cidrs: tuple[str, ...] = ()

    @property
    def acl(self) -> str:
        return "t_" + self.name.replace("-", "_")

    @classmethod
    def of(cls, tenant: TenantConfig) -> ProxyTenant:
        return cls(tenant.name, tenant.egress_domains, tenant.egress_cidrs)


@dataclass(frozen=True)
class SquidPaths:
    """Where the rendered configuration points Squid (the Deployment mounts these; tests use temp dirs)."""

    htpasswd: str = f"{AUTH_DIR}/htpasswd"
    # Squid looks custom pages up only in error_directory, which must then hold every template: the container
    # copies the image's templates and the platform's page there at start (squid_command).
    error_directory: str = f"{SPOOL_DIR}/errors"
    access_log: str = f"{LOG_DIR}/access.log"
    cache_log: str = f"{LOG_DIR}/cache.log"
    pid_file: str = f"{RUN_DIR}/squid.pid"
    coredump_dir: str = SPOOL_DIR
    ncsa_auth: str = "/usr/lib/squid/basic_ncsa_auth"
    hosts_file: str | None = None  # None: Squid's default /etc/hosts


def squid_domains(domains: Iterable[str]) -> list[str]:
    """Config domains -> Squid dstdomain entries: ``*.x`` becomes ``.x`` (x and its subdomains), and entries a
    wildcard already covers are dropped (Squid warns about overlapping dstdomain entries)."""
    entries = {f".{d[2:]}" if d.startswith("*.") else d for d in domains}
    wildcards = {e[1:] for e in entries if e.startswith(".")}

    def redundant(entry: str) -> bool:
        name = entry.lstrip(".")
        return any(name.endswith(f".{w}") or (name == w and not entry.startswith(".")) for w in wildcards)

    return sorted((e for e in entries if not redundant(e)), key=lambda e: (e.lstrip("."), e))


def error_page(contact: str = "your platform team") -> str:
    """The body of the 403 Squid returns for anything outside a tenant's allowlist (%H: the domain)."""
    return (
        "<html><head><title>403 egress denied</title></head><body><h1>Egress denied</h1>\n"
        "<p>%H is not on this tenant's egress allowlist (agent-platform egress proxy).</p>\n"
        f"<p>Ask {contact} to add it to the tenant's <code>egress.domains</code> (see docs/egress.md).</p>\n"
        "</body></html>\n"
    )


def squid_conf(
    tenants: Sequence[ProxyTenant],
    *,
    port: int = PROXY_PORT,
    paths: SquidPaths = SquidPaths(),
    blocked: Sequence[str] = BLOCKED_DESTINATIONS,
    listen: str = "",
    tls_ports: Sequence[int] = (443,),
    http_ports: Sequence[int] = (80,),
) -> str:
    """The complete squid.conf. ``listen`` binds an address (tests use 127.0.0.1); empty means every address.
    CONNECT goes only to ``tls_ports`` and plain HTTP only to ``http_ports`` (tests add their server's port)."""
    lines = [
        "# Rendered by components/egress.py (agent-platform egress proxy): do not edit by hand.",
        f"http_port {listen + ':' if listen else ''}{port}",
        "visible_hostname egress-proxy",
        f"pid_filename {paths.pid_file}",
        f"coredump_dir {paths.coredump_dir}",
        *([f"hosts_file {paths.hosts_file}"] if paths.hosts_file else []),
        "",
        "# No cache: a forward proxy for API traffic, nothing worth keeping.",
        "cache deny all",
        "cache_mem 0 MB",
        "netdb_filename none",
        "pinger_enable off",
        "shutdown_lifetime 3 seconds",
        "via off",
        "forwarded_for delete",
        "httpd_suppress_version_string on",
        "",
        "# Logs: one line per request with the tenant (proxy user), domain, status and bytes.",
        f"logformat {LOG_FORMAT} %ts.%03tu tenant=%un client=%>a method=%rm domain=%>rd port=%>rP status=%>Hs result=%Ss bytes_out=%>st bytes_in=%<st",  # noqa: E501
        f"access_log stdio:{paths.access_log} {LOG_FORMAT}",
        f"cache_log {paths.cache_log}",
        "logfile_rotate 1",
        "",
        "# Authentication: one user per tenant (htpasswd from a Kubernetes Secret).",
        f"auth_param basic program {paths.ncsa_auth} {paths.htpasswd}",
        "auth_param basic children 5 startup=1 idle=1",
        "auth_param basic realm agent-platform egress proxy",
        "auth_param basic credentialsttl 5 minutes",
        "",
        f"acl SSL_ports port {' '.join(map(str, tls_ports))}",
        f"acl Safe_ports port {' '.join(map(str, dict.fromkeys((*http_ports, *tls_ports))))}",
        "acl CONNECT method CONNECT",
        "acl authenticated proxy_auth REQUIRED",
        r"acl raw_ip dstdom_regex -n ^[0-9.]+$ ^\[?[0-9a-fA-F:]+\]?$",
        f"acl blocked_destinations dst {' '.join(blocked)}" if blocked else "",
        "acl egress_denied src all",
    ]
    for tenant in tenants:
        lines.append(f"acl {tenant.acl}_user proxy_auth {tenant.name}")
        domains = squid_domains(tenant.domains)
        if domains:
            lines.append(f"acl {tenant.acl}_domains dstdomain -n {' '.join(domains)}")
        if tenant.cidrs:
            lines.append(f"acl {tenant.acl}_cidrs dst {' '.join(tenant.cidrs)}")
    lines += [
        "",
        "# Order matters: ports, then credentials (407), then per-tenant raw IPs, then the blocked ranges, then",
        "# per-tenant domains; anything left gets the egress-denied 403.",
        "http_access deny !Safe_ports egress_denied",
        "http_access deny CONNECT !SSL_ports egress_denied",
        "http_access deny !authenticated",
    ]
    for tenant in tenants:
        if tenant.cidrs:
            lines.append(f"http_access allow {tenant.acl}_user raw_ip {tenant.acl}_cidrs")
    lines.append("http_access deny raw_ip egress_denied")
    if blocked:
        lines.append("http_access deny blocked_destinations egress_denied")
    for tenant in tenants:
        if tenant.domains:
            lines.append(f"http_access allow {tenant.acl}_user {tenant.acl}_domains")
    lines += [
        "http_access deny egress_denied",
        f"error_directory {paths.error_directory}",
        f"deny_info 403:{ERROR_PAGE} egress_denied",
        "",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


# mtail turns Squid's access log (logformat egress) into per-tenant counters; tests/test_egress.py runs it
# (Debian's mtail) on the log the real Squid wrote. decision: allowed, denied (403) or auth_required (407, no
# tenant known yet: tenant="-"). bytes: out = what the sandbox sent, in = what it received.
MTAIL_PROGRAM = r"""# Rendered by components/egress.py: Squid access log (logformat egress) -> Prometheus counters.
counter egress_requests_total by tenant, decision
counter egress_bytes_total by tenant, direction

/^\d+\.\d+ tenant=(?P<tenant>\S+) client=\S+ method=\S+ domain=\S+ port=\S+ status=(?P<status>\d+) result=(?P<result>\S+) bytes_out=(?P<bytes_out>\d+) bytes_in=(?P<bytes_in>\d+)$/ {
  $status == 407 {
    egress_requests_total[$tenant]["auth_required"]++
  } else {
    $result =~ /DENIED/ {
      egress_requests_total[$tenant]["denied"]++
    } else {
      egress_requests_total[$tenant]["allowed"]++
    }
  }
  egress_bytes_total[$tenant]["out"] += $bytes_out
  egress_bytes_total[$tenant]["in"] += $bytes_in
}
"""


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


# MD5-crypt ($1$), which Squid's basic_ncsa_auth verifies on every platform (crypt_md5.cc); computed here in
# pure Python so the htpasswd never depends on the operator's libc. The passwords are 40 random characters,
# so the hash's age is no weakness.
_CRYPT64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def md5_crypt(password: str, salt: str) -> str:
    """``$1$<salt>$<hash>`` as crypt(3) and ``openssl passwd -1`` compute it."""
    salt = salt[:8]
    pw, magic, sb = password.encode(), b"$1$", salt.encode()
    alt = hashlib.md5(pw + sb + pw).digest()
    ctx = pw + magic + sb
    length = len(pw)
    while length > 0:
        ctx += alt[: min(16, length)]
        length -= 16
    i = len(pw)
    while i:
        ctx += b"\x00" if i & 1 else pw[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for round_ in range(1000):
        step = (pw if round_ & 1 else final) + (sb if round_ % 3 else b"") + (pw if round_ % 7 else b"")
        step += final if round_ & 1 else pw
        final = hashlib.md5(step).digest()

    def b64(a: int, b: int, c: int, n: int) -> str:
        value = (a << 16) | (b << 8) | c
        out = ""
        for _ in range(n):
            out += _CRYPT64[value & 0x3F]
            value >>= 6
        return out

    f = final
    encoded = (
        b64(f[0], f[6], f[12], 4) + b64(f[1], f[7], f[13], 4) + b64(f[2], f[8], f[14], 4)
        + b64(f[3], f[9], f[15], 4) + b64(f[4], f[10], f[5], 4) + b64(0, 0, f[11], 2)
    )  # fmt: skip
    return f"$1${salt}${encoded}"


def htpasswd_line(user: str, password: str) -> str:
    """``user:$1$salt$hash`` with a salt derived from the user and password, so the file is stable across runs
    (no rollout on every ``pulumi up``) yet differs between tenants."""
    digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
    salt = "".join(_CRYPT64[b & 0x3F] for b in digest[:8])
    return f"{user}:{md5_crypt(password, salt)}"


def htpasswd(passwords: dict[str, str]) -> str:
    return "".join(f"{htpasswd_line(user, pw)}\n" for user, pw in sorted(passwords.items()))


def proxy_url(user: str, password: str, host: str, port: int = PROXY_PORT) -> str:
    return f"http://{user}:{password}@{host}:{port}"


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


def proxy_pod_spec(image: str, mtail_image: str, config_hash: str) -> dict[str, Any]:
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
    volumes.append({"name": "mtail", "configMap": {"name": CONFIG_MAP, "items": [{"key": "egress.mtail", "path": "egress.mtail"}]}})  # fmt: skip
    probe = {"tcpSocket": {"port": PROXY_PORT}, "periodSeconds": 10, "timeoutSeconds": 3}
    return {
        "metadata": {"labels": dict(SELECTOR), "annotations": {"agent-platform.io/config-hash": config_hash}},
        "spec": {
            "nodeSelector": dict(CORE_NODE_SELECTOR),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 15,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": SQUID_UID,
                "runAsGroup": SQUID_UID,
                "fsGroup": SQUID_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "topologySpreadConstraints": topology_spread(SELECTOR, zone="ScheduleAnyway", hosts=False),
            "containers": [
                {
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
                },
                mtail,
            ],
            "volumes": volumes,
        },
    }


@dataclass(frozen=True)
class EgressProxyArgs:
    config: EgressConfig
    tenants: tuple[TenantConfig, ...]
    provider: k8s.Provider
    vpc_cidr: str  # NLB source range: only the VPC reaches the proxy
    lb_controller: pulumi.Resource | None = None  # its webhook must admit the LoadBalancer Service
    monitoring: pulumi.Resource | None = None  # kube-prometheus-stack (PodMonitor/PrometheusRule CRDs)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the core node group


class EgressProxy(pulumi.ComponentResource):
    """Squid behind an internal cross-zone NLB; ``tenant_proxy_urls[tenant]`` is that tenant's proxy URL
    (``http://<tenant>:<password>@<nlb>:3128``, a secret)."""

    hostname: pulumi.Output[str]
    tenant_proxy_urls: dict[str, pulumi.Output[str]]
    squid_conf: str

    def __init__(self, name: str, args: EgressProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:egress:EgressProxy", name, None, opts)

        def k8s_opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(depends_on))

        labels = {"app.kubernetes.io/part-of": "agent-platform", **SELECTOR}
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": NAMESPACE,
                "labels": {
                    "app.kubernetes.io/part-of": "agent-platform",
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=k8s_opts(*args.depends_on),
        )
        self.namespace = ns  # NetworkPolicies wait for it (components/network_policies.py)
        passwords = {
            t.name: random.RandomPassword(
                f"{name}-{t.name}-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
            ).result
            for t in args.tenants
        }
        self.squid_conf = squid_conf([ProxyTenant.of(t) for t in args.tenants])
        config_hash = hashlib.sha256((self.squid_conf + error_page() + MTAIL_PROGRAM).encode()).hexdigest()[:16]
        k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": NAMESPACE, "labels": labels},
            data={"squid.conf": self.squid_conf, ERROR_PAGE: error_page(), "egress.mtail": MTAIL_PROGRAM},
            opts=k8s_opts(ns),
        )
        names = sorted(passwords)
        htpasswd_text = pulumi.Output.secret(
            pulumi.Output.all(*(passwords[n] for n in names)).apply(
                lambda values: htpasswd(dict(zip(names, values, strict=True)))
            )
        )
        secret = k8s.core.v1.Secret(
            f"{name}-htpasswd",
            metadata={"name": HTPASSWD_SECRET, "namespace": NAMESPACE, "labels": labels},
            type="Opaque",
            string_data={"htpasswd": htpasswd_text},
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[ns], additional_secret_outputs=["data", "stringData"]
            ),
        )
        template = proxy_pod_spec(args.config.squid_image, args.config.mtail_image, config_hash)
        k8s.apps.v1.Deployment(
            f"{name}-squid",
            metadata={"name": APP, "namespace": NAMESPACE, "labels": labels},
            spec={
                "replicas": args.config.replicas,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": dict(SELECTOR)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": template,
            },
            opts=k8s_opts(ns, secret),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": APP, "namespace": NAMESPACE, "labels": labels},
            spec={"minAvailable": 1, "selector": {"matchLabels": dict(SELECTOR)}},
            opts=k8s_opts(ns),
        )
        nlb = k8s.core.v1.Service(
            f"{name}-nlb",
            metadata={
                "name": NLB_SERVICE,
                "namespace": NAMESPACE,
                "labels": labels,
                "annotations": dict(NLB_ANNOTATIONS),
            },
            spec={
                "type": "LoadBalancer",
                "loadBalancerClass": NLB_CLASS,
                "selector": dict(SELECTOR),
                "ports": [{"name": "proxy", "port": PROXY_PORT, "targetPort": PROXY_PORT, "protocol": "TCP"}],
                "loadBalancerSourceRanges": [args.vpc_cidr],
            },
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


def allowlists(tenants: Iterable[TenantConfig]) -> dict[str, dict[str, list[str]]]:
    """Tenant -> the domains and CIDRs it may reach (what the proxy and the NetworkPolicy enforce)."""
    return {t.name: {"domains": list(t.egress_domains), "cidrs": list(t.egress_cidrs)} for t in tenants}
