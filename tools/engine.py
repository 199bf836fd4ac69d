"""The offline engine's recording half in a process of its own, beside the program's, as the Pulumi CLI's engine is.

The program's process keeps what a real program's process does, the SDK (and the mock answers it waits for,
RecordingMonitor's fast path in tools/program.py); each RegisterResource request goes, serialized, down a pipe to this
process, which records it, streams it to the policy pack (Analyze, as the CLI does while the program runs) and writes
its manifest into ``build/<stack>/``: recording, streaming and writing take another core's time beside the program's
instead of after it, and nothing in the program waits for them (figures: docs/benchmarks.md, Tenants in shards).

On the engine's stdin: a setup message, then one frame per registration (URN and request bytes), then an empty frame
at the end of the run. On its stdout: "ready" (or its error), the registrations, then the pack's violations
(length-prefixed pickles).
``python -m tools.engine`` is the engine's side; :class:`EngineProcess` the program's.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pickle
import shutil
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from google.protobuf import struct_pb2
from pulumi.runtime.proto import resource_pb2

from tools.analyzer import (
    AnalyzerClient,
    AnalyzerResource,
    PolicyPackError,
    PolicyPackProcess,
    PreviewSession,
    Violation,
)
from tools.build import clear, write_manifest, write_resources
from tools.mocks import PlatformMocks
from tools.program import ROOT, OnRegister, ProgramResult, RecordingMonitor, Registration, registration_of

_PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: the program writes ahead of the engine by up to 1 MiB before it waits
_F_SETPIPE_SZ = 1031


# What a registration hands to the analyzer as it is (the provider is looked up by its URN).
_ANALYZED_FIELDS = ("type", "urn", "name", "properties", "parent", "protect", "dependencies", "property_dependencies")


def analyzer_resource(r: Registration, provider: Registration | None) -> AnalyzerResource:
    """One registration as the CLI hands it to an analyzer (``provider``: the registration of its provider)."""
    return AnalyzerResource(
        **{name: getattr(r, name) for name in _ANALYZED_FIELDS},
        provider_urn=r.provider,
        provider_type=provider.type if provider else "",
        provider_properties=provider.properties if provider else {},
    )


def analyzer_resources(result: ProgramResult) -> list[AnalyzerResource]:
    """The program's registrations as the CLI hands them to an analyzer."""
    by_urn = {r.urn: r for r in result.registrations}
    return [analyzer_resource(r, by_urn.get(r.provider)) for r in result.registrations]


def analyze_as_registered(session: PreviewSession) -> OnRegister:
    """A RecordingMonitor's ``on_register``: each resource goes to the pack as it registers, as the CLI sends it."""
    providers: dict[str, Registration] = {}

    def add(r: Registration, properties: struct_pb2.Struct) -> None:
        if r.type.startswith("pulumi:providers:"):
            providers[r.urn] = r
        session.add(analyzer_resource(r, providers.get(r.provider)), properties)

    return add


# ---------------------------------------------------------------------------------------------
# Messages: length-prefixed pickles ("ok", value), ("pack", the pack's error) or ("error", a traceback) on stdout;
# frames on stdin.


def _send(stream: IO[bytes], value: Any, tag: str = "ok") -> None:
    data = pickle.dumps((tag, value), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "big") + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> tuple[str, Any] | None:
    """The next message; None at the end of the stream."""
    size = stream.read(8)
    if len(size) < 8:
        return None
    return pickle.loads(stream.read(int.from_bytes(size, "big")))  # noqa: S301 (our own process's messages)


def _frame(urn: str, request: bytes) -> bytes:
    head = urn.encode()
    return len(head).to_bytes(4, "big") + len(request).to_bytes(4, "big") + head + request


_END = bytes(8)  # a frame of nothing: the run is over (a stream that stops without it: the run failed)


class RunFailed(Exception):
    """The program's side stopped sending without the end frame: its run failed, nothing to finish."""


def _frames(stream: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    while (sizes := stream.read(8)) != _END:
        if len(sizes) < 8:
            raise RunFailed
        head, body = int.from_bytes(sizes[:4], "big"), int.from_bytes(sizes[4:], "big")
        urn, request = stream.read(head), stream.read(body)
        if len(urn) + len(request) < head + body:
            raise RunFailed
        yield urn.decode(), request


# ---------------------------------------------------------------------------------------------
# The program's side


class EngineError(RuntimeError):
    """The engine process failed (its traceback is in the message)."""


class EngineProcess:
    """The engine's process, started at once (its imports overlap the caller's start-up); use it as a context
    manager. ``connect(pack)`` is run_program's ``engine``; :meth:`violations` is the pack's verdict afterwards."""

    def __init__(self, out: Path | None, python: str = sys.executable) -> None:
        self.out = out
        self.pack_stderr: Callable[[], str] = str  # the pack's stderr tail, for its errors (set by connect)
        self._process = subprocess.Popen(
            [python, "-m", "tools.engine"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._process.stdin is not None
        with contextlib.suppress(OSError):  # Linux only; elsewhere the default pipe (the program waits sooner)
            fcntl.fcntl(self._process.stdin.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        self._lock = threading.Lock()
        self._error: Exception | None = None

    def connect(
        self, pack: PolicyPackProcess | None
    ) -> Callable[[PlatformMocks, OnRegister | None], ForwardingMonitor]:
        """run_program's ``engine``: a monitor that answers here and records in the engine, which streams to the
        running ``pack``."""
        if pack is not None:
            self.pack_stderr = lambda: pack.stderr

        def start(mocks: PlatformMocks, on_register: OnRegister | None) -> ForwardingMonitor:
            if on_register is not None:
                raise ValueError("the engine process streams to the pack itself: pass its address, not on_register")
            assert self._process.stdin is not None
            _send(self._process.stdin, {"pack": pack.address if pack else None, "out": self.out})
            self._next()  # ready: connected to the pack, build folder made (or its error, before the run starts)
            return ForwardingMonitor(mocks, self._process.stdin.fileno(), self._finish, self._failed)

        return start

    def _next(self) -> Any:
        assert self._process.stdout is not None
        message = _receive(self._process.stdout)
        if message is None:
            raise EngineError(f"the engine process exited (code {self._process.wait()}); its stderr is above")
        tag, value = message
        if tag == "pack":
            raise PolicyPackError(f"{value}\n--- pack stderr ---\n{self.pack_stderr().strip()}")
        if tag == "error":
            raise EngineError(value)
        return value

    def _failed(self) -> None:
        """The engine stopped reading during the run: raise its error (every thread that finds out, the same)."""
        with self._lock:
            if self._error is None:
                try:
                    self._next()
                    self._error = EngineError("the engine process stopped reading")
                except (EngineError, PolicyPackError) as error:
                    self._error = error
        raise self._error

    def _finish(self) -> list[Registration]:
        assert self._process.stdin is not None
        self._process.stdin.write(_END)
        self._process.stdin.close()
        return self._next()

    def violations(self) -> list[Violation]:
        """The pack's answers to every Analyze and the AnalyzeStack, once ``build/`` is written (after the run)."""
        return self._next()

    def close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ForwardingMonitor(RecordingMonitor):
    """Answers the SDK here (the mocks) and sends each request to the engine process to record."""

    def __init__(
        self, mocks: PlatformMocks, fd: int, finish: Callable[[], list[Registration]], failed: Callable[[], None]
    ) -> None:
        super().__init__(mocks)
        self._fd, self._finish, self._failed = fd, finish, failed

    def _record(self, request: Any, urn: str, properties: dict[str, Any]) -> None:  # noqa: ARG002 (the dict: in-process)
        frame = _frame(urn, request.SerializeToString())
        with self._lock:  # one order for every thread's registrations
            view = memoryview(frame)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except BrokenPipeError:
                self._failed()

    def recorded(self) -> list[Registration]:
        return self._finish()


# ---------------------------------------------------------------------------------------------
# The engine's side


class _Build:
    """``build/<stack>/`` written beside it as resources register, then moved in its place: a failed run leaves the
    previous build as it was."""

    def __init__(self, out: Path) -> None:
        self.out, self.partial = out, out.with_name(f".{out.name}.partial")
        clear(self.partial)

    def finish(self, registrations: list[Registration]) -> None:
        write_resources(registrations, self.partial)
        if self.out.exists():
            shutil.rmtree(self.out)
        self.partial.rename(self.out)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Record one run: the setup, then a frame per registration until the end frame; then ``build/`` moves in
    place, the registrations go back and, last, the pack's violations."""
    message = _receive(stdin)
    if message is None:
        return
    setup = message[1]
    client = AnalyzerClient(setup["pack"], timeout=30) if setup["pack"] else None
    session = PreviewSession(client) if client else None
    stream = analyze_as_registered(session) if session else None
    build = _Build(setup["out"]) if setup["out"] else None
    _send(stdout, "ready")
    registrations: list[Registration] = []
    try:
        for urn, body in _frames(stdin):
            request = resource_pb2.RegisterResourceRequest.FromString(body)
            registration = registration_of(request, urn)
            registrations.append(registration)
            if stream is not None:
                stream(registration, request.object)
            if build is not None:
                write_manifest(registration, build.partial)
        answers = session.finish() if session is not None else list
        if build is not None:
            build.finish(registrations)
        _send(stdout, registrations)
        _send(stdout, answers())
    except RunFailed:
        if build is not None:
            shutil.rmtree(build.partial, ignore_errors=True)
    finally:
        if client is not None:
            client.close()


def main() -> int:
    gc.disable()  # what it records lives until it exits (see tenants/__main__.py)
    stdout = os.fdopen(os.dup(1), "wb")  # the messages; whatever else prints goes to stderr
    os.dup2(2, 1)
    try:
        serve(sys.stdin.buffer, stdout)
    except PolicyPackError as error:  # the pack's own failure (a policy raised): its message, not ours
        _send(stdout, str(error), "pack")
        return 1
    except Exception:  # noqa: BLE001 (reported to the program's side, which raises it)
        _send(stdout, traceback.format_exc(), "error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
