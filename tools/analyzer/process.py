"""A running policy pack and its Analyzer client, started and called the way the Pulumi CLI does.

The CLI's Python language host starts a pack as ``python -u -m pulumi.policy <engine address> <pack dir>`` and reads
the port of its Analyzer gRPC server on stdout; then GetAnalyzerInfo, Configure, one Analyze per resource (concurrently)
and AnalyzeStack once with all resources.
"""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, plugin_pb2

from tools.analyzer.config import reconcile_config
from tools.analyzer.wire import (
    ENFORCEMENT_LEVELS,
    AnalyzerResource,
    EncodedPreview,
    Violation,
    analyze_request,
    encode_preview,
    encode_resource,
    stack_request,
    violations_of,
)

_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 400 * 1024 * 1024),
    ("grpc.max_send_message_length", 400 * 1024 * 1024),
]
_STDERR_TAIL = 64 * 1024


class PolicyPackError(RuntimeError):
    """The policy pack failed to start or a call to it failed."""


class AnalyzerClient:
    """The engine's end of a connection to a running pack: raw Analyze and AnalyzeStack calls on serialized requests
    (the offline engine's process holds one, tools/engine.py). ``describe`` adds the pack's stderr to errors."""

    def __init__(self, address: str, timeout: float, describe: Callable[[], str] = str) -> None:
        self.channel = grpc.insecure_channel(address, options=_GRPC_OPTIONS)
        self._describe = describe
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            self.channel.close()
            raise PolicyPackError(f"no policy pack answers on {address} within {timeout:g} s") from None
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        # Requests already serialized (see encode_preview) are sent as they are.
        self.analyze_bytes = self.channel.unary_unary(
            "/pulumirpc.Analyzer/Analyze",
            request_serializer=None,
            response_deserializer=analyzer_pb2.AnalyzeResponse.FromString,
        )
        self.analyze_stack_bytes = self.channel.unary_unary(
            "/pulumirpc.Analyzer/AnalyzeStack",
            request_serializer=None,
            response_deserializer=analyzer_pb2.AnalyzeResponse.FromString,
        )

    def rpc_error(self, method: str, error: grpc.RpcError) -> PolicyPackError:
        status = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        tail = self._describe().strip()
        return PolicyPackError(
            f"{method} failed ({status}): {details}" + (f"\n--- pack stderr ---\n{tail}" if tail else "")
        )

    def close(self) -> None:
        self.channel.close()


class PolicyPackProcess:
    """A running policy pack plus an Analyzer client; use it as a context manager."""

    def __init__(
        self,
        pack_dir: str | Path,
        config: dict | None = None,
        python: str = sys.executable,
        *,
        project: str = "agent-platform",
        stack: str = "dev",
        startup_timeout: float = 30.0,
        call_timeout: float = 120.0,
    ) -> None:
        self.pack_dir = Path(pack_dir).resolve()
        self.config: dict[str, Any] = dict(config or {})
        self.call_timeout = call_timeout
        self.project = project
        self.stack = stack
        self._info: analyzer_pb2.AnalyzerInfo | None = None
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._stderr_lock = threading.Lock()
        self.client: AnalyzerClient | None = None
        self._started = False
        if not (self.pack_dir / "__main__.py").is_file():
            raise PolicyPackError(f"{self.pack_dir} is not a Python policy pack (no __main__.py)")
        env = dict(os.environ)
        env.update(PULUMI_PROJECT=project, PULUMI_STACK=stack, PULUMI_DRY_RUN="true")
        try:
            self._process = subprocess.Popen(
                [python, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(self.pack_dir)],
                cwd=self.pack_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise PolicyPackError(f"cannot start policy pack {self.pack_dir} with {python}: {error}") from error
        try:
            assert self._process.stdout is not None
            assert self._process.stderr is not None
            self._start_reader(self._process.stderr, self._keep_stderr)
            lines: queue.Queue[bytes | None] = queue.Queue()

            def on_stdout(line: bytes) -> None:
                # Until the port shows up, the startup code reads stdout; afterwards the
                # pack's prints go to the same tail as its stderr.
                (self._keep_stderr if self._started else lines.put)(line)

            self._start_reader(self._process.stdout, on_stdout, eof=lambda: lines.put(None))
            port = self._wait_for_port(lines, startup_timeout)
            self._started = True
            self.address = f"127.0.0.1:{port}"
            self.client = AnalyzerClient(self.address, startup_timeout, lambda: self.stderr)
            self.stub = self.client.stub
        except BaseException:
            self.close()
            raise

    # --- process plumbing ------------------------------------------------------------------

    @staticmethod
    def _start_reader(stream: IO[bytes], sink: Callable[[bytes], None], eof: Callable[[], None] | None = None) -> None:
        def pump() -> None:
            for line in iter(stream.readline, b""):
                sink(line)
            if eof is not None:
                eof()

        threading.Thread(target=pump, name="policy-pack-reader", daemon=True).start()

    def _keep_stderr(self, line: bytes) -> None:
        with self._stderr_lock:
            self._stderr.append(line)
            self._stderr_size += len(line)
            while self._stderr_size > _STDERR_TAIL and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stderr(self) -> str:
        """The tail of what the pack wrote on stderr (and on stdout after its port)."""
        with self._stderr_lock:
            return b"".join(self._stderr).decode("utf-8", "replace")

    def _wait_for_port(self, lines: queue.Queue[bytes | None], timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._startup_error(f"printed no port within {timeout:g} s", seen)
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if self._process.poll() is not None:
                    raise self._startup_error(f"exited with code {self._process.returncode}", seen) from None
                continue
            if line is None:
                self._process.wait(timeout=5)
                raise self._startup_error(f"exited with code {self._process.returncode}", seen)
            text = line.decode("utf-8", "replace").strip()
            if text.isdigit():
                return int(text)
            seen.append(text)

    def _startup_error(self, what: str, stdout: list[str]) -> PolicyPackError:
        time.sleep(0.1)  # let the reader thread collect the last stderr lines
        details = ""
        if stdout:
            details += "\n--- stdout ---\n" + "\n".join(stdout)
        details += "\n--- stderr ---\n" + (self.stderr.strip() or "(empty)")
        return PolicyPackError(f"policy pack {self.pack_dir} {what}{details}")

    def _call(self, method: str, request: Any, call: Callable[..., Any] | None = None) -> Any:
        try:
            return (call or getattr(self.stub, method))(request, timeout=self.call_timeout)
        except grpc.RpcError as error:
            raise self._rpc_error(method, error) from None

    def _rpc_error(self, method: str, error: grpc.RpcError) -> PolicyPackError:
        assert self.client is not None
        return self.client.rpc_error(method, error)

    # --- protocol -----------------------------------------------------------------------------

    @property
    def info(self) -> analyzer_pb2.AnalyzerInfo:
        if self._info is None:
            self._info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        return self._info

    def plugin_version(self) -> str:
        response: plugin_pb2.PluginInfo = self._call("GetPluginInfo", empty_pb2.Empty())
        return response.version

    def policy_config(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{policy: (enforcement level, properties)}``, reconciled like the CLI does (see :func:`reconcile_config`)."""
        return reconcile_config(self.info.policies, self.config)

    def configure(self) -> None:
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, properties) in self.policy_config().items():
            config = request.policyConfig[name]
            config.enforcementLevel = ENFORCEMENT_LEVELS[level]
            config.properties.update(properties)
        self._call("Configure", request)

    def configure_stack(self, tags: Mapping[str, str] | None = None) -> None:
        """ConfigureStack, as the CLI sends it (stack tags are visible to policies)."""
        request = analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=self.stack,
            project=self.project,
            organization="organization",
            dry_run=True,
        )
        for key, value in (tags or {}).items():
            request.tags[key] = value
        self._call("ConfigureStack", request)

    def analyze(self, r: AnalyzerResource) -> list[Violation]:
        return violations_of(self._call("Analyze", analyze_request(r)), r.urn)

    def analyze_many(self, resources: Iterable[AnalyzerResource], workers: int = 4) -> list[Violation]:
        """Analyze resources with up to ``workers`` calls in flight; results in input order."""
        return self.analyze_encoded(((r.urn, analyze_request(r).SerializeToString()) for r in resources), workers)

    def analyze_encoded(self, requests: Iterable[tuple[str, bytes]], workers: int = 4) -> list[Violation]:
        """Send serialized AnalyzeRequests ``(urn, bytes)``, ``workers`` in flight; results in input order."""
        window: collections.deque[tuple[grpc.Future, str]] = collections.deque()
        violations: list[Violation] = []

        def drain_one() -> None:
            future, urn = window.popleft()
            try:
                response = future.result()
            except grpc.RpcError as error:
                raise self._rpc_error("Analyze", error) from None
            violations.extend(violations_of(response, urn))

        assert self.client is not None
        send = self.client.analyze_bytes.future
        for urn, request in requests:
            window.append((send(request, timeout=self.call_timeout), urn))
            if len(window) >= max(1, workers):
                drain_one()
        while window:
            drain_one()
        return violations

    def analyze_preview(
        self,
        resources: Sequence[AnalyzerResource] | EncodedPreview,
        workers: int = 4,
        timings: dict[str, float] | None = None,
    ) -> list[Violation]:
        """What a preview does: Analyze every resource (concurrently), then AnalyzeStack once.

        Same result as ``analyze_many(resources) + analyze_stack(resources)``. Resources are
        encoded first (see :func:`encode_preview`; pass an :class:`EncodedPreview` to reuse
        one). ``timings`` (if given) receives the seconds spent in ``encode``, ``analyze``
        and ``analyze_stack``.
        """
        started = time.perf_counter()
        encoded = resources if isinstance(resources, EncodedPreview) else encode_preview(resources)
        encoded_at = time.perf_counter()
        violations = self.analyze_encoded(zip(encoded.urns, encoded.analyze, strict=True), workers)
        analyzed = time.perf_counter()
        assert self.client is not None
        stack = self._call("AnalyzeStack", encoded.stack, self.client.analyze_stack_bytes)
        violations.extend(violations_of(stack, ""))
        if timings is not None:
            timings["encode"] = encoded_at - started
            timings["analyze"] = analyzed - encoded_at
            timings["analyze_stack"] = time.perf_counter() - analyzed
        return violations

    def analyze_stack(
        self, resources: Sequence[AnalyzerResource] | analyzer_pb2.AnalyzeStackRequest
    ) -> list[Violation]:
        """AnalyzeStack with all resources (or a request built with :func:`stack_request`)."""
        request = resources if isinstance(resources, analyzer_pb2.AnalyzeStackRequest) else stack_request(resources)
        return violations_of(self._call("AnalyzeStack", request), "")

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def __enter__(self) -> PolicyPackProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()


class PreviewSession:
    """What the CLI does during a preview: Analyze each resource as the program registers it (so the pack works
    while the program still runs, in its own process), then AnalyzeStack once with every resource.

    ``add`` may be called from the program's threads; requests go out in registration order, each resource's
    properties as the engine received them (a Struct, sent as it is). Same violations, in the same order, as
    :meth:`PolicyPackProcess.analyze_preview` over the same resources.
    """

    # Calls queue behind every resource registered before them: no per-call deadline shorter than a whole preview.
    TIMEOUT = 3600.0

    def __init__(self, pack: AnalyzerClient) -> None:
        self.pack = pack
        self._lock = threading.Lock()
        self._analyzed: list[tuple[grpc.Future, str]] = []
        self._stack = analyzer_pb2.AnalyzeStackRequest()
        self._providers: dict[str, struct_pb2.Struct] = {}  # provider URN -> its properties

    def add(self, resource: AnalyzerResource, properties: struct_pb2.Struct) -> None:
        with self._lock:
            if resource.type.startswith("pulumi:providers:"):
                self._providers[resource.urn] = properties
            request, entry = encode_resource(resource, properties, self._providers.get(resource.provider_urn))
            self._analyzed.append((self.pack.analyze_bytes.future(request, timeout=self.TIMEOUT), resource.urn))
            self._stack.resources.append(entry)

    def finish(self) -> Callable[[], list[Violation]]:
        """Send AnalyzeStack; the returned call waits for every answer (do other work in between)."""
        with self._lock:
            stack = self.pack.analyze_stack_bytes.future(self._stack.SerializeToString(), timeout=self.TIMEOUT)

        def violations() -> list[Violation]:
            found: list[Violation] = []
            for method, future, urn in [("Analyze", f, u) for f, u in self._analyzed] + [("AnalyzeStack", stack, "")]:
                try:
                    found.extend(violations_of(future.result(), urn))
                except grpc.RpcError as error:
                    raise self.pack.rpc_error(method, error) from None
            return found

        return violations


def run_pack(
    pack_dir: str | Path,
    resources: Sequence[AnalyzerResource],
    config: dict | None = None,
) -> list[Violation]:
    """Configure the pack, analyze every resource, then the whole stack once."""
    with PolicyPackProcess(pack_dir, config) as pack:
        pack.configure()
        pack.configure_stack()
        return pack.analyze_preview(resources)
