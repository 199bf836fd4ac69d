"""Run the real Pulumi program under Pulumi's mock engine and record what it registers.

This is the engine half of the offline preview: stack config is read from ``Pulumi.<stack>.yaml``
the way the CLI does (project defaults from ``Pulumi.yaml``, structured values as JSON, ``secure:``
values replaced by a fake placeholder and marked secret), the program in ``__main__.py`` runs in a
fresh context, and every ``RegisterResource`` request is kept in the engine's wire form.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import json
import re
import runpy
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import MockResourceArgs, set_mocks
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_in_stack

from components.config import PlatformConfig, check_stack_file, from_engine, load_yaml, top_level_texts
from components.config.reader import safe_load
from tools.mocks import PlatformMocks

ROOT = Path(__file__).resolve().parent.parent
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
PLACEHOLDER = "sk-offline-placeholder-not-a-secret"
MASK = "[secret]"


@dataclass
class Registration:
    """One ``RegisterResource`` request, as the engine received it."""

    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    protect: bool
    properties: dict[str, Any]  # wire form: secrets as signature objects, unknowns as the sentinel
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete, when set
    aliases: list[dict[str, Any]] = field(default_factory=list)  # the request's alias specs (or URNs), wire form
    ignore_changes: list[str] = field(default_factory=list)  # properties whose diffs the engine ignores
    retain_on_delete: bool = False  # Pulumi leaves the object in place when it deletes the resource

    @functools.cached_property
    def inputs(self) -> dict[str, Any]:
        """Properties with secrets replaced by ``[secret]``: safe to print or write (computed once)."""
        return mask_secrets(self.properties)

    @property
    def plain(self) -> dict[str, Any]:
        """Properties with secrets unwrapped, for assertions in tests only."""
        return unwrap_secrets(self.properties)


@dataclass
class ProgramResult:
    stack: str
    registrations: list[Registration]
    outputs: dict[str, Any]  # masked
    secret_outputs: frozenset[str]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def named(self, type_: str, name: str) -> Registration:
        matches = [r for r in self.registrations if r.type == type_ and r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources of type {type_} named {name}")
        return matches[0]


# The wire form's special values: the signature key (secrets, resource references, assets, output values) and the
# unknown sentinel. A request without them is plain JSON.
_MARKED = re.compile(b"|".join(re.escape(mark.encode()) for mark in (SECRET_SIG_KEY, UNKNOWN)))
_ABSENT = object()


def registration_of(request: Any, urn: str, properties: dict[str, Any] | None = None) -> Registration:
    """A RegisterResourceRequest as recorded (``properties``: its object as a dict, when already made)."""
    return Registration(
        urn=urn,
        type=request.type,
        name=request.name,
        parent=request.parent,
        provider=request.provider.rsplit("::", 1)[0] if request.provider else "",
        custom=request.custom,
        protect=request.protect,
        properties=json_format.MessageToDict(request.object) if properties is None else properties,
        dependencies=list(request.dependencies),
        property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
        custom_timeouts={k: v for k in ("create", "update", "delete") if (v := getattr(request.customTimeouts, k, ""))},
        aliases=[json_format.MessageToDict(alias) for alias in request.aliases],
        ignore_changes=list(request.ignoreChanges),
        retain_on_delete=request.retainOnDelete,
    )


# Called with each registration and its properties as the engine received them (a protobuf Struct), in order.
OnRegister = Callable[["Registration", struct_pb2.Struct], None]


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: PlatformMocks, on_register: OnRegister | None = None) -> None:
        super().__init__(mocks)
        mocks.monitor = self
        self.registrations: list[Registration] = []
        self.on_register = on_register
        self._lock = threading.Lock()  # the SDK registers from several threads: one order for both

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        properties = json_format.MessageToDict(request.object)
        response = self._answer(request, properties)
        self._record(request, response.urn, properties)
        return response

    def _record(self, request: Any, urn: str, properties: dict[str, Any]) -> None:
        registration = registration_of(request, urn, properties)
        with self._lock:
            self.registrations.append(registration)
            if self.on_register is not None:
                self.on_register(registration, request.object)

    def _answer(self, request: Any, properties: dict[str, Any]) -> Any:
        """The mock's answer. Plain JSON inputs (no secret, unknown, resource reference or asset: nothing the SDK's
        wire form marks) skip MockMonitor's deserialize and serialize, which give them back unchanged: the mocks see
        the same values, and only what they add or change goes into a copy of the request's object."""
        if _MARKED.search(request.object.SerializeToString()):
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        args = MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=dict(properties),
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(args)
        answer = struct_pb2.Struct()
        answer.CopyFrom(request.object)
        answer.update({k: v for k, v in state.items() if properties.get(k, _ABSENT) != v})
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=answer)

    def recorded(self) -> list[Registration]:
        """What the run registered, in order (once the run is over)."""
        return list(self.registrations)


# What answers the SDK for run_program: an in-process RecordingMonitor, or tools/engine.py's client of a monitor in
# its own process (the preview's). Either has ``recorded()``.
Engine = Callable[[PlatformMocks, "OnRegister | None"], Any]


_DESCEND = object()


def _same(value: Any) -> Any:
    return value


def _rebuild(value: Any, replace: Callable[[dict], Any], leaf: Callable[[Any], Any] = _same) -> Any:
    """A copy of a JSON-like tree where ``replace`` may substitute any object (``_DESCEND``: walk into it)."""
    if isinstance(value, dict):
        replaced = replace(value)
        if replaced is not _DESCEND:
            return replaced
        return {k: _rebuild(v, replace, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebuild(v, replace, leaf) for v in value]
    return leaf(value)


def _is_secret(value: dict) -> bool:
    return value.get(SECRET_SIG_KEY) == SECRET_SIG


def mask_secrets(value: Any, secret: bool = False) -> Any:
    """Replace every secret scalar by ``[secret]``; a secret object keeps its keys (so a masked
    manifest stays a valid manifest) but none of its values."""
    return _rebuild(
        value,
        lambda d: mask_secrets(d.get("value"), True) if _is_secret(d) else _DESCEND,
        (lambda _: MASK) if secret else _same,
    )


def unwrap_secrets(value: Any) -> Any:
    return _rebuild(value, lambda d: unwrap_secrets(d.get("value")) if _is_secret(d) else _DESCEND)


# ---------------------------------------------------------------------------------------------
# Stack configuration, read like the CLI does


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any) -> Any:
    return _rebuild(value, lambda d: PLACEHOLDER if set(d) == {"secure"} else _DESCEND)


def _engine_string(value: Any) -> str:
    """The CLI hands every config value to the program as a string; objects and arrays as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def config_file(path: Path) -> dict[str, Any]:
    """The ``config:`` section of a stack file (or an overlay written like one) as the CLI reads it: top-level values
    as written, YAML 1.2 booleans, keys in the ``<namespace>:<name>`` form."""
    text = path.read_text()
    written = {**((load_yaml(text) or {}).get("config") or {}), **top_level_texts(text)}
    # The CLI's key forms: `<namespace>:<name>`, or the old `<namespace>:config:<name>` (config.ParseKey).
    return {re.sub(r"^([^:]+):config:([^:]+)$", r"\1:\2", key): value for key, value in written.items()}


def stack_config(
    stack: str, overrides: dict[str, Any] | None = None, root: Path = ROOT
) -> tuple[dict[str, str], list[str]]:
    """Config map (``ns:key`` -> string) and secret keys for ``stack``: project defaults, then
    ``Pulumi.<stack>.yaml``, then ``overrides`` (used by tests and benchmarks). The stack file is read as the CLI
    reads it (top-level values as written, YAML 1.2 booleans); what only the file shows (keys without namespace,
    plain text in a secret key) raises ConfigError here."""
    project = safe_load((root / "Pulumi.yaml").read_text())
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name}; stacks: dev, staging, prod")
    values: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        full = key if ":" in key else f"{project['name']}:{key}"
        if isinstance(decl, dict) and "default" in decl:
            values[full] = decl["default"]
        elif not isinstance(decl, dict):
            values[full] = decl
    values.update(config_file(path))
    values.update(overrides or {})
    check_stack_file(values)
    secret_keys = sorted(k for k, v in values.items() if _has_secure(v))
    return {k: _engine_string(_replace_secure(v)) for k, v in values.items()}, secret_keys


def load_stack(stack: str, overrides: dict[str, Any] | None = None, root: Path = ROOT) -> PlatformConfig:
    """The stack's typed configuration, parsed as the program's ``load()`` parses it (same strings, same secret
    keys), without running the program: the first step of the offline preview, and cheap for tests."""
    config, secret_keys = stack_config(stack, overrides, root)
    return from_engine(stack, config, secret_keys)


# ---------------------------------------------------------------------------------------------
# Running the program


def _resolve_output(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)

    async def resolve() -> tuple[Any, bool]:
        known = await output.is_known()
        return (await output.future(with_unknowns=True) if known else UNKNOWN), await output.is_secret()

    return asyncio.get_event_loop().run_until_complete(resolve())  # run()'s loop, not running


def run_program(
    stack: str,
    overrides: dict[str, Any] | None = None,
    program: Callable[[], Any] | None = None,
    root: Path = ROOT,
    stack_references: dict[str, dict[str, Any]] | None = None,
    on_register: OnRegister | None = None,
    engine: Engine | None = None,
) -> ProgramResult:
    """Evaluate ``program`` (default: the project's ``__main__.py``) for ``stack`` under mocks.

    Runs in a fresh context and event loop, so several runs in one process do not share state.
    Exceptions from the program (``ConfigError`` above all) propagate unchanged. ``on_register`` sees each
    resource as it registers (the offline preview's policy pack, tools/preview.py). ``engine`` makes the monitor the
    SDK talks to from the mocks (tools/engine.py runs it in a process of its own, as the CLI's engine is).
    """
    config, secret_keys = stack_config(stack, overrides, root)
    if stack_references is None:
        from tools.split import references  # the split's other side, answered offline (tools/split.py)

        stack_references = references(root, stack, overrides)
    region = config.get("aws:region", "us-east-1")
    project = safe_load((root / "Pulumi.yaml").read_text())["name"]
    mocks = PlatformMocks(region=region, stack=stack, project=project, stack_references=stack_references)
    monitor = (engine or RecordingMonitor)(mocks, on_register)

    def run() -> ProgramResult:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        collecting = gc.isenabled()  # a program may turn the collector off for its run (tenants/__main__.py)
        try:
            set_mocks(mocks, project=project, stack=stack, preview=True, monitor=monitor)
            pulumi.runtime.set_all_config(config, secret_keys)
            # set_mocks made and finished a root Stack of its own; the entrypoint below makes the program's
            # (run_in_stack, as the language host does), which also runs what the program registers with pulumi.run.
            pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
            # What a failed run left pending (the Stack's outputs registered after the error) must not be awaited on
            # this run's loop: cleared as pulumi.runtime.test does before each test.
            pulumi.runtime.settings.SETTINGS.rpc_manager.clear()
            pulumi.runtime.settings.SETTINGS.outputs.clear()
            main = program or (lambda: runpy.run_path(str(root / "__main__.py"), run_name="__main__"))
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            # The language host's entrypoint: a program may register an async part with pulumi.run (tenants/).
            stacks: list[Any] = []

            def entry() -> Any:
                stacks.append(pulumi.runtime.get_root_resource())  # set in the entrypoint's task, not here
                return main()

            loop.run_until_complete(run_in_stack(entry))
            stack_resource = stacks[0]
            outputs, secret_outputs = {}, set()
            for key, value in sorted(getattr(stack_resource, "outputs", {}).items()):
                resolved, secret = _resolve_output(value)
                outputs[key] = MASK if secret else mask_secrets(resolved)
                if secret:
                    secret_outputs.add(key)
            return ProgramResult(stack, monitor.recorded(), outputs, frozenset(secret_outputs))
        finally:
            loop.close()
            asyncio.set_event_loop(None)
            if collecting:
                gc.enable()

    return contextvars.Context().run(run)


# Kubernetes types that are not objects in the cluster (providers, Helm releases, component wrappers).
_NOT_OBJECTS = re.compile(r"^(pulumi:providers:|kubernetes:helm\.sh/|kubernetes:yaml/|kubernetes:kustomize/)")


def manifest_name(r: Registration) -> str | None:
    """``Deployment_tenant-acme_hermes.yaml`` for a Kubernetes object, None for anything else."""
    if not r.type.startswith("kubernetes:") or _NOT_OBJECTS.match(r.type) or not r.custom:
        return None
    meta = r.inputs.get("metadata") or {}
    kind = r.inputs.get("kind") or r.type.rsplit(":", 1)[-1]
    parts = [kind, meta.get("namespace"), meta.get("name") or r.name]
    return "_".join(re.sub(r"[^A-Za-z0-9.-]", "-", str(p)) for p in parts if p) + ".yaml"
