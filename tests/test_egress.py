"""Egress allowlists: config parsing, the rendered squid.conf run by the real Squid, the proxy component, the
tenant NetworkPolicy and proxy settings in every stack.

The real-Squid tests start Debian's ``squid`` on 127.0.0.1 (a free port, its own temp directory for config,
pid, logs and error pages; nothing of a system squid service is touched) with the configuration
:func:`components.egress.squid_conf` renders, a ``hosts_file`` mapping the test domains to 127.0.0.1 (and one
to the instance metadata address), and a local TLS server with a self-signed certificate. They skip, saying
why, only when squid or openssl is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import ipaddress
import json
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

import jsonschema
import pytest
import yaml
from agent_policies.egress import sandbox_egress_allowlist

from components import egress as eg
from components.agents import PROXY_ENV, proxy_secret_data
from components.config import AGENT_EGRESS_DEFAULTS
from components.gateway import NLB_ANNOTATIONS
from components.podspec import PROXY_PORT, SandboxEgress, sandbox_egress_rules
from tests.configs import parse_config
from tests.conftest import program_result
from tests.localhost import free_port, serving
from tests.policy_cases import PACK_DIR, k8s, resource, run_stack_policy
from tests.schemas import CRD_DIR, validate_object
from tests.tokens import DEPLOYMENT, NETPOL, SECRET, SERVICE, TEMPLATE
from tools.analyzer import run_pack
from tools.preview import analyzer_resources
from tools.program import MASK

STACKS = ("dev", "staging", "prod")


def tenant(**fields: Any) -> dict[str, Any]:
    return {"name": "acme", "agents": [{"name": "hermes", "type": "hermes"}], **fields}


# --------------------------------------------------------------------------------------------
# Config


def test_agent_type_defaults_and_tenant_widening() -> None:
    cfg = parse_config(
        tenants=[
            tenant(
                egress={"domains": ["pypi.org", "*.PythonHosted.org."], "cidrs": ["203.0.113.0/24"]},
                agents=[
                    {"name": "hermes", "type": "hermes"},
                    {"name": "claw", "type": "openclaw", "egress": {"domains": ["api.github.com"]}},
                ],
            )
        ]
    )
    t = cfg.tenants[0]
    hermes, claw = t.agents
    assert t.agent_domains(hermes) == (*AGENT_EGRESS_DEFAULTS["hermes"], "pypi.org", "*.pythonhosted.org")
    assert t.agent_domains(claw) == ("slack.com", "*.slack.com", "pypi.org", "*.pythonhosted.org", "api.github.com")
    assert "api.telegram.org" in t.egress_domains
    assert "*.slack.com" in t.egress_domains
    assert t.egress_cidrs == ("203.0.113.0/24",)
    assert cfg.egress.mode == "allowlist"
    assert cfg.egress.allowlist


def test_type_defaults_can_be_dropped_per_tenant_and_restored_per_agent() -> None:
    t = parse_config(
        tenants=[
            tenant(
                egress={"typeDefaults": False, "domains": ["api.telegram.org"]},
                agents=[
                    {"name": "a", "type": "hermes"},
                    {"name": "b", "type": "openclaw", "egress": {"typeDefaults": True}},
                ],
            )
        ]
    ).tenants[0]
    assert t.agent_domains(t.agents[0]) == ("api.telegram.org",)
    assert t.agent_domains(t.agents[1]) == ("slack.com", "*.slack.com", "api.telegram.org")


# --------------------------------------------------------------------------------------------
# Rendering


def test_wildcards_become_leading_dots_and_covered_names_are_dropped() -> None:
    domains = ["slack.com", "*.slack.com", "wss-primary.slack.com", "*.a.slack.com", "x.org", "*.y.org"]
    assert eg.squid_domains(domains) == [".slack.com", "x.org", ".y.org"]
    assert eg.squid_domains(["api.telegram.org"]) == ["api.telegram.org"]


def test_rendered_conf_denies_by_default_and_names_every_tenant() -> None:
    conf = eg.squid_conf(
        [eg.ProxyTenant("acme", ("a.com",), ("203.0.113.0/24",)), eg.ProxyTenant("glo-bex", ("*.b.com",))]
    )
    lines = conf.splitlines()
    access = [line for line in lines if line.startswith("http_access")]
    assert access[0] == "http_access deny !Safe_ports egress_denied"
    assert access[-1] == "http_access deny egress_denied"
    assert "acl t_glo_bex_user proxy_auth glo-bex" in lines
    assert "acl t_glo_bex_domains dstdomain -n .b.com" in lines
    assert access.index("http_access allow t_acme_user raw_ip t_acme_cidrs") < access.index(
        "http_access deny raw_ip egress_denied"
    )
    assert "acl SSL_ports port 443" in lines
    assert "cache deny all" in lines
    assert "via off" in lines
    assert "deny_info 403:ERR_EGRESS_DENIED egress_denied" in lines
    blocked = next(line for line in lines if line.startswith("acl blocked_destinations dst"))
    for needed in ("169.254.0.0/16", "100.64.0.0/10", "10.0.0.0/8", "fc00::/7"):
        assert needed in blocked.split()
    assert "%un" in next(line for line in lines if line.startswith("logformat egress"))


def test_md5_crypt_matches_openssl() -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    expected = subprocess.run(
        [openssl, "passwd", "-1", "-salt", "abcdefgh", "s3cret pw"], capture_output=True, text=True, check=True
    )
    assert eg.md5_crypt("s3cret pw", "abcdefgh") == expected.stdout.strip()
    line = eg.htpasswd_line("acme", "pw")
    assert line == eg.htpasswd_line("acme", "pw")
    assert line != eg.htpasswd_line("globex", "pw")


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
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=allowed.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
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
# The program: proxy component, NetworkPolicies and proxy settings in every stack


def netpol_egress(result: Any) -> list[list[dict[str, Any]]]:
    # the sandboxes' policies (the platform namespaces' own are tests/test_network_policies.py's)
    rules = [r.inputs["spec"]["egress"] for r in result.of_type(NETPOL) if "PlatformNetworkPolicies" not in r.urn]
    rules += [r.inputs["spec"]["networkPolicy"]["egress"] for r in result.of_type(TEMPLATE)]
    return rules


@pytest.mark.parametrize("stack", STACKS)
def test_no_sandbox_policy_allows_the_internet_in_any_stack(stack: str) -> None:
    result = program_result(stack)
    cfg_cidr = result.of_type("aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"]
    policies = netpol_egress(result)
    assert policies
    for egress in policies:
        for rule in egress:
            assert rule.get("to"), rule  # no rule without "to" (that would be anywhere)
            for peer in rule["to"]:
                net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                assert net.prefixlen > 0
        ports = {(p["protocol"], p["port"]) for rule in egress for p in rule.get("ports", [])}
        assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 4000), ("TCP", PROXY_PORT)}
        proxy = next(r for r in egress if r.get("ports") == [{"protocol": "TCP", "port": PROXY_PORT}])
        assert proxy["to"] == [{"ipBlock": {"cidr": cfg_cidr}}]


@pytest.mark.parametrize("stack", STACKS)
def test_every_tenant_pod_carries_the_proxy_settings(stack: str) -> None:
    result = program_result(stack)
    templates = [
        r.inputs["spec"]["template"]
        for r in result.of_type(DEPLOYMENT)
        if r.inputs["metadata"]["namespace"].startswith("tenant-")
    ]
    templates += [r.inputs["spec"]["podTemplate"] for r in result.of_type(TEMPLATE)]
    assert templates
    for template in templates:
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        for name in PROXY_ENV:
            assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "egress-proxy", "key": name}}
        assert env["NODE_USE_ENV_PROXY"]["value"] == "1"
    secrets = [r for r in result.of_type(SECRET) if r.inputs["metadata"]["name"] == "egress-proxy"]
    assert {s.inputs["metadata"]["namespace"] for s in secrets} == {
        r.inputs["metadata"]["name"]
        for r in result.of_type("kubernetes:core/v1:Namespace")
        if r.inputs["metadata"]["name"].startswith("tenant-")
    }
    for s in secrets:
        assert set(s.inputs["stringData"]) == set(PROXY_ENV)
        assert all(v == MASK for v in s.inputs["stringData"].values())  # secrets stay secrets


def test_proxy_secret_values() -> None:
    data = proxy_secret_data(
        "http://acme:pw@internal-k8s-egress.elb.amazonaws.com:3128",
        "http://internal-k8s-litellm.elb.amazonaws.com:4000",
    )
    assert data["HTTPS_PROXY"] == data["http_proxy"] == "http://acme:pw@internal-k8s-egress.elb.amazonaws.com:3128"
    assert data["NO_PROXY"] == "localhost,127.0.0.1,::1,internal-k8s-litellm.elb.amazonaws.com"


def test_proxy_deployment_is_hardened_and_behind_a_cross_zone_nlb(dev: Any) -> None:
    component = dev.of_type("agent-platform:egress:EgressProxy")[0]
    deployment = dev.named(DEPLOYMENT, "egress-squid").inputs
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.agent-platform.io/core": "true"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == eg.SQUID_UID
    container = pod["containers"][0]
    assert container["image"] == "docker.io/ubuntu/squid:6.6-24.04_beta"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    service = dev.named(SERVICE, "egress-nlb").inputs
    assert service["metadata"]["annotations"] == NLB_ANNOTATIONS
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.1.0.0/16"]
    assert service["spec"]["ports"][0]["port"] == PROXY_PORT
    pdb = dev.named("kubernetes:policy/v1:PodDisruptionBudget", "egress-pdb").inputs
    assert pdb["spec"]["minAvailable"] == 1
    htpasswd = dev.named(SECRET, "egress-htpasswd").inputs
    assert htpasswd["stringData"] == {"htpasswd": MASK}
    conf = dev.named("kubernetes:core/v1:ConfigMap", "egress-config").inputs["data"]["squid.conf"]
    assert "acl t_acme_user proxy_auth acme" in conf
    assert "acl t_globex_user proxy_auth globex" in conf
    assert (
        "acl t_acme_domains dstdomain -n api.telegram.org cdn.discordapp.com discord.com .discord.gg media.discordapp.net"
        in conf
    )
    assert "acl t_globex_domains dstdomain -n .slack.com" in conf
    for r in dev.registrations:
        if r.type.startswith("kubernetes:") and "egress" in r.name and r.name.startswith("egress-"):
            assert component.urn in (r.parent,) or r.parent.startswith(component.urn.rsplit("::", 1)[0])
    for name in ("egress-squid", "egress-nlb", "egress-pdb", "egress-config"):
        obj = next(r for r in dev.registrations if r.name == name).inputs
        validate_object(obj)


def test_open_mode_keeps_the_previous_behaviour() -> None:
    result = program_result("dev", {"agent-platform:egressMode": "open"})
    assert not result.of_type("agent-platform:egress:EgressProxy")
    for egress in netpol_egress(result):
        https = next(r for r in egress if r.get("ports") == [{"protocol": "TCP", "port": 443}])
        assert https["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    for r in result.of_type(DEPLOYMENT):
        env = {e["name"] for e in r.inputs["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert not env & set(PROXY_ENV)


def test_sandbox_egress_rules_in_allowlist_mode() -> None:
    network = parse_config(vpcCidr="10.9.0.0/16").network
    rules = sandbox_egress_rules(network, SandboxEgress(allowlist=True, cidrs=("203.0.113.0/24", "198.51.100.0/24")))
    assert rules[2] == {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    assert rules[3] == {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "198.51.100.0/24"}}]}
    assert len(rules) == 4


# --------------------------------------------------------------------------------------------
# CrossGuard: sandbox-egress-allowlist (direct calls, then the whole pack over gRPC)

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"


def _ns(name: str, sandbox: bool = True) -> Any:
    labels = {"agent-platform.io/sandbox": "true"} if sandbox else {}
    return resource(NAMESPACE_TYPE, name, k8s("v1", "Namespace", name, labels=labels))


def _netpol(
    name: str, namespace: str, egress: Any, pod_selector: Any = None, types: Any = ("Ingress", "Egress")
) -> Any:  # noqa: E501
    spec = {"podSelector": {} if pod_selector is None else pod_selector, "policyTypes": list(types), "egress": egress}
    return resource(
        NETPOL, f"{namespace}-{name}", k8s("networking.k8s.io/v1", "NetworkPolicy", name, spec, namespace=namespace)
    )


def _template(name: str, namespace: str, network_policy: Any) -> Any:
    spec: dict[str, Any] = {"podTemplate": {"metadata": {"labels": {"agent-platform.io/sandbox": "true"}}, "spec": {}}}
    if network_policy is not None:
        spec["networkPolicy"] = network_policy
    return resource(
        TEMPLATE,
        f"{namespace}-{name}",
        k8s("extensions.agents.x-k8s.io/v1beta1", "SandboxTemplate", name, spec, namespace=namespace),
    )


ALLOWLIST = sandbox_egress_rules(parse_config().network, SandboxEgress(allowlist=True, cidrs=("203.0.113.0/24",)))
OPEN = sandbox_egress_rules(parse_config().network)


def _run(resources: list[Any]) -> list[str]:
    outcome = run_stack_policy(sandbox_egress_allowlist, resources)
    assert outcome.unknown is None
    return outcome.messages


def test_policy_accepts_the_allowlist_rules() -> None:
    assert (
        _run(
            [
                _ns("tenant-a"),
                _netpol("sandbox-isolation", "tenant-a", ALLOWLIST),
                _template("t", "tenant-a", {"egress": ALLOWLIST}),
            ]
        )
        == []
    )


def test_policy_requires_a_default_deny_egress_policy() -> None:
    messages = _run([_ns("tenant-a"), _ns("plain", sandbox=False)])
    assert messages == [
        "Namespace tenant-a: add a default-deny egress NetworkPolicy (podSelector {}, policyTypes including Egress) "
        "to this sandbox namespace (agent-platform.io/sandbox=true); without one every pod may connect anywhere."
    ]
    # A policy that selects only some pods, or only restricts ingress, is not a default deny.
    assert (
        len(_run([_ns("tenant-a"), _netpol("x", "tenant-a", ALLOWLIST, pod_selector={"matchLabels": {"a": "b"}})])) == 1
    )
    assert len(_run([_ns("tenant-a"), _netpol("x", "tenant-a", [], types=("Ingress",))])) == 1


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (OPEN, "egress[2] allows 0.0.0.0/0"),
        ([{"to": [{"ipBlock": {"cidr": "::/0"}}]}], "egress[0] allows ::/0"),
        (
            [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}],
            "egress[0] allows 0.0.0.0/0",
        ),
        ([{"ports": [{"protocol": "TCP", "port": 443}]}], "egress[0] has no 'to', which allows every destination"),
        ([{}], "egress[0] has no 'to', which allows every destination"),
    ],
)
def test_policy_refuses_internet_wide_egress(rules: list[Any], problem: str) -> None:
    messages = _run([_ns("tenant-a"), _netpol("sandbox-isolation", "tenant-a", rules)])
    assert messages == [
        f"NetworkPolicy tenant-a/sandbox-isolation: {problem}; sandboxes reach the internet only through the egress proxy (their tenant's domain allowlist); list the proxy and model gateway ports and the tenant's own cidrs instead."
    ]
    template = _run(
        [_ns("tenant-a"), _netpol("d", "tenant-a", ALLOWLIST), _template("t", "tenant-a", {"egress": rules})]
    )
    assert len(template) == 1
    assert template[0].startswith(f"SandboxTemplate tenant-a/t: spec.networkPolicy.{problem}")


def test_policy_ignores_other_namespaces_and_flags_templates_without_rules() -> None:
    assert _run([_ns("web", sandbox=False), _netpol("open", "web", OPEN)]) == []
    messages = _run([_ns("tenant-a"), _netpol("d", "tenant-a", ALLOWLIST), _template("t", "tenant-a", None)])
    assert len(messages) == 1
    assert "controller's default lets sandboxes reach the public internet" in messages[0]


def test_policy_through_the_pack_in_open_mode() -> None:
    """Every stack passes the pack with no violation at all (tests/test_preview.py); the transition switch really
    opens the internet, and the pack says so (mandatory unless reconfigured)."""
    open_mode = analyzer_resources(program_result("dev", {"agent-platform:egressMode": "open"}))
    violations = [v for v in run_pack(PACK_DIR, open_mode) if v.policy == "sandbox-egress-allowlist"]
    assert {v.enforcement_level for v in violations} == {"mandatory"}
    assert len(violations) == 3  # acme's and globex's NetworkPolicies, globex's SandboxTemplate
    assert all("allows 0.0.0.0/0" in v.message for v in violations)
    advisory = run_pack(PACK_DIR, open_mode, {"sandbox-egress-allowlist": "advisory"})
    assert {v.enforcement_level for v in advisory if v.policy == "sandbox-egress-allowlist"} == {"advisory"}


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
    out = subprocess.run(
        [
            mtail,
            "-one_shot",
            "-one_shot_format",
            "prometheus",
            "-emit_prog_label=false",
            "-progs",
            str(tmp_path),
            "-logs",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
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


def test_proxy_metrics_are_scraped_alerted_and_charted(dev: Any) -> None:
    pod = dev.named(DEPLOYMENT, "egress-squid").inputs["spec"]["template"]["spec"]
    mtail = next(c for c in pod["containers"] if c["name"] == "mtail")
    assert mtail["image"] == "ghcr.io/google/mtail:3.0.9"
    assert mtail["securityContext"]["runAsNonRoot"] is True
    assert mtail["securityContext"]["readOnlyRootFilesystem"]
    assert {"name": "logs", "mountPath": eg.LOG_DIR, "readOnly": True} in mtail["volumeMounts"]
    monitor = dev.named("kubernetes:monitoring.coreos.com/v1:PodMonitor", "egress-monitor").inputs
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    rule = dev.named("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "egress-rules").inputs
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    burst = alerts["EgressDeniedBurst"]
    assert burst["expr"] == 'sum by (tenant) (increase(egress_requests_total{decision="denied"}[5m])) > 30'
    assert "{{ $labels.tenant }}" in burst["annotations"]["summary"]
    dashboard = json.loads((Path(eg.__file__).parent / "dashboards" / "egress.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert 'decision="denied"' in exprs
    assert 'decision="allowed"' in exprs
    assert "egress_bytes_total" in exprs
    assert "by (tenant)" in exprs
    # Last: the prometheus-operator CRDs (shared/, skipped when absent) of the version the chart ships.
    crds = CRD_DIR / "prometheus-operator-v0.93.1"
    if not crds.is_dir():
        pytest.skip(f"prometheus-operator CRDs not present at {crds}")
    for obj, file in ((monitor, "crd-podmonitors.yaml"), (rule, "crd-prometheusrules.yaml")):
        crd = yaml.safe_load((crds / file).read_text())
        schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1")
        jsonschema.Draft7Validator(schema).validate(obj)  # no metaschema check: the CRD uses (?i) patterns


# --------------------------------------------------------------------------------------------
# Audit trail: VPC Flow Logs and Route 53 Resolver query logs


@pytest.mark.parametrize(("stack", "days"), [("dev", 14), ("staging", 30), ("prod", 365)])
def test_flow_logs_and_resolver_query_logs_per_stack(stack: str, days: int) -> None:
    result = program_result(stack)
    groups = {r.inputs["name"]: r.inputs for r in result.of_type("aws:cloudwatch/logGroup:LogGroup")}
    cluster = f"agents-{stack}"
    flow_group = groups[f"/agent-platform/{cluster}/vpc-flow-logs"]
    query_group = groups[f"/agent-platform/{cluster}/resolver-query-logs"]
    assert flow_group["retentionInDays"] == query_group["retentionInDays"] == days
    (flow,) = result.of_type("aws:ec2/flowLog:FlowLog")
    vpc = result.of_type("aws:ec2/vpc:Vpc")[0]
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
    assert "${pkt-srcaddr}" in flow.inputs["logFormat"]
    assert "${flow-direction}" in flow.inputs["logFormat"]
    role = result.named("aws:iam/role:Role", "network-flow-logs").inputs
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "vpc-flow-logs.amazonaws.com"
    }
    statement = json.loads(result.named("aws:iam/rolePolicy:RolePolicy", "network-flow-logs").inputs["policy"])[
        "Statement"
    ][0]
    arn = statement["Resource"][0]  # the flow log group's ARN (the mock engine's), and its streams
    assert "vpc-flow-logs" in arn
    assert statement["Resource"] == [arn, f"{arn}:*"]
    assert flow.inputs["logDestination"] == arn
    (association,) = result.of_type("aws:route53/resolverQueryLogConfigAssociation:ResolverQueryLogConfigAssociation")
    assert association.inputs["resourceId"] == flow.inputs["vpcId"]
    assert vpc.urn in association.dependencies or association.inputs["resourceId"].startswith("vpc-")
    (config,) = result.of_type("aws:route53/resolverQueryLogConfig:ResolverQueryLogConfig")
    assert "resolver-query-logs" in config.inputs["destinationArn"]
    policy = json.loads(
        result.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")[0].inputs["policyDocument"]
    )
    assert policy["Statement"][0]["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert "aws:SourceAccount" in policy["Statement"][0]["Condition"]["StringEquals"]
