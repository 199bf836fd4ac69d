"""Helpers for tests that run a real server (Squid, nginx...) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


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


class CertificateAuthority:
    """A throw-away CA (openssl, ECDSA P-256) in ``folder`` that issues server certificates for loopback servers."""

    def __init__(self, folder: Path, name: str = "lab-ca") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.cert = folder / f"{name}.crt"
        self.key = folder / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            + ["-keyout", str(self.key), "-out", str(self.cert), "-days", "2", "-subj", f"/CN={name}"]
            + ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def issue(self, name: str, dns_names: Sequence[str], ips: Sequence[str] = ("127.0.0.1",)) -> tuple[Path, Path]:
        """A server certificate and key for ``dns_names`` and ``ips`` (subjectAltName), signed by this CA."""
        cert, key, request = (self.folder / f"{name}.{suffix}" for suffix in ("crt", "key", "csr"))
        san = ",".join([*(f"DNS:{d}" for d in dns_names), *(f"IP:{ip}" for ip in ips)])
        subprocess.run(
            ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            + ["-keyout", str(key), "-out", str(request), "-subj", f"/CN={dns_names[0]}"]
            + ["-addext", f"subjectAltName={san}", "-addext", "extendedKeyUsage=serverAuth"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            ["openssl", "x509", "-req", "-in", str(request), "-CA", str(self.cert), "-CAkey", str(self.key)]
            + ["-CAcreateserial", "-days", "2", "-copy_extensions", "copyall", "-out", str(cert)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        key.chmod(0o600)
        return cert, key
