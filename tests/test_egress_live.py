"""The egress proxy's configuration run by the real Squid, and mtail on its real access log.

Debian's ``squid`` starts on 127.0.0.1 (a free port, its own temp directory for config, pid, logs and error pages;
nothing of a system squid service is touched) with the configuration :func:`components.egress.squid_conf` renders, a
``hosts_file`` mapping the test domains to 127.0.0.1 (and one to the instance metadata address), and a local TLS
server with a self-signed certificate. The tests skip, saying why, only when squid, openssl or mtail is missing
(``.ci/run`` installs them).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components import egress as eg
from tests.localhost import free_port, serving

# --------------------------------------------------------------------------------------------
# The real Squid


@dataclass
class LiveProxy:
    port: int
    tls_port: int
    http_port: int
    workdir: Path
    passwords: dict[str, str]
    squid: str

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


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[tuple[int, int]]:
    """A TLS server (self-signed cert) and a plain HTTP server on 127.0.0.1, stopped on exit."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    # a throwaway self-signed certificate for the test domain, valid for a day
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=allowed.test"]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True) for s in (tls, plain)
    ]
    for thread in threads:
        thread.start()
    try:
        yield tls.server_address[1], plain.server_address[1]
    finally:
        for server in (tls, plain):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)


TENANTS = (
    eg.ProxyTenant("acme", ("allowed.test", "*.wild.test", "meta.test"), ("198.51.100.0/24",)),
    eg.ProxyTenant("globex", ("other.test",)),
)


@pytest.fixture(scope="module")
def live_proxy() -> Iterator[LiveProxy]:
    squid = shutil.which("squid") or next((p for p in ("/usr/sbin/squid",) if os.access(p, os.X_OK)), None)
    if squid is None or shutil.which("openssl") is None:
        pytest.skip(
            "the real-Squid test needs Debian's squid and openssl (.ci/run installs them: apt-get install squid)"
        )
    with tempfile.TemporaryDirectory(prefix="egress-squid-") as tmp, servers(Path(tmp)) as (tls_port, http_port):
        workdir = Path(tmp)
        # Run as root, Squid switches to its "proxy" user: it must read and write this directory.
        workdir.chmod(0o777)
        passwords = {"acme": "acme-Pw-0123456789", "globex": "globex-Pw-9876543210"}
        (workdir / "htpasswd").write_text(eg.htpasswd(passwords))
        (workdir / "hosts").write_text(
            "127.0.0.1 allowed.test api.wild.test wild.test other.test unlisted.test\n169.254.169.254 meta.test\n"
        )
        (workdir / eg.ERROR_PAGE).write_text(eg.error_page())
        paths = eg.SquidPaths(
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
        blocked = [b for b in eg.BLOCKED_DESTINATIONS if b != "127.0.0.0/8"]
        conf = eg.squid_conf(
            TENANTS,
            port=port,
            paths=paths,
            blocked=blocked,
            listen="127.0.0.1",
            tls_ports=(443, tls_port),
            http_ports=(80, http_port),
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
            page_source=str(workdir / eg.ERROR_PAGE),
            rotate_seconds=3600,
            squid=squid,
        )
        with serving(command, port):
            yield LiveProxy(port, tls_port, http_port, workdir, passwords, squid)


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


def test_metadata_and_private_targets_are_refused_even_for_allowed_names(live_proxy: LiveProxy) -> None:
    # meta.test is on acme's list but resolves to the instance metadata address.
    assert connect(live_proxy, "meta.test", 443, "acme", live_proxy.passwords["acme"])[0] == 403
    assert connect(live_proxy, "169.254.169.254", 443, "acme", live_proxy.passwords["acme"])[0] == 403


def test_only_https_and_http_ports(live_proxy: LiveProxy) -> None:
    assert connect(live_proxy, "allowed.test", 22, "acme", live_proxy.passwords["acme"])[0] == 403
    assert connect(live_proxy, "allowed.test", live_proxy.http_port, "acme", live_proxy.passwords["acme"])[0] == 403


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
    (tmp_path / "egress.mtail").write_text(eg.MTAIL_PROGRAM)
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
