"""The egress proxy's configuration run by the real Squid, and mtail on its real access log.

Debian's ``squid`` starts on 127.0.0.1 (a free port, its own temp directory for config, pid, logs and error pages;
nothing of a system squid service is touched) with the configuration :func:`components.egress.squid_conf` renders, a
``hosts_file`` mapping the test domains to 127.0.0.1 (and one to the instance metadata address), and a local TLS
server with a self-signed certificate (on 127.0.0.1 and on ::1). A tiny DNS server on a loopback address records every
name Squid asks for. The tests skip, saying why, only when squid, openssl or mtail is missing (``.ci/run`` installs
them), or (the DNS test alone) when port 53 cannot be bound.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import random
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.egress import proxy as eg
from components.egress import squid as sq
from tests.localhost import free_port, serving

# --------------------------------------------------------------------------------------------
# The real Squid


@dataclass
class LiveProxy:
    port: int
    tls_port: int
    http_port: int
    v6_port: int  # the TLS server on ::1
    workdir: Path
    passwords: dict[str, str]
    squid: str
    dns: DnsWatcher | None

    def access_log(self) -> list[str]:
        path = self.workdir / "access.log"
        return path.read_text().splitlines() if path.exists() else []


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = b"hello from the test server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _HelloV6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[tuple[int, int, int]]:
    """TLS servers (self-signed cert) on 127.0.0.1 and ::1 and a plain HTTP server on 127.0.0.1, stopped on exit."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    # a throwaway self-signed certificate for the test domain, valid for a day
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=allowed.test"]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    tls6 = _HelloV6(("::1", 0), _Hello)
    for server in (tls, tls6):
        server.socket = context.wrap_socket(server.socket, server_side=True)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    running = (tls, tls6, plain)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True) for s in running]
    for thread in threads:
        thread.start()
    try:
        yield tls.server_address[1], plain.server_address[1], tls6.server_address[1]
    finally:
        for server in running:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# A DNS server that records the names it is asked for and answers NXDOMAIN to all of them


@dataclass
class DnsWatcher:
    address: str
    asked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> list[str]:
        with self.lock:
            return list(self.asked)


def _question(packet: bytes) -> tuple[str, int]:
    """The first question's name and where the question section ends (RFC 1035 4.1.2; no compression there)."""
    labels, offset = [], 12
    while offset < len(packet) and packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    return ".".join(labels).lower(), offset + 5  # the root label, QTYPE and QCLASS


def _nxdomain(packet: bytes, end: int) -> bytes:
    (ident,) = struct.unpack("!H", packet[:2])
    flags = 0x8183  # response, recursion desired and available, RCODE 3 (name error)
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + packet[12:end]


@contextlib.contextmanager
def dns_watcher() -> Iterator[DnsWatcher | None]:
    """Squid always asks port 53 (dns_nameservers takes addresses only): a random 127.x address, so parallel test
    runs do not collide. None when the port cannot be bound (not root)."""
    address = f"127.53.{random.randint(1, 254)}.{random.randint(1, 254)}"
    watcher = DnsWatcher(address)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            packet, sock = self.request
            if len(packet) < 17:
                return
            name, end = _question(packet)
            with watcher.lock:
                watcher.asked.append(name)
            sock.sendto(_nxdomain(packet, end), self.client_address)

    try:
        server = socketserver.ThreadingUDPServer((address, 53), Handler)
    except OSError:
        yield None
        return
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# acme's list also holds names that resolve where no tenant may go (the blocked ranges must win over the list).
UNREACHABLE = {
    "meta.test": "169.254.169.254",  # instance metadata
    "zero.test": "::",  # the unspecified address: the proxy's own loopback
    "loop6.test": "::1",
    "mapped.test": "::ffff:169.254.169.254",  # IPv4-mapped metadata address
    "nat64.test": "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "ula.test": "fd00:ec2::254",  # the IPv6 metadata address (unique local)
    "sixtofour.test": "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
}
TENANTS = (
    sq.ProxyTenant("acme", ("allowed.test", "*.wild.test", *UNREACHABLE), ("198.51.100.0/24", "10.9.0.0/16")),
    sq.ProxyTenant("globex", ("other.test",)),
)


@pytest.fixture(scope="module")
def live_proxy() -> Iterator[LiveProxy]:
    squid = shutil.which("squid") or next((p for p in ("/usr/sbin/squid",) if os.access(p, os.X_OK)), None)
    if squid is None or shutil.which("openssl") is None:
        pytest.skip(
            "the real-Squid test needs Debian's squid and openssl (.ci/run installs them: apt-get install squid)"
        )
    with (
        tempfile.TemporaryDirectory(prefix="egress-squid-") as tmp,
        servers(Path(tmp)) as (tls_port, http_port, v6_port),
        dns_watcher() as dns,
    ):
        workdir = Path(tmp)
        # Run as root, Squid switches to its "proxy" user: it must read and write this directory.
        workdir.chmod(0o777)
        passwords = {"acme": "acme-Pw-0123456789", "globex": "globex-Pw-9876543210"}
        (workdir / "htpasswd").write_text(sq.htpasswd(passwords))
        (workdir / "hosts").write_text(
            "127.0.0.1 allowed.test api.wild.test wild.test other.test unlisted.test\n"
            + "".join(f"{address} {name}\n" for name, address in UNREACHABLE.items())
        )
        (workdir / sq.ERROR_PAGE).write_text(sq.error_page())
        paths = sq.SquidPaths(
            htpasswd=str(workdir / "htpasswd"),
            error_directory=str(workdir / "errors"),
            access_log=str(workdir / "access.log"),
            cache_log=str(workdir / "cache.log"),
            pid_file=str(workdir / "squid.pid"),
            coredump_dir=str(workdir),
            hosts_file=str(workdir / "hosts"),
        )
        port = free_port()
        # Loopback is where the test servers live: the only range taken off the blocked list here.
        blocked = [b for b in sq.BLOCKED_DESTINATIONS if b != "127.0.0.0/8"]
        conf = sq.squid_conf(
            TENANTS,
            port=port,
            paths=paths,
            blocked=blocked,
            listen="127.0.0.1",
            tls_ports=(443, tls_port, v6_port),
            http_ports=(80, http_port),
            nameservers=(dns.address,) if dns else (),
        )
        (workdir / "squid.conf").write_text(conf)
        for path in workdir.iterdir():
            if path.is_file():
                path.chmod(0o644)
        # The container's own entrypoint (error pages from the package's templates, Squid in the foreground,
        # the rotation loop), with this test's paths.
        command = eg.squid_command(
            str(workdir / "squid.conf"),
            error_directory=paths.error_directory,
            page_source=str(workdir / sq.ERROR_PAGE),
            rotate_seconds=3600,
            squid=squid,
        )
        with serving(command, port):
            yield LiveProxy(port, tls_port, http_port, v6_port, workdir, passwords, squid, dns)


def auth_header(user: str | None, password: str | None) -> str:
    if user is None:
        return ""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Proxy-Authorization: Basic {token}\r\n"


def read_head(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def connect(proxy: LiveProxy, host: str, port: int, user: str | None, password: str | None) -> tuple[int, bytes]:
    """CONNECT through the proxy; on 200, a TLS handshake and a GET through the tunnel. Returns the CONNECT
    status, and the tunnelled HTTP response (or the proxy's error response)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(
            f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth_header(user, password)}\r\n".encode()
        )
        status, head = read_head(sock)
        if status != 200:
            return status, head
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed test certificate
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            body = b""
            while len(body) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                body += chunk
        return status, body


def plain_get(proxy: LiveProxy, url: str, user: str, password: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        host = url.split("/")[2]
        sock.sendall(
            f"GET {url} HTTP/1.1\r\nHost: {host}\r\n{auth_header(user, password)}Connection: close\r\n\r\n".encode()
        )
        return read_head(sock)


@pytest.mark.parametrize(
    ("user", "host"),
    [("acme", "allowed.test"), ("acme", "api.wild.test"), ("acme", "wild.test"), ("globex", "other.test")],
)
def test_allowed_domain_gets_through(live_proxy: LiveProxy, user: str, host: str) -> None:
    status, body = connect(live_proxy, host, live_proxy.tls_port, user, live_proxy.passwords[user])
    assert status == 200
    assert body.startswith(b"HTTP/1.0 200")
    assert b"hello from the test server" in body


@pytest.mark.parametrize(
    ("user", "host"), [("globex", "allowed.test"), ("acme", "other.test"), ("acme", "unlisted.test")]
)
def test_domain_of_another_tenant_or_unlisted_is_refused_with_403(live_proxy: LiveProxy, user: str, host: str) -> None:
    status, head = connect(live_proxy, host, live_proxy.tls_port, user, live_proxy.passwords[user])
    assert status == 403
    status, body = plain_get(live_proxy, f"http://{host}:{live_proxy.http_port}/", user, live_proxy.passwords[user])
    assert status == 403
    assert b"is not on this tenant's egress allowlist" in body
    assert host.encode() in body


def test_plain_http_to_an_allowed_domain(live_proxy: LiveProxy) -> None:
    status, head = plain_get(
        live_proxy, f"http://allowed.test:{live_proxy.http_port}/", "acme", live_proxy.passwords["acme"]
    )
    assert status == 200


def test_missing_or_wrong_credentials_get_407(live_proxy: LiveProxy) -> None:
    assert connect(live_proxy, "allowed.test", live_proxy.tls_port, None, None)[0] == 407
    assert connect(live_proxy, "allowed.test", live_proxy.tls_port, "acme", "wrong-password")[0] == 407
    assert connect(live_proxy, "allowed.test", live_proxy.tls_port, "acme", live_proxy.passwords["globex"])[0] == 407
    assert connect(live_proxy, "allowed.test", live_proxy.tls_port, "nobody", "x")[0] == 407


def test_raw_ips_only_inside_the_tenant_cidrs(live_proxy: LiveProxy) -> None:
    acme, globex = live_proxy.passwords["acme"], live_proxy.passwords["globex"]
    assert connect(live_proxy, "127.0.0.1", live_proxy.tls_port, "acme", acme)[0] == 403  # not in its cidrs
    assert connect(live_proxy, "93.184.216.34", 443, "acme", acme)[0] == 403
    assert connect(live_proxy, "198.51.100.7", 443, "globex", globex)[0] == 403  # acme's range, not globex's
    # Inside acme's cidrs the proxy lets the tunnel through (198.51.100.0/24 is TEST-NET-2: unroutable, so
    # the connection itself fails with a 5xx instead of a 403).
    status, _ = connect(live_proxy, "198.51.100.7", 443, "acme", acme)
    assert status != 403
    assert status != 407


@pytest.mark.parametrize("name", sorted(UNREACHABLE))
def test_allowed_names_resolving_outside_the_internet_are_refused(live_proxy: LiveProxy, name: str) -> None:
    """Each name is on acme's list but resolves to metadata, loopback or an IPv6 form of them; zero.test (``::``)
    would reach the proxy's own loopback, where the ::1 test server listens on a port the proxy tunnels to."""
    acme = live_proxy.passwords["acme"]
    for port in (443, live_proxy.v6_port):
        status, head = connect(live_proxy, name, port, "acme", acme)
        assert status == 403, (name, port, head)
    address = UNREACHABLE[name]
    assert connect(live_proxy, f"[{address}]" if ":" in address else address, 443, "acme", acme)[0] == 403


def test_raw_ips_in_the_tenant_cidrs_never_reach_a_blocked_range(live_proxy: LiveProxy) -> None:
    """acme's cidrs include 10.9.0.0/16 (a peered network, say): the blocked ranges are checked first."""
    status, head = connect(live_proxy, "10.9.0.5", 443, "acme", live_proxy.passwords["acme"])
    assert status == 403, head


def test_only_https_and_http_ports(live_proxy: LiveProxy) -> None:
    assert connect(live_proxy, "allowed.test", 22, "acme", live_proxy.passwords["acme"])[0] == 403
    assert connect(live_proxy, "allowed.test", live_proxy.http_port, "acme", live_proxy.passwords["acme"])[0] == 403


# Squid's cache manager (active requests, client list, ip and user-name caches) in every URL form Squid recognises:
# the cache_object scheme for an allowed domain or the proxy itself, and squid-internal-mgr paths on the proxy's
# own name, address or in origin form. The manager is off for everyone (cachemgr_passwd disable all) and refused
# first (http_access deny manager).
MANAGER_URLS = (
    "cache_object://allowed.test/active_requests",
    "cache_object://allowed.test:80/active_requests",
    "cache_object://allowed.test:443/client_list",
    "cache_object://api.wild.test:80/menu",
    "CACHE_OBJECT://allowed.test:80/ipcache",
    "cache_object://allowed.test:80/username_cache",
    "cache_object://allowed.test:80/info",
    "http://allowed.test:80/squid-internal-mgr/menu",
    "cache_object://localhost/ipcache",
    "cache_object://127.0.0.1/username_cache",
    "http://egress-proxy:{port}/squid-internal-mgr/menu",
    "http://127.0.0.1:{port}/squid-internal-mgr/active_requests",
    "http://localhost:{port}/squid-internal-mgr/info",
    "/squid-internal-mgr/menu",
    "/squid-internal-mgr/client_list",
)
# What the manager pages print (menu, active_requests, client_list, ipcache, username_cache, info).
MANAGER_MARKERS = (
    b"Cache Manager menu",
    b"Connection: 0x",
    b"Cache Clients:",
    b"IP Cache Statistics",
    b"Cached Usernames",
    b"Squid Object Cache:",
)


@pytest.mark.parametrize("url", MANAGER_URLS)
@pytest.mark.parametrize("user", ["acme", None])
def test_the_cache_manager_is_refused_in_every_url_form(live_proxy: LiveProxy, url: str, user: str | None) -> None:
    url = url.format(port=live_proxy.port)
    password = live_proxy.passwords[user] if user else None
    with socket.create_connection(("127.0.0.1", live_proxy.port), timeout=10) as sock:
        host = url.split("/")[2] if "://" in url else f"127.0.0.1:{live_proxy.port}"
        sock.sendall(
            f"GET {url} HTTP/1.1\r\nHost: {host}\r\n{auth_header(user, password)}Connection: close\r\n\r\n".encode()
        )
        response = b""
        while len(response) < 1 << 20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    status = int(response.split(b" ", 2)[1])
    assert status in (403, 407, 400), response[:300]
    body = response.split(b"\r\n\r\n", 1)[-1]
    assert not any(marker in body for marker in MANAGER_MARKERS), body[:500]


def test_refused_names_are_never_resolved(live_proxy: LiveProxy) -> None:
    """The domain allowlist is checked before the destination address, so a name outside it never reaches the
    resolver (an exfiltration channel: the VPC resolver forwards any name to its authoritative servers)."""
    if live_proxy.dns is None:
        pytest.skip("the DNS watcher needs port 53 on a loopback address (root)")
    acme, globex = live_proxy.passwords["acme"], live_proxy.passwords["globex"]
    secret = f"s3cr3t-{random.randint(0, 1 << 30)}"
    refused = [
        ("acme", acme, f"{secret}.exfil.example", 443),
        ("acme", acme, f"{secret}.other.test", 443),
        ("globex", globex, f"{secret}.wild.test", 443),  # acme's wildcard, not globex's
    ]
    for user, password, host, port in refused:
        assert connect(live_proxy, host, port, user, password)[0] == 403
        assert plain_get(live_proxy, f"http://{host}:{live_proxy.http_port}/", user, password)[0] == 403
    # Control: a name on the list (not in the hosts file) does reach the resolver, and gets no tunnel (NXDOMAIN).
    allowed = f"{secret}.wild.test"
    assert connect(live_proxy, allowed, live_proxy.tls_port, "acme", acme)[0] != 200
    asked = live_proxy.dns.names()
    assert allowed in asked, asked
    assert not [n for n in asked if secret in n and n != allowed], asked


def test_access_log_names_tenant_domain_status_and_bytes(live_proxy: LiveProxy) -> None:
    connect(live_proxy, "allowed.test", live_proxy.tls_port, "acme", live_proxy.passwords["acme"])
    connect(live_proxy, "allowed.test", live_proxy.tls_port, "globex", live_proxy.passwords["globex"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = live_proxy.access_log()
        if any("tenant=globex" in line and "status=403" in line for line in lines):
            break
        time.sleep(0.1)
    fields = [dict(part.split("=", 1) for part in line.split()[1:]) for line in live_proxy.access_log()]
    allowed = [f for f in fields if f["tenant"] == "acme" and f["domain"] == "allowed.test" and f["status"] == "200"]
    denied = [f for f in fields if f["tenant"] == "globex" and f["domain"] == "allowed.test" and f["status"] == "403"]
    assert allowed
    assert denied
    assert int(allowed[-1]["bytes_in"]) > 0
    assert int(allowed[-1]["bytes_out"]) > 0
    assert denied[-1]["result"] == "TCP_DENIED"


def test_the_production_configuration_parses_without_warnings(live_proxy: LiveProxy, tmp_path: Path) -> None:
    """Squid drops an ACL entry that overlaps another one (a warning, not an error): e.g. ::ffff:0:0/96 (every
    IPv4 address to Squid) would silently swallow 0.0.0.0/8. The full blocked list, as deployed, must parse clean."""
    paths = sq.SquidPaths(
        htpasswd=str(live_proxy.workdir / "htpasswd"),
        error_directory=eg.SQUID_TEMPLATES,
        access_log=str(tmp_path / "access.log"),
        cache_log=str(tmp_path / "cache.log"),
        pid_file=str(tmp_path / "squid.pid"),
        coredump_dir=str(tmp_path),
    )
    conf = tmp_path / "squid.conf"
    conf.write_text(sq.squid_conf(TENANTS, paths=paths, listen="127.0.0.1", port=free_port()))
    result = subprocess.run(
        [live_proxy.squid, "-k", "parse", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert [w for w in warnings if "HTTP requires the use of Via" not in w] == []


def test_rotation_keeps_logging(live_proxy: LiveProxy) -> None:
    """What the entrypoint's loop runs every hour: the old log moves to access.log.0, new lines go on."""
    conf = str(live_proxy.workdir / "squid.conf")
    subprocess.run([live_proxy.squid, "-f", conf, "-k", "rotate"], check=True, capture_output=True, timeout=30)
    rotated = live_proxy.workdir / "access.log.0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not rotated.exists():
        time.sleep(0.1)
    assert rotated.exists()
    assert "tenant=acme" in rotated.read_text()
    connect(live_proxy, "other.test", live_proxy.tls_port, "globex", live_proxy.passwords["globex"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("domain=other.test" in line for line in live_proxy.access_log()):
        time.sleep(0.1)
    assert any("tenant=globex" in line and "domain=other.test" in line for line in live_proxy.access_log())


# --------------------------------------------------------------------------------------------
# Visibility: mtail on the real Squid log, PodMonitor, alert, dashboard


def test_mtail_turns_the_real_access_log_into_per_tenant_metrics(live_proxy: LiveProxy, tmp_path: Path) -> None:
    mtail = shutil.which("mtail")
    if mtail is None:
        pytest.skip("mtail is not installed (.ci/run installs Debian's mtail)")
    acme, globex = live_proxy.passwords["acme"], live_proxy.passwords["globex"]
    connect(live_proxy, "allowed.test", live_proxy.tls_port, "acme", acme)
    connect(live_proxy, "allowed.test", live_proxy.tls_port, "globex", globex)
    connect(live_proxy, "allowed.test", live_proxy.tls_port, None, None)
    time.sleep(0.5)  # Squid writes its log line when the connection closes
    log = live_proxy.workdir / "access.log"
    fields = [dict(part.split("=", 1) for part in line.split()[1:]) for line in live_proxy.access_log()]
    (tmp_path / "egress.mtail").write_text(sq.MTAIL_PROGRAM)
    one_shot = ["-one_shot", "-one_shot_format", "prometheus", "-emit_prog_label=false"]
    command = [mtail, *one_shot, "-progs", str(tmp_path), "-logs", str(log)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in out.stdout.splitlines()
        if line and not line.startswith("#")
    }

    def expected(tenant: str, decision: str) -> int:
        def decide(f: dict[str, str]) -> str:
            if f["status"] == "407":
                return "auth_required"
            return "denied" if "DENIED" in f["result"] else "allowed"

        return sum(1 for f in fields if f["tenant"] == tenant and decide(f) == decision)

    for tenant, decision in (("acme", "allowed"), ("globex", "denied"), ("-", "auth_required")):
        assert expected(tenant, decision) >= 1
        assert samples[f'egress_requests_total{{decision="{decision}",tenant="{tenant}"}}'] == expected(
            tenant, decision
        )
    acme_in = sum(int(f["bytes_in"]) for f in fields if f["tenant"] == "acme")
    assert samples['egress_bytes_total{direction="in",tenant="acme"}'] == acme_in > 0
