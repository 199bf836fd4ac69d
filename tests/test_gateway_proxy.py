"""Tenant gateway (nginx in front of LiteLLM): the rendered nginx.conf run by Debian's nginx in front of a
recording stub upstream, and the Kubernetes objects in every stack.

The real-nginx tests start ``nginx`` on 127.0.0.1 (free ports, a temp prefix for config, pid, temp files and
logs; the package's own service is never started or touched) with :func:`components.gateway_proxy.nginx_conf`,
its upstream pointed at a stub HTTP server on 127.0.0.1 that records every request reaching it. They skip,
saying why, only when nginx is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.contracts import gateway as gwc
from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway import tenant_gateway as gp
from components.k8s.nlb import NLB_ANNOTATIONS
from tests.conftest import program_result
from tests.tenant_gateway_nginx import nginx_binary, tenant_gateway
from tests.tokens import DEPLOYMENT, SERVICE
from tools.program import ProgramResult

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
STACKS = ("dev", "staging", "prod")
# Routes a sandbox must never reach (LiteLLM management, UI, metrics, config, model calls on /health).
BLOCKED = (
    ("GET", "/ui"),
    ("GET", "/ui/"),
    ("GET", "/"),
    ("POST", "/key/generate"),
    ("POST", "/key/update"),
    ("POST", "/key/delete"),
    ("GET", "/key/info"),
    ("GET", "/key/list"),
    ("POST", "/user/new"),
    ("GET", "/user/info"),
    ("POST", "/team/new"),
    ("GET", "/spend/logs"),
    ("GET", "/global/spend/report"),
    ("GET", "/metrics"),
    ("GET", "/metrics/"),
    ("GET", "/config/yaml"),
    ("POST", "/config/update"),
    ("POST", "/model/new"),
    ("POST", "/model/delete"),
    ("GET", "/health"),
    ("GET", "/v1/models/../../key/list"),
    ("GET", "/v1/models/%2e%2e/%2e%2e/key/list"),
    ("GET", "/v1/models%2F..%2F..%2Fkey%2Flist"),
    ("GET", "/sso/key/generate"),
    ("POST", "/v1/chat/completions/../../key/generate"),
    ("GET", "/V1/MODELS"),
    # MCP: only /mcp/ (every granted server); no per-server, REST or listing route (docs/mcp.md).
    ("POST", "/mcp/acme_tools"),
    ("POST", "/acme_tools/mcp"),
    ("GET", "/mcp-rest/tools/list"),
    ("POST", "/mcp-rest/tools/call"),
    ("GET", "/v1/mcp/server"),
    ("GET", "/v1/mcp/tools"),
    ("POST", "/v1/mcp/server"),
    ("GET", "/mcp/../key/list"),
    ("POST", "/mcp//acme_tools"),
)


# --------------------------------------------------------------------------------------------
# Pure rendering


def test_every_route_is_an_exact_location_with_a_fixed_upstream_path_and_the_rest_is_refused() -> None:
    conf = gp.nginx_conf("litellm.litellm.svc.cluster.local:4000")
    for route in gp.ROUTES:
        assert f"location = {route.path} {{" in conf
        assert f"proxy_pass http://litellm{route.upstream or route.path};" in conf
    assert conf.count("proxy_pass ") == len(gp.ROUTES)
    assert "server litellm.litellm.svc.cluster.local:4000;" in conf
    assert f"location / {{ return 403 '{gp.FORBIDDEN_BODY}'; }}" in conf
    assert "proxy_buffering off;" in conf
    assert f"proxy_read_timeout {gp.READ_TIMEOUT_S}s;" in conf
    assert f"client_max_body_size {gp.BODY_LIMIT};" in conf
    json.loads(gp.FORBIDDEN_BODY), json.loads(gp.METHOD_BODY)
    # No prefix location and no regex location may widen what is forwarded.
    locations = [line.strip() for line in conf.splitlines() if line.strip().startswith("location ")]
    assert all(line.startswith(("location = ", "location / {")) for line in locations), locations


def test_routes_cover_what_the_agents_call() -> None:
    """Hermes and OpenClaw call ``<litellm_url>/v1`` (components/tenants/tenant.py) with the OpenAI chat API."""
    paths = {r.path: r.methods for r in gp.ROUTES}
    assert paths["/v1/chat/completions"] == ("POST",)
    assert paths["/v1/models"] == ("GET",)
    assert not any(p.startswith(("/key", "/user", "/team", "/spend", "/ui", "/config", "/metrics")) for p in paths)
    assert "/health" not in paths  # runs real model calls on every configured model


# --------------------------------------------------------------------------------------------
# The real nginx


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    port: int
    seen: list[Seen] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)  # set by the client mid-stream
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        with self.lock:
            return [s.path for s in self.seen]


# What LiteLLM 1.93 sends on inference responses, as the stub sends it: the fingerprints the gateway must drop and
# the tenant's own figures it must keep.
KEPT_HEADERS = {
    "x-litellm-call-id": "3f1c0d9e-5b7a-4c51-9a53-1d2e3f4a5b6c",
    "x-litellm-key-spend": "0.0042",
    "x-litellm-key-max-budget": "100.0",
    "x-litellm-response-cost": "0.0001",
    "x-ratelimit-remaining-requests": "59",
}
LEAKED = {header: f"leak-{n}" for n, header in enumerate(gp.HIDDEN_RESPONSE_HEADERS)}
LEAKED.update(
    {
        "x-litellm-version": "1.93.0",
        "x-litellm-model-api-base": "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude",
        "x-litellm-model-region": "us-east-1",
    }
)


def stub_handler(stub: Stub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # nginx keeps upstream connections alive

        def _record(self) -> Seen:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with stub.lock:
                stub.seen.append(seen)
            return seen

        def _litellm_headers(self) -> None:
            for name, value in {**LEAKED, **KEPT_HEADERS}.items():
                self.send_header(name, value)

        def _reply(self, payload: dict[str, Any], status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self._litellm_headers()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            seen = self._record()
            if seen.headers.get("authorization") == "Bearer sk-expired":  # LiteLLM's 401 carries them too
                self._reply({"error": {"message": "Authentication Error"}}, status=401)
                return
            self._reply({"stub": True, "path": seen.path})

        def do_POST(self) -> None:  # noqa: N802
            seen = self._record()
            if seen.body and json.loads(seen.body).get("stream"):
                # The second event waits until the client has read the first one: it arrives only if the
                # proxy streams instead of buffering the whole response.
                self.send_response(200)
                self._litellm_headers()
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk(b'data: {"n": 1}\n\n')
                released = stub.released.wait(timeout=10)
                self._chunk(f'data: {{"n": 2, "released": {json.dumps(released)}}}\n\n'.encode())
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
                return
            self._reply({"stub": True, "path": seen.path, "bytes": len(seen.body)})

        do_DELETE = do_PUT = do_PATCH = do_GET  # noqa: N815 (recorded like any other request)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@dataclass
class LiveGateway:
    port: int
    health_port: int
    stub: Stub
    workdir: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def live_gateway() -> Iterator[LiveGateway]:
    if nginx_binary() is None:
        pytest.skip("the real-nginx test needs Debian's nginx (.ci/run installs it: apt-get install nginx)")
    stub = Stub(port=0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), stub_handler(stub))
    server.daemon_threads = True
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        with tenant_gateway(f"127.0.0.1:{stub.port}") as running:
            yield LiveGateway(running.port, running.health_port, stub, running.workdir)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def chat_body() -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.mark.parametrize("route", gp.ROUTES, ids=lambda r: r.path)
def test_every_allowed_route_reaches_the_upstream_unchanged(live_gateway: LiveGateway, route: gp.Route) -> None:
    method = route.methods[0]
    body = chat_body() if method == "POST" else None
    before = len(live_gateway.stub.paths())
    status, payload = live_gateway.request(
        method, route.path + "?probe=1", body, {"Authorization": "Bearer sk-tenant", "Content-Type": "application/json"}
    )
    assert status == 200, payload
    assert json.loads(payload)["path"] == f"{route.upstream or route.path}?probe=1"
    seen = live_gateway.stub.seen[before]
    assert (seen.method, seen.path) == (method, f"{route.upstream or route.path}?probe=1")
    assert seen.headers["authorization"] == "Bearer sk-tenant"  # LiteLLM still authenticates the tenant key
    if body:
        assert seen.body == body


@pytest.mark.parametrize(("method", "path"), BLOCKED)
def test_every_other_route_gets_403_and_never_reaches_the_upstream(
    live_gateway: LiveGateway, method: str, path: str
) -> None:
    before = live_gateway.stub.paths()
    body = b"{}" if method == "POST" else None
    status, payload = live_gateway.request(method, path, body, {"Authorization": "Bearer sk-master"})
    assert status in (400, 403), (path, status, payload)  # 400: nginx refuses a URI that climbs above the root
    if status == 403:
        assert json.loads(payload)["error"]["code"] == "route_not_allowed"
    assert live_gateway.stub.paths() == before, f"{method} {path} reached LiteLLM"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/chat/completions"),
        ("GET", "/v1/chat/completions"),
        ("PUT", "/v1/embeddings"),
        ("POST", "/v1/models"),
        ("DELETE", "/v1/models"),
        ("POST", "/health/readiness"),
        ("PUT", "/mcp/"),
        ("PATCH", "/mcp"),
    ],
)
def test_methods_are_restricted_per_route(live_gateway: LiveGateway, method: str, path: str) -> None:
    before = live_gateway.stub.paths()
    status, payload = live_gateway.request(method, path, b"{}" if method in ("POST", "PUT") else None)
    assert status == 405
    assert json.loads(payload)["error"]["code"] == "method_not_allowed"
    assert live_gateway.stub.paths() == before


def test_dot_segments_and_double_slashes_are_forwarded_as_the_canonical_path(live_gateway: LiveGateway) -> None:
    before = len(live_gateway.stub.paths())
    for raw in ("/v1//chat/completions", "/v1/x/../chat/completions", "/v1/chat/%63ompletions"):
        status, _ = live_gateway.request("POST", raw, chat_body(), {"Content-Type": "application/json"})
        assert status == 200, raw
    assert live_gateway.stub.paths()[before:] == ["/v1/chat/completions"] * 3


@pytest.mark.parametrize("path", ["/mcp", "/mcp/"])
def test_mcp_requests_reach_litellm_with_only_the_mcp_headers(live_gateway: LiveGateway, path: str) -> None:
    """A caller's ``x-mcp-<server>-authorization`` would replace the server's token in LiteLLM 1.93 (docs/mcp.md):
    the MCP routes forward a fixed list of request headers, so no ``x-mcp-*`` (nor anything else) gets through."""
    kept = {
        "Authorization": "Bearer sk-tenant",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": "session-1",
        "Mcp-Protocol-Version": "2025-06-18",
        "Last-Event-ID": "7",
    }
    dropped = {
        "x-mcp-acme_tools-authorization": "Bearer caller-chosen",
        "x-mcp-globex_tools-x-api-key": "caller-chosen",
        "x-mcp-auth": "caller-chosen",
        "x-mcp-servers": "globex_tools",
        "x-mcp-access-groups": "all",
        "x-litellm-api-key": "sk-other",
        "Cookie": "session=x",
    }
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    for method in ("POST", "GET", "DELETE"):
        before = len(live_gateway.stub.seen)
        status, _ = live_gateway.request(method, path, body if method == "POST" else None, {**kept, **dropped})
        assert status == 200
        (seen,) = live_gateway.stub.seen[before:]
        assert (seen.method, seen.path) == (method, "/mcp/")  # never LiteLLM's 307 from /mcp
        assert {k.lower(): v for k, v in kept.items()}.items() <= seen.headers.items()
        assert not {h for h in seen.headers if h.startswith("x-mcp") or h in ("cookie", "x-litellm-api-key")}
        if method == "POST":
            assert seen.body == body
    before = len(live_gateway.stub.seen)
    live_gateway.request("POST", path, body, {"Authorization": "Bearer sk-tenant"})
    (seen,) = live_gateway.stub.seen[before:]
    assert "mcp-session-id" not in seen.headers  # an unset header is not sent empty


def test_sse_stream_arrives_incrementally(live_gateway: LiveGateway) -> None:
    live_gateway.stub.released.clear()
    body = json.dumps({"model": "m", "stream": True, "messages": []}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", live_gateway.port, timeout=15)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/event-stream"
        started = time.monotonic()
        first = response.readline()
        assert first == b'data: {"n": 1}\n'
        assert time.monotonic() - started < 5, "the first event was held back until the upstream finished"
        live_gateway.stub.released.set()  # only now does the stub send the rest
        rest = response.read()
    finally:
        conn.close()
    assert b'"released": true' in rest
    assert rest.rstrip().endswith(b"data: [DONE]")


def response_headers(live_gateway: LiveGateway, method: str, path: str, **headers: str) -> tuple[int, dict[str, str]]:
    body = chat_body() if method == "POST" else None
    conn = http.client.HTTPConnection("127.0.0.1", live_gateway.port, timeout=15)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("POST", "/v1/chat/completions", "Bearer sk-tenant"),
        ("GET", "/v1/models", "Bearer sk-tenant"),
        ("GET", "/v1/model/info", "Bearer sk-expired"),
    ],
)
def test_backend_fingerprint_headers_never_reach_the_tenant(
    live_gateway: LiveGateway, method: str, path: str, auth: str
) -> None:
    status, headers = response_headers(live_gateway, method, path, Authorization=auth)
    assert status == (401 if auth == "Bearer sk-expired" else 200)
    assert sorted(h for h in LEAKED if h in headers) == []
    assert {h: headers.get(h) for h in KEPT_HEADERS} == KEPT_HEADERS  # the tenant's own call, spend and limits


def test_backend_fingerprint_headers_are_dropped_from_streams_too(live_gateway: LiveGateway) -> None:
    live_gateway.stub.released.set()  # no need to hold the second event back here
    body = json.dumps({"model": "m", "stream": True, "messages": []}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", live_gateway.port, timeout=15)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        headers = {k.lower() for k, _ in response.getheaders()}
    finally:
        conn.close()
    assert response.status == 200
    assert sorted(headers & set(LEAKED)) == []
    assert "x-litellm-call-id" in headers


def test_request_body_limit(live_gateway: LiveGateway) -> None:
    before = live_gateway.stub.paths()
    big = b"x" * (21 * 1024 * 1024)
    status, _ = live_gateway.request("POST", "/v1/chat/completions", big, {"Content-Type": "application/json"})
    assert status == 413
    assert live_gateway.stub.paths() == before


def test_health_port_answers_without_the_upstream(live_gateway: LiveGateway) -> None:
    before = live_gateway.stub.paths()
    conn = http.client.HTTPConnection("127.0.0.1", live_gateway.health_port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert live_gateway.stub.paths() == before


def test_access_log_records_allowed_and_refused_requests(live_gateway: LiveGateway) -> None:
    live_gateway.request("GET", "/key/list")
    deadline = time.monotonic() + 5
    log = ""
    while time.monotonic() < deadline and " GET /key/list 403 " not in log:
        log = (live_gateway.workdir / "access.log").read_text()
        time.sleep(0.05)
    assert " GET /key/list 403 " in log


# --------------------------------------------------------------------------------------------
# Kubernetes objects


@pytest.mark.parametrize("stack", STACKS)
def test_nlb_targets_the_tenant_gateway_pods_not_litellm(stack: str) -> None:
    result: ProgramResult = program_result(stack)
    nlb = result.named(SERVICE, "gateway-nlb").inputs
    assert nlb["metadata"]["name"] == gwc.TENANT_GATEWAY.name
    assert nlb["metadata"]["annotations"] == NLB_ANNOTATIONS
    assert nlb["spec"]["selector"] == gp.SELECTOR
    assert nlb["spec"]["ports"] == [{"name": "http", "port": gwc.PORT, "targetPort": gp.LISTEN_PORT, "protocol": "TCP"}]
    assert not set(gwc.SELECTOR.items()) <= set(gp.SELECTOR.items())
    deployment = result.named(DEPLOYMENT, "gateway-tenant-gateway-nginx").inputs
    assert deployment["spec"]["template"]["metadata"]["labels"] == gp.SELECTOR


@pytest.mark.parametrize("stack", STACKS)
def test_tenant_gateway_is_hardened_replicated_and_spread(stack: str) -> None:
    result = program_result(stack)
    deployment = result.named(DEPLOYMENT, "gateway-tenant-gateway-nginx").inputs
    assert deployment["metadata"]["namespace"] == gwc.NAMESPACE
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == CORE_NODE_SELECTOR
    assert pod["automountServiceAccountToken"] is False
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"]
    assert context["runAsUser"] == gp.NGINX_UID
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", gp.CACHE_DIR, gp.CONF_PATH} <= mounts
    assert container["image"].startswith("docker.io/nginxinc/nginx-unprivileged:")
    config = result.named(CONFIG_MAP, "gateway-tenant-gateway-config").inputs
    assert config["data"]["nginx.conf"] == gp.nginx_conf(f"{gwc.RELEASE}.{gwc.NAMESPACE}.svc.cluster.local:{gwc.PORT}")
    pdb = result.named(PDB, "gateway-tenant-gateway-pdb").inputs
    assert pdb["spec"]["selector"]["matchLabels"] == gp.SELECTOR
