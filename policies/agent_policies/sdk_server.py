"""Serve the policy pack with ``grpc.aio`` on one thread (installed by sdk_speedups).

``pulumi_policy.PolicyPack`` serves with ``grpc.server(ThreadPoolExecutor(max_workers=4))``:
gRPC's polling thread hands every call to a worker thread and back. With the GIL the
workers never run in parallel, and the hand-offs and GIL contention cost more than the
policies: measured on a 2-vCPU VM, ~14 context switches per Analyze call, and ~10-15%
fewer resources/s than this server. Here one thread runs an asyncio loop with a
``grpc.aio`` server that calls the SDK's (synchronous) handlers directly. Every call still
runs in its own ``contextvars`` context (one asyncio task per call), as the SDK expects.

Differences: handlers run one at a time (the policies are CPU-bound: the GIL serialized
them anyway); an exception escaping a handler is reported with grpc.aio's wording
("Unexpected <class ...>: ..."), with the same status code.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import grpc


def _inline(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Coroutine[Any, Any, Any]]:
    async def call(request: Any, context: Any) -> Any:
        # The handler sees no running loop, as on the SDK's worker threads: the SDK runs
        # awaitable validators with loop.run_until_complete() on a new loop of its own.
        # This loop is blocked in this call meanwhile, so the two never interleave.
        running = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(None)
        try:
            return behavior(request, context)
        finally:
            asyncio.events._set_running_loop(running)

    return call


def _inline_handler(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
    if handler is None or handler.unary_unary is None:  # the Analyzer service is all unary-unary
        return handler
    return handler._replace(unary_unary=_inline(handler.unary_unary))


class _InlineHandlers(grpc.GenericRpcHandler):
    """A generic handler whose unary-unary methods run inline on the event loop thread."""

    def __init__(self, handler: grpc.GenericRpcHandler) -> None:
        self._handler = handler
        self._methods: dict[str, grpc.RpcMethodHandler | None] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._methods:
            self._methods[method] = _inline_handler(self._handler.service(handler_call_details))
        return self._methods[method]


class InlineAsyncServer:
    """The part of the ``grpc.server(...)`` API that ``PolicyPack`` uses."""

    def __init__(self, options: Iterable[tuple[str, Any]] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="policy-pack-grpc", daemon=True).start()
        self._server: grpc.aio.Server = self._on_loop(grpc.aio.server, options=list(options or ()))

    def _on_loop(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function`` on the loop thread (awaiting its result if needed); wait for it."""

        async def call() -> Any:
            result = function(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._on_loop(self._server.add_generic_rpc_handlers, tuple(_InlineHandlers(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        inline = {name: _inline_handler(handler) for name, handler in handlers.items()}
        self._on_loop(self._server.add_registered_method_handlers, service, inline)

    def add_insecure_port(self, address: str) -> int:
        return self._on_loop(self._server.add_insecure_port, address)

    def start(self) -> None:
        self._on_loop(self._server.start)

    def stop(self, grace: float | None) -> None:
        self._on_loop(self._server.stop, grace)


class GrpcModule:
    """Stands in for the ``grpc`` module inside ``pulumi_policy.policy`` only."""

    def __getattr__(self, name: str) -> Any:
        return getattr(grpc, name)

    @staticmethod
    def server(thread_pool: Any = None, options: Iterable[tuple[str, Any]] | None = None) -> InlineAsyncServer:
        if thread_pool is not None:
            thread_pool.shutdown(wait=False)  # unused: the handlers run on the server's loop
        return InlineAsyncServer(options)


def available() -> bool:
    return callable(getattr(getattr(grpc, "aio", None), "server", None))
