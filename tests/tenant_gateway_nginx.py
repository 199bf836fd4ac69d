"""The rendered tenant gateway (components/gateway/tenant_gateway.py) run by Debian's nginx on 127.0.0.1, in front of
any upstream: a recording stub (tests/test_gateway_proxy.py) or the lab's real LiteLLM (realtests/)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from components.gateway import tenant_gateway as gp
from tests.localhost import free_port, serving


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@dataclass(frozen=True)
class RunningGateway:
    port: int
    health_port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def tenant_gateway(upstream: str) -> Iterator[RunningGateway]:
    """nginx with the rendered nginx.conf (its upstream ``host:port``), config, pid, temp files and logs in a temp
    prefix; the package's own service is never started or touched."""
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("the tenant gateway needs Debian's nginx (apt-get install nginx)")
    with tempfile.TemporaryDirectory(prefix="tenant-gateway-nginx-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o777)  # run as root, nginx's workers switch to an unprivileged user
        paths = gp.NginxPaths(
            pid=str(workdir / "nginx.pid"),
            temp=str(workdir),
            access_log=str(workdir / "access.log"),
            error_log=str(workdir / "error.log"),
        )
        port, health_port = free_port(), free_port()
        conf = gp.nginx_conf(upstream, listen="127.0.0.1", port=port, health_port=health_port, paths=paths)
        (workdir / "nginx.conf").write_text(conf)
        command = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", paths.error_log]
        with serving(command, port):  # master and workers share the group: one signal stops them all
            yield RunningGateway(port, health_port, workdir)
