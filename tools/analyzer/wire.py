"""The analyzer protocol's data: resources and violations, and their protobuf requests and responses.

Property values use the wire form: a JSON-like dict where secrets are ``{SIG_KEY: SECRET_SIG, "value": ...}`` (see
:func:`secret`) and values unknown during preview are the string :data:`UNKNOWN`. Requests can be serialized to bytes
ahead of time (:func:`encode_preview`): that is the CLI's work (in Go), so a benchmark can do it before its clock starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

ENFORCEMENT_LEVELS: dict[str, int] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "disabled": analyzer_pb2.DISABLED,
    "remediate": analyzer_pb2.REMEDIATE,
}
LEVEL_NAMES: dict[int, str] = {value: name for name, value in ENFORCEMENT_LEVELS.items()}


def secret(value: Any) -> dict[str, Any]:
    """A secret property value in wire form."""
    return {SIG_KEY: SECRET_SIG, "value": value}


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement_level: str  # "advisory" | "mandatory" | "disabled" | "remediate"
    urn: str
    message: str


@dataclass
class AnalyzerResource:
    type: str
    urn: str
    name: str
    properties: dict  # wire form, see module docstring
    parent: str = ""
    provider_urn: str = ""
    provider_type: str = ""
    provider_properties: dict = field(default_factory=dict)  # the provider's inputs, as the CLI sends them
    protect: bool = False
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodedPreview:
    """A preview's requests as protobuf bytes: one AnalyzeRequest per resource, one AnalyzeStackRequest."""

    urns: list[str]
    analyze: list[bytes]
    stack: bytes


def _struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(properties)
    return message


def _provider(
    r: AnalyzerResource, properties: struct_pb2.Struct | None = None
) -> analyzer_pb2.AnalyzerProviderResource | None:
    if not r.provider_urn:
        return None
    provider_type = r.provider_type or r.provider_urn.split("::")[-2]
    return analyzer_pb2.AnalyzerProviderResource(
        type=provider_type,
        urn=r.provider_urn,
        name=r.provider_urn.rsplit("::", 1)[-1],
        properties=properties if properties is not None else _struct(r.provider_properties),
    )


def _options(r: AnalyzerResource) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(protect=r.protect, parent=r.parent)


def _resource_fields(
    r: AnalyzerResource,
    properties: struct_pb2.Struct | None,
    provider: analyzer_pb2.AnalyzerProviderResource | None = None,
) -> dict[str, Any]:
    """The fields AnalyzeRequest and AnalyzerResource share."""
    return {
        "type": r.type,
        "properties": properties if properties is not None else _struct(r.properties),
        "urn": r.urn,
        "name": r.name,
        "options": _options(r),
        "provider": provider if provider is not None else _provider(r),
    }


def analyze_request(
    r: AnalyzerResource,
    properties: struct_pb2.Struct | None = None,
    provider: analyzer_pb2.AnalyzerProviderResource | None = None,
) -> analyzer_pb2.AnalyzeRequest:
    return analyzer_pb2.AnalyzeRequest(**_resource_fields(r, properties, provider))


def _stack_resource(
    r: AnalyzerResource,
    properties: struct_pb2.Struct | None = None,
    provider: analyzer_pb2.AnalyzerProviderResource | None = None,
) -> analyzer_pb2.AnalyzerResource:
    message = analyzer_pb2.AnalyzerResource(
        **_resource_fields(r, properties, provider),
        parent=r.parent,
        dependencies=list(r.dependencies),
    )
    for key, urns in r.property_dependencies.items():
        message.propertyDependencies[key].urns.extend(urns)
    return message


def stack_request(resources: Iterable[AnalyzerResource]) -> analyzer_pb2.AnalyzeStackRequest:
    return analyzer_pb2.AnalyzeStackRequest(resources=[_stack_resource(r) for r in resources])


def encode_resource(
    r: AnalyzerResource, properties: struct_pb2.Struct, provider_properties: struct_pb2.Struct | None
) -> tuple[bytes, analyzer_pb2.AnalyzerResource]:
    """One resource's AnalyzeRequest (serialized) and AnalyzeStack entry from its properties and its provider's
    properties as the engine received them (no re-encoding of the wire form)."""
    provider = _provider(r, provider_properties)
    return analyze_request(r, properties, provider).SerializeToString(), _stack_resource(r, properties, provider)


def encode_preview(resources: Sequence[AnalyzerResource]) -> EncodedPreview:
    """Serialize a preview's requests; each resource's properties are encoded once for both."""
    urns: list[str] = []
    analyze: list[bytes] = []
    stack = analyzer_pb2.AnalyzeStackRequest()
    for r in resources:
        properties = _struct(r.properties)
        urns.append(r.urn)
        analyze.append(analyze_request(r, properties).SerializeToString())
        stack.resources.append(_stack_resource(r, properties))
    return EncodedPreview(urns, analyze, stack.SerializeToString())


def violations_of(response: analyzer_pb2.AnalyzeResponse, urn: str) -> list[Violation]:
    """The diagnostics of an Analyze or AnalyzeStack response; ``urn`` for those that name none."""
    return [
        Violation(
            policy=d.policyName,
            enforcement_level=LEVEL_NAMES.get(d.enforcementLevel, str(d.enforcementLevel)),
            urn=d.urn or urn,
            message=d.message.strip(),
        )
        for d in response.diagnostics
    ]
