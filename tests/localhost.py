"""Helpers for tests that run a real server (Squid, nginx...) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Until ``process`` accepts connections on 127.0.0.1:``port``; fails if it exits or the deadline passes."""
    name = process.args[0] if isinstance(process.args, list | tuple) else process.args
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not listen on 127.0.0.1:{port} within {deadline_s}s")


@contextlib.contextmanager
def serving(command: list[str], port: int, deadline_s: float = 20) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process group, once it listens on 127.0.0.1:``port``; on exit the whole group
    (a master and its workers or helpers) gets SIGTERM, then SIGKILL after 10 s."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, process, deadline_s)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
