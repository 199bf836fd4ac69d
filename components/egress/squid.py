"""Squid configuration for the egress proxy, rendered as pure functions (no Pulumi) so tests run it against the
real Squid (tests/test_egress.py); components/egress/proxy.py deploys it.

The rules of :func:`squid_conf` (per-tenant credentials and domains, ports, refused private ranges, logging):
docs/egress.md#two-layers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import ConfigError, TenantConfig
from components.config.shards import merge_shard_entries
from components.config.tenants import egress_domain, tenant_name
from components.contracts.egress import PROXY_PORT
from components.contracts.networks import NON_INTERNET_IPV4

SQUID_UID = 13  # the "proxy" user of Debian/Ubuntu's squid package
CONF_DIR = "/etc/squid"
AUTH_DIR = "/etc/squid/auth"
LOG_DIR = "/var/log/squid"
RUN_DIR = "/run/squid"
SPOOL_DIR = "/var/spool/squid"
ERROR_PAGE = "ERR_EGRESS_DENIED"
LOG_FORMAT = "egress"
# Destinations no tenant reaches, by name or by address (even inside its own cidrs): what is not the internet
# (RFC 1918, CGNAT, loopback, link-local: instance metadata, "this network"), benchmarking, multicast/reserved, and
# the IPv6 special-purpose ranges (IANA registry) that are not the internet or that embed an IPv4 address, which
# would lead back into the ranges above (tests/test_egress_live.py resolves an allowed name to each kind). IPv4-mapped
# addresses (::ffff:a.b.c.d) are IPv4 to Squid, so the IPv4 ranges cover them; ::ffff:0:0/96 would be every IPv4.
BLOCKED_IPV6: tuple[str, ...] = (
    "::/128",  # unspecified: a connection to it reaches the proxy pod's own loopback
    "::1/128",  # loopback
    "64:ff9b::/96",  # NAT64, well-known prefix (RFC 6052): a NAT64 gateway would carry it to private IPv4
    "64:ff9b:1::/48",  # NAT64, local use (RFC 8215)
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 embeds IPv4)
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4: embeds an IPv4 address
    "3fff::/20",  # documentation (RFC 9637)
    "5f00::/16",  # SRv6 segment identifiers
    "fc00::/7",  # unique local (fd00:ec2::254 is the IPv6 instance metadata address)
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)
BLOCKED_DESTINATIONS: tuple[str, ...] = (
    *NON_INTERNET_IPV4,
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    *BLOCKED_IPV6,
)
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
    nameservers: Sequence[str] = (),
) -> str:
    """The complete squid.conf. ``listen`` binds an address (tests use 127.0.0.1); empty means every address.
    CONNECT goes only to ``tls_ports`` and plain HTTP only to ``http_ports`` (tests add their server's port)."""
    lines = [
        # The module's path before issue 21: the header is part of the config, whose hash rolls the pods.
        "# Rendered by components/egress.py (agent-platform egress proxy): do not edit by hand.",
        f"http_port {listen + ':' if listen else ''}{port}",
        "visible_hostname egress-proxy",
        f"pid_filename {paths.pid_file}",
        f"coredump_dir {paths.coredump_dir}",
        *([f"hosts_file {paths.hosts_file}"] if paths.hosts_file else []),
        *([f"dns_nameservers {' '.join(nameservers)}"] if nameservers else []),
        "",
        "# No cache: a forward proxy for API traffic, nothing worth keeping. No cache manager either: its pages",
        "# (active requests, clients, ip and user-name caches) would show one tenant the others' traffic; metrics come",
        "# from the access log. Every action disabled here, and every manager URL refused first below.",
        "cachemgr_passwd disable all",
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
    if tenants:
        lines.append(f"acl tenant_users proxy_auth {' '.join(t.name for t in tenants)}")
    for tenant in tenants:
        lines.append(f"acl {tenant.acl}_user proxy_auth {tenant.name}")
        domains = squid_domains(tenant.domains)
        if domains:
            lines.append(f"acl {tenant.acl}_domains dstdomain -n {' '.join(domains)}")
        if tenant.cidrs:
            lines.append(f"acl {tenant.acl}_cidrs dst {' '.join(tenant.cidrs)}")
    lines += [
        "",
        "# Order matters. The cache manager (the predefined ACL `manager`: cache_object:// and .../squid-internal-mgr/",
        "# URLs) for nobody; then ports, then credentials (407). Raw IPs: never into a blocked range, otherwise only",
        "# inside the tenant's own cidrs. Names: the tenant's own list first (dstdomain -n resolves nothing), so a",
        "# refused name never reaches the resolver; only a name on the list is resolved, for the blocked ranges.",
        "# Anything left gets the egress-denied 403.",
        "http_access deny manager egress_denied",
        "http_access deny !Safe_ports egress_denied",
        "http_access deny CONNECT !SSL_ports egress_denied",
        "http_access deny !authenticated",
        "http_access deny !tenant_users egress_denied" if tenants else "http_access deny egress_denied",
    ]
    if blocked:
        lines.append("http_access deny raw_ip blocked_destinations egress_denied")
    lines += [f"http_access allow {t.acl}_user raw_ip {t.acl}_cidrs" for t in tenants if t.cidrs]
    lines.append("http_access deny raw_ip egress_denied")
    for tenant in tenants:
        refuse = f" !{tenant.acl}_domains" if tenant.domains else ""
        lines.append(f"http_access deny {tenant.acl}_user{refuse} egress_denied")
    if blocked:
        lines.append("http_access deny blocked_destinations egress_denied")
    lines += [f"http_access allow {t.acl}_user {t.acl}_domains" for t in tenants if t.domains]
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
# (Its header names the module's path before issue 21: the config hash rolls the proxy pods.)
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
        b64(f[0], f[6], f[12], 4)
        + b64(f[1], f[7], f[13], 4)
        + b64(f[2], f[8], f[14], 4)
        + b64(f[3], f[9], f[15], 4)
        + b64(f[4], f[10], f[5], 4)
        + b64(0, 0, f[11], 2)
    )
    return f"$1${salt}${encoded}"


def htpasswd_line(user: str, password: str) -> str:
    """``user:$1$salt$hash`` with a salt derived from the user and password, so the file is stable across runs
    (no rollout on every ``pulumi up``) yet differs between tenants."""
    digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
    salt = "".join(_CRYPT64[b & 0x3F] for b in digest[:8])
    return f"{user}:{md5_crypt(password, salt)}"


def htpasswd(passwords: dict[str, str], lines: Mapping[str, str] | None = None) -> str:
    """The htpasswd file of ``passwords`` (user -> password) and of ``lines`` hashed elsewhere (user -> line)."""
    entries = {**(lines or {}), **{user: htpasswd_line(user, pw) for user, pw in passwords.items()}}
    return "".join(f"{entries[user]}\n" for user in sorted(entries))


def proxy_url(user: str, password: str, host: str, port: int = PROXY_PORT) -> str:
    return f"http://{user}:{password}@{host}:{port}"


# ----------------------------------------------------------------------------------------------
# Tenants of shard stacks (docs/shards.md#ownership): a shard exports two strings, its tenants' allowlists (JSON) and
# their htpasswd lines (a Pulumi secret). The platform parses, checks and merges them inside the one ``apply`` that
# renders squid.conf (or the htpasswd file) and returns only that text: an ``apply`` that returned the merged map
# would make an Output of every tenant, domain and line (``Output.from_input`` walks dicts and lists), seconds at
# 5,000 tenants (docs/benchmarks.md). A shard writes data, never configuration: every tenant name must be a tenant
# name, every domain must pass the configuration's check, every htpasswd line must be one MD5-crypt user line, so
# nothing a shard exports becomes a Squid directive or another tenant's credential (one owner per tenant).

# user:$1$<salt, 1-8>$<22 characters>, as components/egress/squid.py md5_crypt writes it.
_HTPASSWD_LINE = re.compile(r"^(?P<user>[^:\s]+):\$1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}$")


def allowlists_text(entries: Mapping[str, Any]) -> str:
    """A shard's ``egressAllowlists`` output: ``{tenant: {"domains": [...], "cidrs": [...]}}`` as compact JSON."""
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def htpasswd_text(lines: Mapping[str, str]) -> str:
    """A shard's ``egressProxyUsers`` output: its tenants' htpasswd lines, one per line, sorted."""
    return "".join(f"{lines[user]}\n" for user in sorted(lines))


def _refuse(stack: str, what: str) -> pulumi.RunError:
    return pulumi.RunError(f"shard {stack}: {what}: the platform serves only well-formed egress entries")


def _tenant(stack: str, name: Any) -> str:
    try:
        tenant_name("name", name if isinstance(name, str) else "")
    except ConfigError:
        raise _refuse(stack, f"{name!r} is not a tenant name") from None
    return name


def parse_allowlists(stack: str, text: str | None) -> dict[str, tuple[str, ...]]:
    """A shard's allowlists -> {tenant: domains}, every name and domain checked (CIDRs stay platform tenants')."""
    try:
        entries = json.loads(text) if text else {}
    except ValueError as error:
        raise _refuse(stack, f"egressAllowlists is not JSON ({error})") from None
    if not isinstance(entries, dict):
        raise _refuse(stack, "egressAllowlists is not a map of tenants")
    parsed: dict[str, tuple[str, ...]] = {}
    checked: dict[str, str] = {}  # tenants share most domains (their agent types' defaults): each checked once
    for name, entry in entries.items():
        domains = entry.get("domains", []) if isinstance(entry, dict) else None
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise _refuse(stack, f"egressAllowlists.{name} has no list of domains")
        key = f"shard {stack} egressAllowlists.{_tenant(stack, name)}.domains"
        try:
            parsed[name] = tuple(checked.get(d) or checked.setdefault(d, egress_domain(key, d)) for d in domains)
        except ConfigError as error:
            raise pulumi.RunError(f"{key}: {error.reason}") from None
    return parsed


def parse_htpasswd(stack: str, text: str | None) -> dict[str, str]:
    """A shard's htpasswd lines -> {user: line}; a line that is not ``tenant:$1$salt$hash`` is refused."""
    lines: dict[str, str] = {}
    for line in (text or "").splitlines():
        match = _HTPASSWD_LINE.match(line)
        if line and match is None:
            raise _refuse(stack, f"egressProxyUsers has a line that is not user:$1$salt$hash ({line.split(':')[0]!r})")
        if match is not None:
            lines[_tenant(stack, match["user"])] = line
    return lines


def shard_proxy_tenants(texts: Mapping[str, str | None], own: Sequence[str]) -> list[ProxyTenant]:
    """The proxy users of every shard's tenants, from their ``egressAllowlists`` texts (``{stack: text}``)."""
    merged = merge_shard_entries({stack: parse_allowlists(stack, text) for stack, text in texts.items()}, own)
    return [ProxyTenant(tenant, domains) for tenant, domains in sorted(merged.items())]


def shard_htpasswd_lines(
    texts: Mapping[str, str | None], own: Sequence[str], allowlists: Mapping[str, str | None]
) -> dict[str, str]:
    """Every shard's htpasswd lines (``{stack: text}``) as ``{user: line}``, one owner per user. A shard's users must
    be tenants of its own allowlists (``{stack: text}``): a shard cannot add a credential for another shard's tenant,
    whose allowlist that credential would open."""
    parsed = {}
    for stack, text in texts.items():
        lines = parse_htpasswd(stack, text)
        strays = sorted(set(lines) - set(parse_allowlists(stack, allowlists.get(stack))))
        if strays:
            raise _refuse(stack, f"egressProxyUsers has users that are not its tenants: {', '.join(strays)}")
        parsed[stack] = lines
    return merge_shard_entries(parsed, own)
