"""Admission-time enforcement of the sandbox rules: ValidatingAdmissionPolicies (CEL, no extra controller).

Pods that controllers create at run time and anything applied with kubectl never meet the CrossGuard pack, so the
API server enforces the same rules. Everything but the component is plain data, so tests evaluate the rendered CEL
offline. Details: docs/admission.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.labels import SANDBOX_LABEL

SANDBOX_POLICY = "agent-platform-sandbox"
KATA_DNS_POLICY = "agent-platform-kata-dns"
KATA_PREFIX = "kata"  # runtime classes backed by Kata Containers (the pack's kataRuntimePrefix)
VALIDATION_ACTIONS = {"Deny": ["Deny"], "Audit": ["Audit", "Warn"]}

# (apiGroup, resources, where the pod spec lives): the kinds a pod template reaches the API server in.
_TEMPLATE = "spec.template.spec"
_POD_TEMPLATE = "spec.podTemplate.spec"
WORKLOADS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("", ("pods", "pods/ephemeralcontainers"), {"Pod": "spec"}),
    (
        "apps",
        ("deployments", "statefulsets", "daemonsets", "replicasets"),
        {"Deployment": _TEMPLATE, "StatefulSet": _TEMPLATE, "DaemonSet": _TEMPLATE, "ReplicaSet": _TEMPLATE},
    ),
    ("batch", ("jobs", "cronjobs"), {"Job": _TEMPLATE, "CronJob": "spec.jobTemplate.spec.template.spec"}),
    ("agents.x-k8s.io", ("sandboxes",), {"Sandbox": _POD_TEMPLATE}),
    ("extensions.agents.x-k8s.io", ("sandboxtemplates",), {"SandboxTemplate": _POD_TEMPLATE}),
)
SPEC_PATHS: dict[str, str] = {kind: path for _, _, kinds in WORKLOADS for kind, path in kinds.items()}


def cel_string(value: str) -> str:
    """A CEL string literal (JSON escaping is valid CEL for the characters used here)."""
    return json.dumps(value)


def cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(cel_string(v) for v in values) + "]"


def _kind_is(kinds: Sequence[str]) -> str:
    return (
        f"request.kind.kind == {cel_string(kinds[0])}" if len(kinds) == 1 else f"request.kind.kind in {cel_list(kinds)}"
    )


def _by_kind(render: dict[str, str], default_kind: str = "Deployment") -> str:
    """``request.kind.kind == 'Pod' ? <Pod expr> : ... : <default>``, one branch per pod spec path."""
    paths: dict[str, list[str]] = {}
    for kind, path in SPEC_PATHS.items():
        paths.setdefault(path, []).append(kind)
    default_path = SPEC_PATHS[default_kind]
    branches = [f"{_kind_is(kinds)} ? {render[path]}" for path, kinds in paths.items() if path != default_path]
    return " : ".join([*branches, render[default_path]])


def _object_path(path: str) -> str:
    return "object." + path


POD_SPEC = _by_kind({path: _object_path(path) for path in set(SPEC_PATHS.values())})
SPEC_PATH = _by_kind({path: cel_string(path) for path in set(SPEC_PATHS.values())})
VARIABLES = [{"name": "spec", "expression": POD_SPEC}, {"name": "specPath", "expression": SPEC_PATH}]
# Requests that only finish a deletion (finalizers) must not be blocked by a pod that predates the policy.
NOT_BEING_DELETED = {
    "name": "not-being-deleted",
    "expression": "request.operation != 'UPDATE' || !has(object.metadata.deletionTimestamp)",
}


def _kata_runtime_condition() -> str:
    """True when the pod spec's runtimeClassName starts with ``kata`` (matchConditions cannot use variables)."""
    render = {}
    for path in set(SPEC_PATHS.values()):
        spec = _object_path(path)
        render[path] = (
            f"(has({spec}.runtimeClassName) && {spec}.runtimeClassName.startsWith({cel_string(KATA_PREFIX)}))"
        )
    return _by_kind(render)


def match_constraints() -> dict[str, Any]:
    return {
        "resourceRules": [
            {
                "apiGroups": [group],
                "apiVersions": ["*"],
                "resources": list(resources),
                "operations": ["CREATE", "UPDATE"],
            }
            for group, resources, _ in WORKLOADS
        ]
    }


def _field(name: str) -> str:
    return f"variables.spec.{name}"


def _is_true(value: str) -> str:
    return f"(has({value}) && {value} == true)"


def _privileged(container: str) -> str:
    return f"(has({container}.securityContext) && {_is_true(f'{container}.securityContext.privileged')})"


def _names(items: str, condition: str, var: str) -> str:
    """The ``name`` of every item of a list that meets ``condition`` (on ``var``), comma-separated."""
    return f"{items}.filter({var}, {condition}).map({var}, {var}.name).join(', ')"


def sandbox_policy_spec(allowed_runtime_classes: Sequence[str]) -> dict[str, Any]:
    """``agent-platform-sandbox``: Kata runtime class, no host namespaces, no privilege, no hostPath."""
    if not allowed_runtime_classes:
        raise ValueError("at least one allowed runtime class is needed")
    allowed = ", ".join(allowed_runtime_classes)
    why_sandbox = f"sandbox pods ({SANDBOX_LABEL}=true on the namespace or the pod) "
    runtime = _field("runtimeClassName")
    validations: list[dict[str, Any]] = [
        {
            "expression": f"has({runtime}) && {runtime} in {cel_list(allowed_runtime_classes)}",
            "message": f"set runtimeClassName to one of {allowed}; {why_sandbox}must run in a Kata micro-VM.",
            "messageExpression": (
                f"'set ' + variables.specPath + '.runtimeClassName to one of {allowed}'"
                f" + (has({runtime}) ? ' instead of \"' + {runtime} + '\"' : '')"
                f" + '; {why_sandbox}must run in a Kata Containers micro-VM.'"
            ),
            "reason": "Forbidden",
        }
    ]
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        validations.append(
            {
                "expression": f"!{_is_true(_field(flag))}",
                "message": f"set {flag} to false; sandbox pods must not share the node namespaces.",
                "messageExpression": (
                    f"'remove ' + variables.specPath + '.{flag} (set it to false); "
                    "sandbox pods must not share the node namespaces.'"
                ),
                "reason": "Forbidden",
            }
        )
    for list_name in ("initContainers", "containers", "ephemeralContainers"):
        items = _field(list_name)
        validations.append(
            {
                "expression": f"!has({items}) || {items}.all(c, !{_privileged('c')})",
                "message": f"set securityContext.privileged to false in every {list_name} entry; "
                "sandbox containers must not be privileged.",
                "messageExpression": (
                    f"'set securityContext.privileged to false in ' + variables.specPath + '.{list_name}['"
                    f" + {_names(items, _privileged('c'), 'c')} + ']; sandbox containers must not be privileged.'"
                ),
                "reason": "Forbidden",
            }
        )
    volumes = _field("volumes")
    validations.append(
        {
            "expression": f"!has({volumes}) || {volumes}.all(v, !has(v.hostPath))",
            "message": "remove hostPath volumes; sandbox pods must not mount node paths "
            "(use emptyDir or a PersistentVolumeClaim).",
            "messageExpression": (
                f"'remove the hostPath volume ' + {_names(volumes, 'has(v.hostPath)', 'v')}"
                " + ' from ' + variables.specPath + '.volumes; sandbox pods must not mount node paths"
                " (use emptyDir or a PersistentVolumeClaim).'"
            ),
            "reason": "Forbidden",
        }
    )
    return {
        "failurePolicy": "Fail",
        "matchConstraints": match_constraints(),
        "matchConditions": [NOT_BEING_DELETED],
        "variables": VARIABLES,
        "validations": validations,
    }


def kata_dns_policy_spec(service_cidrs: Sequence[str], resolver_ip: str) -> dict[str, Any]:
    """``agent-platform-kata-dns``: Kata pods resolve through the VPC resolver, never a ClusterIP.

    Kubernetes' ``ip()``/``isIP()`` refuse IPv4-mapped IPv6 (``::ffff:a.b.c.d``) and zones, so such a
    nameserver is rejected as "not an IP address", wherever it points: write the plain IPv4 address.
    """
    if not service_cidrs:
        raise ValueError("at least one service CIDR is needed")
    hint = f"the VPC resolver {resolver_ip} (the VPC CIDR base address + 2)"
    dns = _field("dnsConfig")
    servers = _field("dnsConfig.nameservers")
    has_servers = f"has({dns}) && has({servers})"
    in_service = " || ".join(f"cidr({cel_string(c)}).containsIP(ip(n))" for c in service_cidrs)
    cidrs = ", ".join(service_cidrs)
    policy = _field("dnsPolicy")
    validations = [
        {
            "expression": f"has({policy}) && {policy} == 'None'",
            "message": f'set dnsPolicy to "None" and list {hint} in dnsConfig.nameservers; '
            "Kata pods cannot reach CoreDNS at its ClusterIP.",
            "messageExpression": (
                "'set ' + variables.specPath + '.dnsPolicy to \"None\"'"
                f" + (has({policy}) ? ' instead of \"' + {policy} + '\"' : '')"
                f" + ' and list {hint} in ' + variables.specPath + '.dnsConfig.nameservers;"
                " Kata pods cannot reach CoreDNS at its ClusterIP.'"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": f"{has_servers} && size({servers}) > 0",
            "message": f"add {hint} to dnsConfig.nameservers; a Kata pod with dnsPolicy None needs a nameserver.",
            "messageExpression": (
                f"'add {hint} to ' + variables.specPath + '.dnsConfig.nameservers;"
                ' a Kata pod with dnsPolicy "None" needs at least one nameserver.\''
            ),
            "reason": "Invalid",
        },
        {
            "expression": f"!({has_servers}) || {servers}.all(n, isIP(n))",
            "message": f"replace every nameserver that is not a plain IP address with {hint}.",
            "messageExpression": (
                f"'replace nameserver ' + {servers}.filter(n, !isIP(n)).join(', ')"
                " + ' in ' + variables.specPath + '.dnsConfig.nameservers with "
                f"{hint}; nameservers must be IP addresses (IPv4-mapped IPv6 such as ::ffff:a.b.c.d is refused:"
                " write the IPv4 address).'"
            ),
            "reason": "Invalid",
        },
        {
            "expression": f"!({has_servers}) || {servers}.all(n, !isIP(n) || !({in_service}))",
            "message": f"replace nameservers inside the service CIDR {cidrs} with {hint}; "
            "Kata pods cannot reach ClusterIP addresses.",
            "messageExpression": (
                f"'replace nameserver ' + {servers}.filter(n, isIP(n) && ({in_service})).join(', ')"
                " + ' in ' + variables.specPath + '.dnsConfig.nameservers with "
                f"{hint}; it is inside the service CIDR {cidrs}, which Kata pods cannot reach.'"
            ),
            "reason": "Forbidden",
        },
    ]
    return {
        "failurePolicy": "Fail",
        "matchConstraints": match_constraints(),
        "matchConditions": [
            NOT_BEING_DELETED,
            {"name": "kata-runtime-class", "expression": _kata_runtime_condition()},
        ],
        "variables": VARIABLES,
        "validations": validations,
    }


def binding_specs(mode: str) -> dict[str, dict[str, Any]]:
    """Binding name -> spec. Sandbox rules: namespaces labelled sandbox, plus labelled objects elsewhere
    (NotIn also matches namespaces without the label, so no object is validated twice). Kata DNS: everywhere."""
    if mode not in VALIDATION_ACTIONS:
        raise ValueError(f"admission mode must be one of {', '.join(VALIDATION_ACTIONS)}, got {mode!r}")
    actions = VALIDATION_ACTIONS[mode]
    sandbox = {SANDBOX_LABEL: "true"}
    return {
        f"{SANDBOX_POLICY}-namespaces": {
            "policyName": SANDBOX_POLICY,
            "validationActions": actions,
            "matchResources": {"namespaceSelector": {"matchLabels": sandbox}},
        },
        f"{SANDBOX_POLICY}-labelled": {
            "policyName": SANDBOX_POLICY,
            "validationActions": actions,
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [{"key": SANDBOX_LABEL, "operator": "NotIn", "values": ["true"]}]
                },
                "objectSelector": {"matchLabels": sandbox},
            },
        },
        KATA_DNS_POLICY: {"policyName": KATA_DNS_POLICY, "validationActions": actions},
    }


@dataclass(frozen=True)
class SandboxAdmissionArgs:
    mode: str  # "Deny" or "Audit" (agent-platform:admissionMode)
    runtime_classes: tuple[str, ...]  # the enabled RuntimeClasses sandbox pods may use
    service_cidrs: tuple[str, ...]
    resolver_ip: str  # named in the messages as the fix


class SandboxAdmission(pulumi.ComponentResource):
    """The two ValidatingAdmissionPolicies and their three bindings (cluster-scoped)."""

    policies: dict[str, k8s.admissionregistration.v1.ValidatingAdmissionPolicy]
    bindings: dict[str, k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding]

    def __init__(self, name: str, args: SandboxAdmissionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:admission:SandboxAdmission", name, None, opts)
        labels = {"app.kubernetes.io/part-of": "agent-platform"}
        specs = {
            SANDBOX_POLICY: sandbox_policy_spec(args.runtime_classes),
            KATA_DNS_POLICY: kata_dns_policy_spec(args.service_cidrs, args.resolver_ip),
        }
        self.policies = {
            policy: k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
                policy,
                metadata={"name": policy, "labels": labels},
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for policy, spec in specs.items()
        }
        for binding, spec in binding_specs(args.mode).items():
            k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                binding,
                metadata={"name": binding, "labels": labels},
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policies[spec["policyName"]]]),
            )
        self.register_outputs({"mode": args.mode, "policies": list(specs)})
