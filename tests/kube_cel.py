"""Evaluate ValidatingAdmissionPolicies offline, the way the API server does, with cel-expr-python.

cel-expr-python (cel-cpp) follows the same CEL spec as the API server's cel-go but lacks Kubernetes' libraries; this
module adds the IP and CIDR functions the policies call, with Kubernetes' semantics, and models matching and
``failurePolicy``. Details: docs/admission.md#the-cel-implementation.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Kubernetes CEL functions this evaluator provides (the policies use no others beyond standard CEL).
PROVIDED = ("isIP", "ip", "cidr", "containsIP")

# kind -> (apiGroup, version, resource), for the resource rules.
RESOURCES: dict[str, tuple[str, str, str]] = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Sandbox": ("agents.x-k8s.io", "v1beta1", "sandboxes"),
    "SandboxTemplate": ("extensions.agents.x-k8s.io", "v1beta1", "sandboxtemplates"),
}


# --- the Kubernetes IP / CIDR library ------------------------------------------------------------


def _message_classes() -> tuple[descriptor_pool.DescriptorPool, type, type]:
    proto = descriptor_pb2.FileDescriptorProto(name="k8s_net.proto", package="k8s.net", syntax="proto3")
    for name in ("IP", "CIDR"):
        message = proto.message_type.add(name=name)
        message.field.add(
            name="text",
            number=1,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    classes = (message_factory.GetMessageClass(pool.FindMessageTypeByName(f"k8s.net.{n}")) for n in ("IP", "CIDR"))
    return pool, *classes


POOL, IPMessage, CIDRMessage = _message_classes()
_IPV4_PART = re.compile(r"^(0|[1-9][0-9]{0,2})$")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Kubernetes' parseIPAddr: netip.ParseAddr, no zone, no IPv4-mapped IPv6. Raises ValueError."""
    if not isinstance(text, str) or text != text.strip() or "%" in text:
        raise ValueError(f"IP address {text!r} is not allowed (zone or surrounding space)")
    address = ipaddress.ip_address(text)  # refuses leading zeros in IPv4 octets, like netip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address {text!r} is not allowed")
    return address


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    network = ipaddress.ip_network(text, strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address {text!r} is not allowed")
    return network


def is_ip(text: str) -> bool:
    try:
        parse_ip(text)
    except ValueError:
        return False
    return True


def _contains_ip(network: Any, address: Any) -> bool:
    text = address.text if isinstance(address, IPMessage) else address
    return parse_ip(text) in parse_cidr(network.text)


@cache
def environment() -> cel.Env:
    ip_type, cidr_type = cel.Type("k8s.net.IP"), cel.Type("k8s.net.CIDR")
    string = cel.Type.STRING
    functions = [
        cel.FunctionDecl("isIP", [cel.Overload("is_ip", cel.Type.BOOL, [string], impl=is_ip)]),
        cel.FunctionDecl(
            "ip", [cel.Overload("string_to_ip", ip_type, [string], impl=lambda s: IPMessage(text=str(parse_ip(s))))]
        ),
        cel.FunctionDecl(
            "cidr",
            [cel.Overload("string_to_cidr", cidr_type, [string], impl=lambda s: CIDRMessage(text=str(parse_cidr(s))))],
        ),
        cel.FunctionDecl(
            "containsIP",
            [
                cel.Overload("cidr_contains_ip_string", cel.Type.BOOL, [cidr_type, string], True, _contains_ip),
                cel.Overload("cidr_contains_ip_ip", cel.Type.BOOL, [cidr_type, ip_type], True, _contains_ip),
            ],
        ),
    ]
    variables = {name: cel.Type.DYN for name in ("object", "oldObject", "request", "namespaceObject", "variables")}
    return cel.NewEnv(POOL, variables=variables, functions=functions, extensions=[ext_strings.ExtStrings()])


@cache
def compile_expression(expression: str) -> Any:
    return environment().compile(expression)


class CelError(Exception):
    """An expression failed to evaluate (failurePolicy decides)."""


def evaluate(expression: str, data: Mapping[str, Any]) -> Any:
    value = compile_expression(expression).eval(data=dict(data))
    if value.type() == cel.Type.ERROR:
        raise CelError(f"{expression[:80]}...: {value.value()}")
    return value.plain_value()


# --- admission -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the API server would do with one request."""

    denials: list[tuple[str, str]] = field(default_factory=list)  # (binding, message)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    audits: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)  # (policy, validation index); -1: an error

    @property
    def allowed(self) -> bool:
        return not self.denials


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector; absent or empty matches everything."""
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _rule_matches(rules: Sequence[Mapping[str, Any]], kind: str, operation: str, subresource: str) -> bool:
    group, version, resource = RESOURCES[kind]
    name = f"{resource}/{subresource}" if subresource else resource
    return any(
        group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", [])
        for rule in rules
        if (version in rule.get("apiVersions", []) or "*" in rule.get("apiVersions", []))
        and (name in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (operation in rule.get("operations", []) or "*" in rule.get("operations", []))
    )


def request_for(obj: Mapping[str, Any], namespace: str, operation: str = "CREATE", subresource: str = "") -> dict:
    group, version, resource = RESOURCES[obj["kind"]]
    return {
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": resource},
        "subResource": subresource,
        "namespace": namespace,
        "name": obj["metadata"].get("name", ""),
        "operation": operation,
    }


def admit(
    policies: Mapping[str, Mapping[str, Any]],
    bindings: Mapping[str, Mapping[str, Any]],
    obj: Mapping[str, Any],
    namespace: Mapping[str, Any],
    operation: str = "CREATE",
    subresource: str = "",
) -> Decision:
    """Run every binding's policy on ``obj`` created in ``namespace`` (a Namespace object)."""
    decision = Decision()
    ns_labels = (namespace.get("metadata") or {}).get("labels") or {}
    obj_labels = (obj.get("metadata") or {}).get("labels") or {}
    data = {
        "object": obj,
        "oldObject": None,
        "request": request_for(obj, namespace["metadata"]["name"], operation, subresource),
        "namespaceObject": namespace,
    }
    for binding_name, binding in bindings.items():
        policy = policies[binding["policyName"]]
        constraints = policy.get("matchConstraints") or {}
        match = binding.get("matchResources") or {}
        if not _rule_matches(constraints.get("resourceRules") or [], obj["kind"], operation, subresource):
            continue
        selectors = [
            (constraints.get("namespaceSelector"), ns_labels),
            (constraints.get("objectSelector"), obj_labels),
            (match.get("namespaceSelector"), ns_labels),
            (match.get("objectSelector"), obj_labels),
        ]
        if not all(selector_matches(selector, labels) for selector, labels in selectors):
            continue
        actions = binding["validationActions"]
        for index, message in _validate(policy, data):
            decision.failed.append((binding["policyName"], index))
            if "Deny" in actions:
                decision.denials.append((binding_name, message))
            if "Warn" in actions:
                decision.warnings.append((binding_name, message))
            if "Audit" in actions:
                decision.audits.append((binding_name, message))
    return decision


def _validate(policy: Mapping[str, Any], data: dict[str, Any]) -> list[tuple[int, str]]:
    """(index, message) of the failed validations ([] when the policy passes or does not apply)."""
    fail_closed = policy.get("failurePolicy", "Fail") == "Fail"

    def failure(error: CelError) -> list[tuple[int, str]]:
        return [(-1, f"evaluation error: {error}")] if fail_closed else []

    try:
        if not all(evaluate(c["expression"], data) is True for c in policy.get("matchConditions") or []):
            return []
    except CelError as error:
        return failure(error)
    variables: dict[str, Any] = {}
    for variable in policy.get("variables") or []:
        try:
            variables[variable["name"]] = evaluate(variable["expression"], {**data, "variables": variables})
        except CelError as error:
            return failure(error)  # every validation here reads the variables
    scope = {**data, "variables": variables}
    messages: list[tuple[int, str]] = []
    for index, validation in enumerate(policy.get("validations") or []):
        try:
            ok = evaluate(validation["expression"], scope)
        except CelError as error:
            messages += failure(error)
            continue
        if ok is True:
            continue
        message = validation.get("message", "")
        if validation.get("messageExpression"):
            with contextlib.suppress(CelError):  # the API server falls back to the static message
                message = evaluate(validation["messageExpression"], scope)
        messages.append((index, message))
    return messages
