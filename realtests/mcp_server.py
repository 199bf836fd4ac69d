"""Real MCP servers for the lab (run with the lab's own mcp venv, not the project's): one process, several servers.

usage: python mcp_server.py SPEC.json

SPEC: ``{"log": path, "servers": [{"name", "token", "transport": "http"|"sse", "port"}]}``. Each server is the
``mcp`` SDK's ``MCPServer`` on 127.0.0.1 (streamable HTTP at ``/mcp`` or SSE at ``/sse`` + ``/messages/``) with
the tools ``echo``, ``whoami`` and ``wipe``, behind a bearer check: any request without ``Authorization: Bearer
<its token>`` gets a 401. Every request's headers (all of them, lab tokens only) are appended to the JSON-lines
log with the server's name and whether the token matched, so the tests see exactly what the gateway sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send


def tool_server(name: str) -> MCPServer:
    server = MCPServer(name, log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back, prefixed with this server's name."""
        return f"{name} echoes: {text}"

    @server.tool()
    def whoami() -> str:
        """This server's name."""
        return name

    @server.tool()
    def wipe() -> str:
        """A destructive tool the gateway's allowed_tools leaves out."""
        return f"{name} wiped everything"

    return server


class BearerCheck:
    """Refuse requests without this server's bearer token; log every request's headers."""

    def __init__(self, app: ASGIApp, name: str, token: str, log: str) -> None:
        self.app, self.name, self.expected, self.log = app, name, f"Bearer {token}", log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        authorized = [v for k, v in headers if k == "authorization"] == [self.expected]
        entry = {"server": self.name, "method": scope["method"], "path": scope["path"], "authorized": authorized}
        with open(self.log, "a") as log:
            log.write(json.dumps({**entry, "headers": headers}) + "\n")
        if authorized:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": f"{self.name}: missing or wrong bearer token"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def serve(spec: dict[str, Any], log: str) -> None:
    server = tool_server(spec["name"])
    app = server.sse_app() if spec["transport"] == "sse" else server.streamable_http_app()
    config = uvicorn.Config(
        BearerCheck(app, spec["name"], spec["token"], log),
        host="127.0.0.1",
        port=spec["port"],
        log_level="warning",
        lifespan="on",
    )
    await uvicorn.Server(config).serve()


async def main(path: str) -> None:
    with open(path) as f:
        spec = json.load(f)
    await asyncio.gather(*(serve(server, spec["log"]) for server in spec["servers"]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
