"""A real MCP client session for the lab (run with the lab's own mcp venv): the ``mcp`` SDK's ``Client`` over
streamable HTTP, every HTTP response it received kept whole, so a test can search what a caller was sent.

usage: python mcp_client.py < REQUEST.json > RESULT.json

REQUEST: ``{"url", "headers": {...}, "ops": [{"op": "list"} | {"op": "call", "name", "args"}]}``.
RESULT: ``{"ops": [{"tools": [...]} | {"text", "is_error"} | {"error"}], "error": str|null, "wire": [{"method",
"url", "status", "body", "location"?}]}``; a failure to connect (e.g. the gateway's 401) is ``error`` with no ops.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


class Recorded(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, record: dict[str, Any]) -> None:
        self.inner, self.record = inner, record

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            self.record["body"] += part.decode(errors="replace")
            yield part

    async def aclose(self) -> None:
        await self.inner.aclose()


class Tee(httpx2.AsyncBaseTransport):
    """The default transport; each response's body is copied into ``wire`` as the client reads it."""

    def __init__(self, wire: list[dict[str, Any]]) -> None:
        self.inner, self.wire = httpx2.AsyncHTTPTransport(), wire

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        record = {"method": request.method, "url": str(request.url), "status": response.status_code, "body": ""}
        if "location" in response.headers:
            record["location"] = response.headers["location"]
        self.wire.append(record)
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=Recorded(stream, record),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run_op(client: Client, op: dict[str, Any]) -> dict[str, Any]:
    try:
        if op["op"] == "list":
            return {"tools": sorted(tool.name for tool in (await client.list_tools()).tools)}
        result = await client.call_tool(op["name"], op.get("args", {}))
        text = "\n".join(getattr(part, "text", "") for part in result.content)
        return {"text": text, "is_error": bool(result.is_error)}
    except Exception as error:  # the refusal is what is measured: keep its whole text
        return {"error": f"{type(error).__name__}: {error}"}


async def main(request: dict[str, Any]) -> dict[str, Any]:
    wire: list[dict[str, Any]] = []
    http = httpx2.AsyncClient(headers=request["headers"], transport=Tee(wire), timeout=httpx2.Timeout(30, read=60))
    results: list[dict[str, Any]] = []
    error = None
    try:
        async with http, Client(streamable_http_client(request["url"], http_client=http)) as client:
            for op in request["ops"]:
                results.append(await run_op(client, op))
    except Exception as failure:  # anyio wraps transport failures in exception groups: keep the whole text
        error = f"{type(failure).__name__}: {failure!r}"
    return {"ops": results, "error": error, "wire": wire}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
