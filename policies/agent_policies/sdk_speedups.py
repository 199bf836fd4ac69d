"""Take the pulumi-policy SDK's per-resource overhead out of Analyze and AnalyzeStack.

pulumi-policy 1.x converts each resource's protobuf Struct to a dict
(``json_format.MessageToDict``), deserializes it (secrets, assets) and wraps every nested
dict and list in its unknown-checking proxy: eagerly, for the whole resource, once *per
policy*, for Analyze and for every resource of AnalyzeStack. Profiled (cProfile, py-spy,
perf), that decoding was ~85% of an Analyze call and most of AnalyzeStack, while the
policies read a few fields of a few resource types. :func:`install` patches
``pulumi_policy.policy`` so that, without changing what any policy sees:

* inside Analyze, AnalyzeStack and Remediate, the SDK's decoding chain
  ``unknown_checking_proxy(deserialize_properties(MessageToDict(struct)))`` yields a
  *lazy* proxy: a subclass of the SDK's ``_DictProxy``/``_ListProxy`` that decodes one
  level of the Struct when it is first read. Keys, values, secret unwrapping and the path
  in ``UnknownValueError`` are the SDK's; assets, archives and unrecognized signatures go
  through the SDK's own code. One proxy is shared by all the policies of a request
  (validators never mutate ``args.props``);
* Analyze and AnalyzeStack do their per-request work once instead of once per policy
  (:mod:`.sdk_handlers`, for the SDK version they mirror; otherwise the resource options
  and provider are at least shared through a per-request cache);
* ``MessageToDict`` of a Struct elsewhere (Configure, Remediate) uses a direct converter
  with the same result;
* the gRPC server is ``grpc.aio`` on one thread running the SDK's handlers inline instead
  of a thread pool (:mod:`.sdk_server`);
* the cyclic garbage collector runs less often, and not during AnalyzeStack.

Differences, by design: a malformed value (unrecognized signature, NaN) fails the call
when a policy reads it, not when the request arrives; see also :mod:`.sdk_server`.

Set ``AGENT_POLICIES_SDK_SPEEDUPS=0`` to run the SDK unmodified. Nothing is patched when
the SDK internals this relies on are missing (another SDK version).
"""

from __future__ import annotations

import functools
import gc
import inspect
import math
import os
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import struct_pb2

from . import sdk_handlers, sdk_server

ENV_SWITCH = "AGENT_POLICIES_SDK_SPEEDUPS"
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

_local = threading.local()
_installed = False


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """``json_format.MessageToDict`` for a Struct, without the generic machinery."""
    fields = struct.fields  # indexing by key is faster than the map's (Python-level) items()
    return {key: _value(fields[key]) for key in fields}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return _number(value.number_value)
    return None  # null_value or unset


def _number(number: float) -> float:
    if math.isinf(number) or math.isnan(number):
        raise ValueError(f"Fail to serialize {number} for Value.number_value")
    return number


# --- request scope ------------------------------------------------------------------------------


def request_cache() -> dict[Any, tuple[Any, Any]] | None:
    """The cache of the current Analyze/AnalyzeStack/Remediate call; None outside of one.

    Entries are ``key: (kept_alive, value)``: a key holding an ``id()`` keeps that object
    alive in ``kept_alive`` (and a hit checks it), so the id cannot be reused meanwhile.
    """
    return getattr(_local, "cache", None)


def _with_request_cache(handler: Callable[..., Any], pause_gc: bool = False) -> Callable[..., Any]:
    """Run a handler with a fresh request cache; with ``pause_gc``, without cyclic GC passes.

    AnalyzeStack builds a PolicyResource (and more) for every resource, all alive until it
    returns: the collector would rescan that growing set over and over for nothing
    (measured: ~0.2 s of ~0.75 s for 10,000 resources). It runs again right after.
    """

    @functools.wraps(handler)
    def handle(self: Any, request: Any, context: Any) -> Any:
        resume_gc = pause_gc and gc.isenabled()
        if resume_gc:
            gc.disable()
        _local.cache = {}
        try:
            return handler(self, request, context)
        finally:
            _local.cache = None  # free the decoded properties as soon as the call ends
            if resume_gc:
                gc.enable()

    return handle


def _per_request(method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Memoize ``servicer.method(message)`` for one call: one object shared by its policies."""

    @functools.wraps(method)
    def memoized(self: Any, message: Any) -> Any:
        cache = request_cache()
        if cache is None:
            return method(self, message)
        key = (method, id(message))
        hit = cache.get(key)
        if hit is not None and hit[0] is message:
            return hit[1]
        result = method(self, message)
        cache[key] = (message, result)
        return result

    return memoized


# --- lazy decoding ------------------------------------------------------------------------------


class _Wire:
    """What ``MessageToDict`` returns for a Struct during a call: decoded later, lazily."""

    __slots__ = ("struct",)

    def __init__(self, struct: struct_pb2.Struct) -> None:
        self.struct = struct


def _lazy_proxies(sdk_proxy: ModuleType, sdk_deserialize: ModuleType) -> Callable[[struct_pb2.Struct], Any]:
    """Lazy subclasses of the SDK's proxies; returns the factory of a resource's root proxy."""
    dict_proxy, list_proxy, proxy_helper = sdk_proxy._DictProxy, sdk_proxy._ListProxy, sdk_proxy._proxy_helper
    deserialize_property = sdk_deserialize._deserialize_property
    unknown_value_error = sdk_proxy.UnknownValueError
    unknowns = frozenset(getattr(sdk_proxy, name) for name in dir(sdk_proxy) if name.startswith("UNKNOWN_"))

    # A node knows its place as a "trail": None for the root, else (parent's trail, key).
    # Nodes never reference their parent, so decoded levels form no reference cycles and
    # are freed by reference counting as soon as the call ends.

    class LazyDict(dict_proxy):  # type: ignore[misc, valid-type]
        """A ``_DictProxy`` whose target dict is decoded from the Struct when first read."""

        def __init__(self, struct: struct_pb2.Struct, trail: Any) -> None:  # no super(): lazy
            self._wire, self._trail = struct, trail

        def __getattr__(self, name: str) -> Any:  # only called for attributes not set yet
            if name == "_DictProxy__target":
                trail, fields = self._trail, self._wire.fields
                self._DictProxy__target = target = {key: convert(fields[key], (trail, key)) for key in fields}
                return target
            if name == "_DictProxy__props_acc":
                self._DictProxy__props_acc = path = trail_path(self._trail)
                return path
            raise AttributeError(name)

        def __getitem__(self, key: Any) -> Any:  # _DictProxy.__getitem__, inlined
            target = self._DictProxy__target
            if key == "__target":
                return target
            value = target[key]
            if isinstance(value, str) and value in unknowns:
                raise unknown_value_error(value, [*self._DictProxy__props_acc, str(key)])
            return value

    class LazyList(list_proxy):  # type: ignore[misc, valid-type]
        """A ``_ListProxy`` whose target list is decoded from the ListValue when first read."""

        def __init__(self, values: struct_pb2.ListValue, trail: Any) -> None:  # no super(): lazy
            self._wire, self._trail = values, trail

        def __getattr__(self, name: str) -> Any:
            if name == "_ListProxy__target":
                trail = self._trail
                values = self._wire.values
                self._ListProxy__target = target = [convert(value, (trail, i)) for i, value in enumerate(values)]
                return target
            if name == "_ListProxy__props_acc":
                self._ListProxy__props_acc = path = trail_path(self._trail)
                return path
            raise AttributeError(name)

        def __getitem__(self, key: Any) -> Any:  # _ListProxy.__getitem__, inlined
            target = self._ListProxy__target
            if key == "__target":
                return target
            value = target[key]
            if isinstance(value, str) and value in unknowns:
                raise unknown_value_error(value, [*self._ListProxy__props_acc, str(key)])
            return value

    def trail_path(trail: Any) -> list[str]:
        """The SDK's ``props_acc`` of a node: the keys from the root, as strings."""
        path: list[str] = []
        while trail is not None:
            trail, key = trail
            path.append(str(key))
        path.reverse()
        return path

    def convert(value: struct_pb2.Value, trail: tuple[Any, Any]) -> Any:
        """One value as the SDK's decoding chain leaves it; nested dicts and lists stay lazy."""
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            return value.string_value
        if kind == "struct_value":
            struct = value.struct_value
            if SIG_KEY not in struct.fields:
                return LazyDict(struct, trail)
            signature = struct.fields[SIG_KEY]
            is_secret = signature.WhichOneof("kind") == "string_value" and signature.string_value == SECRET_SIG
            if is_secret and "value" in struct.fields:
                return convert(struct.fields["value"], trail)  # secrets are read through
            # Assets, archives and malformed signatures: the SDK's own (eager) code.
            return proxy_helper(deserialize_property(struct_to_dict(struct)), trail_path(trail))
        if kind == "list_value":
            return LazyList(value.list_value, trail)
        if kind == "bool_value":
            return value.bool_value
        if kind == "number_value":
            return _number(value.number_value)
        return None

    return lambda struct: LazyDict(struct, None)


class _JsonFormat:
    """Stands in for ``google.protobuf.json_format`` inside ``pulumi_policy.policy`` only."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        message_to_dict = module.MessageToDict

        def fast_message_to_dict(message: Any, *args: Any, **kwargs: Any) -> Any:
            if args or kwargs or type(message) is not struct_pb2.Struct:
                return message_to_dict(message, *args, **kwargs)
            if request_cache() is not None:
                return _Wire(message)
            return struct_to_dict(message)

        self.MessageToDict = fast_message_to_dict

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _lazy_deserialize(deserialize: Callable[..., Any]) -> Callable[..., Any]:
    def deserialize_properties(props: Any, *args: Any, **kwargs: Any) -> Any:
        if type(props) is not _Wire:
            return deserialize(props, *args, **kwargs)
        if any(args) or any(kwargs.values()):  # Remediate's proxy_secrets=True: the SDK's code
            return deserialize(struct_to_dict(props.struct), *args, **kwargs)
        return props  # decoded by unknown_checking_proxy, lazily

    deserialize_properties.__wrapped__ = deserialize  # type: ignore[attr-defined]
    return deserialize_properties


def _lazy_proxy(proxy: Callable[..., Any], lazy_root: Callable[[struct_pb2.Struct], Any]) -> Callable[..., Any]:
    def unknown_checking_proxy(props: Any) -> Any:
        if type(props) is not _Wire:
            return proxy(props)
        struct, cache = props.struct, request_cache()
        if cache is None:
            return lazy_root(struct)
        hit = cache.get(id(struct))
        if hit is not None and hit[0] is struct:
            return hit[1]
        result = lazy_root(struct)
        cache[id(struct)] = (struct, result)
        return result

    unknown_checking_proxy.__wrapped__ = proxy  # type: ignore[attr-defined]
    return unknown_checking_proxy


# --- install ------------------------------------------------------------------------------------


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def install() -> bool:
    """Patch pulumi_policy.policy; returns whether the speedups are active. Idempotent.

    Must run before ``PolicyPack(...)`` is constructed (that starts the server).
    """
    global _installed
    if _installed:
        return True
    if not enabled():
        return False
    try:
        from pulumi_policy import deserialize as sdk_deserialize
        from pulumi_policy import policy as sdk
        from pulumi_policy import proxy as sdk_proxy
        from pulumi_policy.version import VERSION
    except ImportError:
        return False
    servicer = getattr(sdk, "_PolicyAnalyzerServicer", None)
    needed = (
        (servicer, "Analyze"),
        (servicer, "AnalyzeStack"),
        (servicer, "_get_resource_options"),
        (servicer, "_get_provider_resource"),
        (getattr(sdk, "json_format", None), "MessageToDict"),
        (sdk, "deserialize_properties"),
        (sdk, "unknown_checking_proxy"),
        (sdk_proxy, "_DictProxy"),
        (sdk_proxy, "_ListProxy"),
        (sdk_proxy, "_proxy_helper"),
        (sdk_deserialize, "_deserialize_property"),
    )
    if servicer is None or not all(callable(getattr(owner, name, None)) for owner, name in needed):
        return False

    if VERSION.startswith(sdk_handlers.SDK_VERSION):
        for name, method in sdk_handlers.build(sdk).items():
            setattr(servicer, name, method)
    else:  # the SDK's own handlers: share the options and provider between policies at least
        for name in ("_get_resource_options", "_get_provider_resource"):
            setattr(servicer, name, _per_request(getattr(servicer, name)))
        if getattr(sdk, "signature", None) is inspect.signature:
            # _configure_runtime_settings inspects pulumi.runtime.Settings on every call.
            sdk.signature = functools.lru_cache(maxsize=8)(inspect.signature)
    for name in ("Analyze", "AnalyzeStack", "Remediate"):
        if callable(handler := getattr(servicer, name, None)):
            setattr(servicer, name, _with_request_cache(handler, pause_gc=name == "AnalyzeStack"))
    sdk.json_format = _JsonFormat(sdk.json_format)
    sdk.deserialize_properties = _lazy_deserialize(sdk.deserialize_properties)
    sdk.unknown_checking_proxy = _lazy_proxy(sdk.unknown_checking_proxy, _lazy_proxies(sdk_proxy, sdk_deserialize))
    if getattr(sdk, "grpc", None) is grpc and sdk_server.available():
        sdk.grpc = sdk_server.GrpcModule()
    _tune_gc()
    _installed = True
    return True


def _tune_gc() -> None:
    """Fewer cyclic GC passes: decoded properties are acyclic and freed by reference counting."""
    gc.freeze()  # imports and the policies live forever: keep them out of every pass
    threshold0, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(max(threshold0, 50_000), max(threshold1, 20), max(threshold2, 20))
