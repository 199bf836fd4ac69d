"""Admission-time enforcement of the sandbox rules: ValidatingAdmissionPolicies (CEL, no extra controller).

Pods that controllers create at run time and anything applied with kubectl never meet the CrossGuard pack, so the
API server enforces the same rules. Everything but the component is plain data, so tests evaluate the rendered CEL
offline. Details: docs/admission.md.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts.labels import (
    DEDICATED_TENANT_KEY,
    FARGATE,
    FARGATE_COMPUTE_TYPE,
    FARGATE_SCHEDULER,
    GPU_NODE_VALUES,
    GPU_ONLY_LABEL_PREFIX,
    GPU_ONLY_LABELS,
    GPU_RESOURCE,
    GPU_TAINT,
    ISOLATION_LABEL,
    SANDBOX_LABEL,
    TENANT_LABEL,
    dedicated_taint,
)
from components.contracts.namespaces import MODELS_NAMESPACE, NODE_DAEMON_NAMESPACES

SANDBOX_POLICY = "agent-platform-sandbox"
KATA_DNS_POLICY = "agent-platform-kata-dns"
DEDICATED_NODES_POLICY = "agent-platform-dedicated-nodes"
GPU_NODES_POLICY = "agent-platform-gpu-nodes"
# IPv6 spellings that embed an IPv4 address (name, prefix, prefix length), judged by that address: the pack's
# agent_policies/common.py IPV4_EMBEDDINGS, tested equal. IPv4-mapped is refused outright (CEL cannot parse it).
IPV4_EMBEDDINGS: tuple[tuple[str, str, int], ...] = (
    ("IPv4-compatible", "::", 96),
    ("IPv4-translated", "::ffff:0:0:0", 96),
    ("NAT64", "64:ff9b::", 96),
    ("6to4", "2002::", 16),
)
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


def _labels_path(spec_path: str) -> str:
    """Where the pod labels are for a pod spec path: ``spec.template.spec`` -> ``spec.template.metadata.labels``."""
    return "metadata.labels" if spec_path == "spec" else spec_path.removesuffix("spec") + "metadata.labels"


def _metadata_path(spec_path: str, what: str) -> str:
    """``labels`` or ``annotations`` of the pod template of a pod spec path."""
    return _labels_path(spec_path).removesuffix("labels") + what


def _has_entry(path: str, key: str) -> str:
    """Every level of the map at ``path`` exists and holds ``key``."""
    root, *parts = path.split(".")
    guards = [f"has({root}.{'.'.join(parts[: i + 1])})" for i in range(len(parts))]
    return "(" + " && ".join([*guards, f"{cel_string(key)} in {path}"]) + ")"


def _pod_metadata_is(what: str, key: str, value: str, absent: bool) -> str:
    """The pod template's ``what`` (labels or annotations) maps ``key`` to ``value`` (or, with ``absent``, may lack
    it), wherever the kind keeps its pod template."""
    render = {}
    for path in set(SPEC_PATHS.values()):
        entries = _object_path(_metadata_path(path, what))
        equal = f"{entries}[{cel_string(key)}] == {cel_string(value)}"
        render[path] = (
            f"(!{_has_entry(entries, key)} || {equal})" if absent else f"({_has_entry(entries, key)} && {equal})"
        )
    return _by_kind(render)


def _true_label(labels: str, label: str = SANDBOX_LABEL) -> str:
    """The label is "true" (any case) in the map at the ``object.``/``namespaceObject.`` path ``labels``; every
    level guarded with has(), as metadata and labels are optional."""
    root, *parts = labels.split(".")
    guards = [f"has({root}.{'.'.join(parts[: i + 1])})" for i in range(len(parts))]
    key = cel_string(label)
    return "(" + " && ".join([*guards, f"{key} in {labels}", f"{labels}[{key}].lowerAscii() == 'true'"]) + ")"


POD_SPEC = _by_kind({path: _object_path(path) for path in set(SPEC_PATHS.values())})
SPEC_PATH = _by_kind({path: cel_string(path) for path in set(SPEC_PATHS.values())})
VARIABLES = [{"name": "spec", "expression": POD_SPEC}, {"name": "specPath", "expression": SPEC_PATH}]
# What makes a workload a sandbox, at both gates: the sandbox label on its namespace, on the object itself or on its
# pod template (the pack: agent_policies/workloads.py sandbox_labelled and sandbox namespaces).
SANDBOX = " || ".join(
    [
        f"(namespaceObject != null && {_true_label('namespaceObject.metadata.labels')})",
        _true_label("object.metadata.labels"),
        "("
        + _by_kind({path: _true_label(_object_path(_labels_path(path))) for path in set(SPEC_PATHS.values())})
        + ")",
    ]
)
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


def fargate_validations() -> list[dict[str, Any]]:
    """In a namespace bound to a Fargate profile (the policy's ``fargateNamespace``), what makes a sandbox pod a
    Fargate pod, and nothing else: no runtime class, not a DaemonSet, the tier label the profile selects, and no way
    to steer it onto an EC2 node (nodeName, a scheduler other than Fargate's, node selectors or affinity, the
    ``eks.amazonaws.com/compute-type`` annotation). A Pod is judged after EKS' Fargate webhook mutated it, so it must
    carry ``schedulerName: fargate-scheduler``: proof that the profile matched (docs/fargate.md#the-two-gates)."""
    runtime, node_name, scheduler = _field("runtimeClassName"), _field("nodeName"), _field("schedulerName")
    selector, affinity = _field("nodeSelector"), _field("affinity")
    fargate_scheduler = cel_string(FARGATE_SCHEDULER)
    why = "this namespace is bound to a Fargate profile, so every sandbox pod here must be a Fargate pod"
    rules = [
        (f"!has({runtime})", f"remove ' + variables.specPath + '.runtimeClassName; {why} (its own Firecracker VM)"),
        (
            "request.kind.kind != 'DaemonSet'",
            f"use a Deployment, not a DaemonSet; Fargate runs no DaemonSets and {why}",
        ),
        (
            _pod_metadata_is("labels", ISOLATION_LABEL, FARGATE, absent=False),
            f"label the pod template {ISOLATION_LABEL}={FARGATE}, as the Fargate profile of the tenant selects; {why}",
        ),
        (
            f"!has({node_name}) || (request.kind.kind == 'Pod' && request.operation != 'CREATE')",
            f"remove ' + variables.specPath + '.nodeName: it skips the scheduler and lands on any node; {why}",
        ),
        (
            f"request.kind.kind == 'Pod' ? (has({scheduler}) && {scheduler} == {fargate_scheduler}) : "
            f"(!has({scheduler}) || {scheduler} == {fargate_scheduler})",
            f"leave ' + variables.specPath + '.schedulerName to EKS: a Pod must be scheduled by {FARGATE_SCHEDULER} "
            f"(set by the Fargate webhook when the profile matches); {why}",
        ),
        (
            f"!has({selector}) || {selector}.all(k, k == {cel_string(FARGATE_COMPUTE_TYPE)} && "
            f"{selector}[k] == {cel_string(FARGATE)})",
            f"remove ' + variables.specPath + '.nodeSelector (only {FARGATE_COMPUTE_TYPE}={FARGATE} is allowed); {why}",
        ),
        (
            f"!has({affinity}) || !has({affinity}.nodeAffinity)",
            f"remove ' + variables.specPath + '.affinity.nodeAffinity; {why}",
        ),
        (
            _pod_metadata_is("annotations", FARGATE_COMPUTE_TYPE, FARGATE, absent=True),
            f"remove the pod annotation {FARGATE_COMPUTE_TYPE} (ec2 keeps a pod off Fargate); {why}",
        ),
    ]
    return [
        {
            "expression": f"!variables.fargateNamespace || ({expression})",
            "message": message.replace("' + variables.specPath + '.", "the pod spec's ") + ".",
            "messageExpression": f"'{message}.'",
            "reason": "Forbidden",
        }
        for expression, message in rules
    ]


WHY_SANDBOX = f"sandbox pods ({SANDBOX_LABEL}=true on the namespace, the object or its pod template) "


def _runtime_class(allowed_runtime_classes: Sequence[str]) -> list[dict[str, Any]]:
    allowed = ", ".join(allowed_runtime_classes)
    runtime = _field("runtimeClassName")
    return [
        {
            # Only in a namespace bound to a Fargate profile may it be absent (fargate_validations decide there).
            "expression": (
                f"variables.fargateNamespace || (has({runtime}) && {runtime} in {cel_list(allowed_runtime_classes)})"
            ),
            "message": f"set runtimeClassName to one of {allowed}; {WHY_SANDBOX}must run in a Kata micro-VM.",
            "messageExpression": (
                f"'set ' + variables.specPath + '.runtimeClassName to one of {allowed}'"
                f" + (has({runtime}) ? ' instead of \"' + {runtime} + '\"' : '')"
                f" + '; {WHY_SANDBOX}must run in a Kata Containers micro-VM.'"
            ),
            "reason": "Forbidden",
        }
    ]


def _host_access(_: Sequence[str]) -> list[dict[str, Any]]:
    validations: list[dict[str, Any]] = []
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
    return validations


# The validations of each sandbox pod-spec check of the pack, by rule, in the pack's order (agent_policies/
# sandbox_checks.py SANDBOX_CHECKS; tests/test_admission.py holds them equal). Each gets the allowed runtime classes.
SANDBOX_VALIDATIONS: dict[str, Callable[[Sequence[str]], list[dict[str, Any]]]] = {
    "sandbox-runtime-class": _runtime_class,
    "sandbox-no-host-access": _host_access,
}


def sandbox_validations(allowed_runtime_classes: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(rule, validation) for every validation of ``agent-platform-sandbox``, only for sandboxes (the namespace,
    the object or its pod template labelled)."""
    return [
        (rule, {**validation, "expression": f"!variables.sandbox || ({validation['expression']})"})
        for rule, group in SANDBOX_VALIDATIONS.items()
        for validation in group(allowed_runtime_classes)
    ]


def sandbox_policy_spec(
    allowed_runtime_classes: Sequence[str], fargate_namespaces: Sequence[str] = ()
) -> dict[str, Any]:
    """``agent-platform-sandbox``: every sandbox pod-spec check (Kata runtime class, no host access), and in the
    namespaces bound to a Fargate profile the Fargate pod rules (the pack's fargate-sandbox-pods)."""
    if not allowed_runtime_classes:
        raise ValueError("at least one allowed runtime class is needed")
    fargate = [
        {**validation, "expression": f"!variables.sandbox || ({validation['expression']})"}
        for validation in fargate_validations()
    ]
    # The namespaces the program binds to a Fargate profile (exact namespace and tier label): a list in the policy,
    # not a namespace label a tenant could hope to set.
    fargate_namespace = f"request.namespace in {cel_list(sorted(fargate_namespaces))}"
    return workload_policy(
        [
            {"name": "sandbox", "expression": f"({SANDBOX})"},
            {"name": "fargateNamespace", "expression": fargate_namespace},
        ],
        [validation for _, validation in sandbox_validations(allowed_runtime_classes)] + fargate,
    )


def workload_policy(variables: Sequence[dict[str, str]], validations: list[dict[str, Any]]) -> dict[str, Any]:
    """A policy over every pod-bearing kind (not while being deleted), with the pod spec variables and ``variables``."""
    return {
        "failurePolicy": "Fail",
        "matchConstraints": match_constraints(),
        "matchConditions": [NOT_BEING_DELETED],
        "variables": [*VARIABLES, *variables],
        "validations": validations,
    }


def service_networks(service_cidrs: Sequence[str]) -> list[str]:
    """Each service CIDR and, for an IPv4 one, each IPv6 spelling of it (IPV4_EMBEDDINGS), as CIDR strings."""
    found = []
    for cidr in service_cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        found.append(str(network))
        if network.version == 4:
            for _, prefix, length in IPV4_EMBEDDINGS:
                base = int(ipaddress.IPv6Address(prefix)) | int(network.network_address) << (128 - length - 32)
                found.append(str(ipaddress.IPv6Network((base, length + network.prefixlen))))
    return found


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
    in_service = " || ".join(f"cidr({cel_string(c)}).containsIP(ip(n))" for c in service_networks(service_cidrs))
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
                f"{hint}; it is inside the service CIDR {cidrs} (or an IPv6 spelling of it: IPv4-compatible,"
                " IPv4-translated, NAT64 64:ff9b::/96, 6to4 2002::/16), which Kata pods cannot reach.'"
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


DEDICATED_EFFECT = dedicated_taint("")["effect"]
# A node DaemonSet (or a Pod one controls) in a platform namespace: may run on every node, tainted or not.
NODE_DAEMON = {
    "name": "nodeDaemon",
    "expression": (
        f"request.namespace in {cel_list(sorted(NODE_DAEMON_NAMESPACES))} && (request.kind.kind == 'DaemonSet' || "
        "(request.kind.kind == 'Pod' && has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists("
        "r, r.kind == 'DaemonSet' && has(r.controller) && r.controller && r.apiVersion.startsWith('apps/'))))"
    ),
}


def _toleration_conditions(key: str) -> tuple[str, str]:
    """CEL on a toleration ``t``: (it tolerates every value of a ``key:NoSchedule`` taint, it tolerates one value);
    Kubernetes' Toleration.ToleratesTaint, as agent_policies/tolerations.py decides it."""
    effect = f"(!has(t.effect) || t.effect == '' || t.effect == {cel_string(DEDICATED_EFFECT)})"
    exists = "(has(t.operator) && t.operator == 'Exists')"
    keyed = f"(has(t.key) && t.key == {cel_string(key)})"
    every = f"({effect} && {exists} && (!has(t.key) || t.key == '' || t.key == {cel_string(key)}))"
    one = f"({effect} && {keyed} && !{exists})"
    return every, one


def dedicated_nodes_policy_spec() -> dict[str, Any]:
    """``agent-platform-dedicated-nodes``: a toleration for tenant T's dedicated nodes only in T's namespace (labelled
    ``agent-platform.io/tenant: T``); tolerating every tenant's only for node DaemonSets (or the Pods a DaemonSet
    controls) in the platform namespaces. Dedicated nodes rely on that taint alone."""
    every, one = _toleration_conditions(DEDICATED_TENANT_KEY)
    tolerations = _field("tolerations")
    value = "(has(t.value) ? t.value : '')"
    platform = sorted(NODE_DAEMON_NAMESPACES)
    tenant_label = cel_string(TENANT_LABEL)
    tenant = (
        f"namespaceObject != null && has(namespaceObject.metadata.labels) && {tenant_label} in "
        f"namespaceObject.metadata.labels ? namespaceObject.metadata.labels[{tenant_label}] : ''"
    )
    key = DEDICATED_TENANT_KEY
    why = f"only pods in a namespace labelled {TENANT_LABEL}=<tenant> may run on the dedicated nodes of that tenant"
    validations = [
        {
            "expression": f"!has({tolerations}) || {tolerations}.all(t, !{every} || variables.nodeDaemon)",
            "message": f"remove tolerations of every {key} taint (operator Exists); {why}.",
            "messageExpression": (
                f"'remove the tolerations with operator Exists from ' + variables.specPath + '.tolerations: they "
                f"tolerate the dedicated nodes of every tenant ({key}); only node DaemonSets in {', '.join(platform)} "
                f"may, other pods tolerate {key}=<their tenant> in the namespace of that tenant.'"
            ),
            "reason": "Forbidden",
        },
        {
            "expression": (
                f"!has({tolerations}) || {tolerations}.all(t, !{one} || ({value} != '' && {value} == variables.tenant))"
            ),
            "message": f"remove tolerations of {key} for another tenant; {why}.",
            "messageExpression": (
                f"'remove the toleration ({key}=' + {tolerations}.filter(t, {one} && !({value} != '' && "
                f"{value} == variables.tenant)).map(t, {value}).join(', ') + ') from ' + variables.specPath + "
                f"'.tolerations; {why}, and this namespace belongs to ' + (variables.tenant == '' ? 'no tenant' : "
                "'tenant ' + variables.tenant) + '.'"
            ),
            "reason": "Forbidden",
        },
    ]
    return workload_policy([{"name": "tenant", "expression": tenant}, NODE_DAEMON], validations)


def _selects_gpu(key: str, operator: str, values: str) -> str:
    """CEL: whether a node selector requirement selects GPU nodes (agent_policies/gpu_nodes.py selects_gpu_nodes)."""
    shared = "{" + ", ".join(f"{cel_string(k)}: {cel_string(v)}" for k, v in sorted(GPU_NODE_VALUES.items())) + "}"
    only = f"({key} in {cel_list(GPU_ONLY_LABELS)} || {key}.startsWith({cel_string(GPU_ONLY_LABEL_PREFIX)}))"
    return (
        f"(({only} && {operator} in ['In', 'Exists', 'Gt', 'Lt']) || "
        f"({key} in {shared} && {operator} == 'In' && {shared}[{key}] in {values}))"
    )


def _gpu_selection() -> str:
    """CEL: the pod spec selects GPU nodes in its nodeSelector or its node affinity (required or preferred)."""
    selector = _field("nodeSelector")
    affinity = _field("affinity")
    node = f"{affinity}.nodeAffinity"
    required = f"{node}.requiredDuringSchedulingIgnoredDuringExecution"
    preferred = f"{node}.preferredDuringSchedulingIgnoredDuringExecution"
    expression = _selects_gpu("e.key", "e.operator", "(has(e.values) ? e.values : [])")
    entry = _selects_gpu("k", "'In'", f"[{selector}[k]]")
    return (
        f"(has({selector}) && {selector}.exists(k, {entry})) || "
        f"(has({affinity}) && has({affinity}.nodeAffinity) && ("
        f"(has({required}) && has({required}.nodeSelectorTerms) && {required}.nodeSelectorTerms.exists(t, "
        f"has(t.matchExpressions) && t.matchExpressions.exists(e, {expression}))) || "
        f"(has({preferred}) && {preferred}.exists(p, has(p.preference) && has(p.preference.matchExpressions) && "
        f"p.preference.matchExpressions.exists(e, {expression})))))"
    )


def gpu_nodes_policy_spec() -> dict[str, Any]:
    """``agent-platform-gpu-nodes``: tolerating the GPU nodes' taint or requesting their GPUs only in the model
    servers' namespace, or on node DaemonSets (and their Pods) in the platform namespaces, as
    agent_policies/gpu_nodes.py decides. A GPU request counts because Kubernetes' ExtendedResourceToleration plugin
    adds a toleration of the taint named after the resource."""
    key = cel_string(GPU_RESOURCE)
    effect = f"(!has(t.effect) || t.effect == '' || t.effect == {cel_string(GPU_TAINT['effect'])})"
    tolerates = (
        f"({effect} && has(t.key) && t.key == {key} && ((has(t.operator) && t.operator == 'Exists') || "
        f"(has(t.value) && t.value == {cel_string(GPU_TAINT['value'])})))"
    )
    requests = (
        f"(has(c.resources) && ((has(c.resources.requests) && {key} in c.resources.requests) || "
        f"(has(c.resources.limits) && {key} in c.resources.limits)))"
    )
    tolerations = _field("tolerations")
    platform = sorted(NODE_DAEMON_NAMESPACES)
    why = (
        f"only model servers (namespace {MODELS_NAMESPACE}) and node DaemonSets in {', '.join(platform)} may run on "
        "GPU nodes"
    )
    validations = [
        {
            "expression": f"variables.allowed || !has({tolerations}) || {tolerations}.all(t, !{tolerates})",
            "message": f"remove tolerations of the {GPU_RESOURCE} taint; {why}.",
            "messageExpression": (
                f"'remove the tolerations of the {GPU_RESOURCE} taint from ' + variables.specPath + "
                f"'.tolerations; {why}.'"
            ),
            "reason": "Forbidden",
        }
    ]
    validations.append(
        {
            "expression": f"variables.allowed || !({_gpu_selection()})",
            "message": f"remove the GPU node selection (nodeSelector, node affinity); {why}.",
            "messageExpression": (
                f"'remove the GPU node selection from ' + variables.specPath + '.nodeSelector or .affinity.nodeAffinity; "
                f"{why}.'"
            ),
            "reason": "Forbidden",
        }
    )
    for list_name in ("initContainers", "containers"):
        containers = _field(list_name)
        validations.append(
            {
                "expression": f"variables.allowed || !has({containers}) || {containers}.all(c, !{requests})",
                "message": f"remove the {GPU_RESOURCE} requests and limits from {list_name}; {why}.",
                "messageExpression": (
                    f"'remove the {GPU_RESOURCE} request from ' + variables.specPath + '.{list_name}[' + "
                    f"{_names(containers, requests, 'c')} + ']; {why} (a pod requesting {GPU_RESOURCE} is given a "
                    "toleration of their taint).'"
                ),
                "reason": "Forbidden",
            }
        )
    allowed = f"request.namespace == {cel_string(MODELS_NAMESPACE)} || variables.nodeDaemon"
    return workload_policy([NODE_DAEMON, {"name": "allowed", "expression": allowed}], validations)


def binding_specs(mode: str) -> dict[str, dict[str, Any]]:
    """Binding name -> spec. Sandbox rules: namespaces labelled sandbox, and every other namespace (NotIn also
    matches namespaces without the label, so no object is validated twice), where the policy's ``sandbox`` variable
    picks the objects or pod templates labelled sandbox. Kata DNS, dedicated nodes and GPU nodes: everywhere."""
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
            },
        },
        KATA_DNS_POLICY: {"policyName": KATA_DNS_POLICY, "validationActions": actions},
        DEDICATED_NODES_POLICY: {"policyName": DEDICATED_NODES_POLICY, "validationActions": actions},
        GPU_NODES_POLICY: {"policyName": GPU_NODES_POLICY, "validationActions": actions},
    }


@dataclass(frozen=True)
class SandboxAdmissionArgs:
    mode: str  # "Deny" or "Audit" (agent-platform:admissionMode)
    runtime_classes: tuple[str, ...]  # the enabled RuntimeClasses sandbox pods may use
    service_cidrs: tuple[str, ...]
    resolver_ip: str  # named in the messages as the fix
    fargate_namespaces: tuple[str, ...] = ()  # bound to a Fargate profile each (components/tenants/fargate.py)


class SandboxAdmission(pulumi.ComponentResource):
    """The four ValidatingAdmissionPolicies and their five bindings (cluster-scoped)."""

    policies: dict[str, k8s.admissionregistration.v1.ValidatingAdmissionPolicy]
    bindings: dict[str, k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding]

    def __init__(self, name: str, args: SandboxAdmissionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:admission:SandboxAdmission", name, None, opts)
        labels = {"app.kubernetes.io/part-of": "agent-platform"}
        specs = {
            SANDBOX_POLICY: sandbox_policy_spec(args.runtime_classes, args.fargate_namespaces),
            KATA_DNS_POLICY: kata_dns_policy_spec(args.service_cidrs, args.resolver_ip),
            DEDICATED_NODES_POLICY: dedicated_nodes_policy_spec(),
            GPU_NODES_POLICY: gpu_nodes_policy_spec(),
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
