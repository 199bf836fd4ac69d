"""Selectors and scrape targets: every Service, PDB, NetworkPolicy and monitor selects pods (and never Job pods
where they would become endpoints), and every scrape target has a listener."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tools.render import Rendered
from tools.render_checks.model import (
    BUILTIN_NAMESPACES,
    Finding,
    Obj,
    Pod,
    Stack,
    describe,
    dig,
    matches,
)

# Services that EKS runs itself (the API server, the kubelet endpoints): monitors may target them.
PLATFORM_SERVICES: tuple[tuple[str, dict[str, str]], ...] = (
    ("default", {"component": "apiserver", "provider": "kubernetes"}),  # the `kubernetes` Service
    ("kube-system", {"app.kubernetes.io/name": "kubelet", "k8s-app": "kubelet"}),  # managed by the operator
)


def selected_pods(stack: Stack, namespace: str, selector: Mapping[str, Any] | None) -> list[Pod]:
    return [p for p in stack.pods if p.namespace == namespace and matches(selector, p.labels)]


def _monitor_namespaces(obj: Obj, stack: Stack) -> set[str]:
    ns_selector = dig(obj.body, "spec", "namespaceSelector") or {}
    if ns_selector.get("any"):
        return {o.namespace for o in stack.objects} | BUILTIN_NAMESPACES
    return set(ns_selector.get("matchNames") or [obj.namespace])


def _services(
    stack: Stack, namespaces: set[str], selector: Mapping[str, Any] | None
) -> list[tuple[Obj | None, str, Mapping[str, Any]]]:
    found: list[tuple[Obj | None, str, Mapping[str, Any]]] = [
        (o, o.namespace, o.body)
        for o in stack.objects
        if o.kind == "Service"
        and o.namespace in namespaces
        and matches(selector, dig(o.body, "metadata", "labels") or {})
    ]
    for namespace, labels in PLATFORM_SERVICES:
        if namespace in namespaces and matches(selector, labels):
            found.append((None, namespace, {}))
    return found


def check_selectors(stack: Stack) -> Iterator[Finding]:
    """Selectors that match no pod, and endpoint/disruption selectors that also match Job pods."""
    for obj in stack.objects:
        spec = obj.body.get("spec") or {}
        if obj.kind == "Service" and spec.get("selector"):
            selector, endpoints = spec["selector"], True
        elif obj.kind == "PodDisruptionBudget":
            selector, endpoints = spec.get("selector"), True
        elif obj.kind == "NetworkPolicy" and (spec.get("podSelector") or {}):
            selector, endpoints = spec["podSelector"], False
        elif obj.kind == "PodMonitor":
            namespaces = _monitor_namespaces(obj, stack)
            if not any(p.namespace in namespaces and matches(spec.get("selector"), p.labels) for p in stack.pods):
                yield Finding(obj.origin, str(obj), f"selector {describe(spec.get('selector'))} matches no pod")
            continue
        else:
            continue
        pods = selected_pods(stack, obj.namespace, selector)
        if not pods:
            yield Finding(
                obj.origin, str(obj), f"selector {describe(selector)} matches no pod in namespace {obj.namespace}"
            )
        elif endpoints and (jobs := sorted({str(p.owner) for p in pods if p.job})):
            yield Finding(
                obj.origin,
                str(obj),
                f"selector {describe(selector)} also matches the pods of {', '.join(jobs)}: they would become "
                "endpoints (or count in the disruption budget); select on a label only the serving pods carry",
            )


def _service_pods(stack: Stack, namespace: str, service: Mapping[str, Any]) -> list[Pod]:
    selector = dig(service, "spec", "selector")
    return selected_pods(stack, namespace, selector) if selector else []


def check_scrape_targets(stack: Stack, rendered: Sequence[Rendered]) -> Iterator[Finding]:
    for obj in stack.objects:
        spec = obj.body.get("spec") or {}
        if obj.kind == "ServiceMonitor":
            services = _services(stack, _monitor_namespaces(obj, stack), spec.get("selector"))
            if not services:
                yield Finding(obj.origin, str(obj), f"selector {describe(spec.get('selector'))} matches no Service")
                continue
            for endpoint in spec.get("endpoints") or []:
                yield from _check_service_endpoint(stack, obj, services, endpoint)
        elif obj.kind == "PodMonitor":
            namespaces = _monitor_namespaces(obj, stack)
            pods = [p for p in stack.pods if p.namespace in namespaces and matches(spec.get("selector"), p.labels)]
            for endpoint in spec.get("podMetricsEndpoints") or []:
                port = endpoint.get("port") or endpoint.get("portNumber")
                if pods and not any(port in p.ports for p in pods):
                    yield Finding(obj.origin, str(obj), f"no selected pod exposes port {port!r}: nothing listens there")
    for item in rendered:
        for job in _scrape_configs(item.install.values):
            yield from _check_scrape_job(stack, item, job)


def _check_service_endpoint(
    stack: Stack, monitor: Obj, services: list[tuple[Obj | None, str, Mapping[str, Any]]], endpoint: Mapping[str, Any]
) -> Iterator[Finding]:
    wanted = endpoint.get("port") or endpoint.get("targetPort")
    for owner, namespace, service in services:
        if owner is None:
            continue  # endpoints managed outside the stack (API server, kubelet)
        ports = dig(service, "spec", "ports") or []
        port = next((p for p in ports if wanted in (p.get("name"), p.get("port"), p.get("targetPort"))), None)
        if port is None:
            yield Finding(monitor.origin, str(monitor), f"{owner} has no port {wanted!r}")
            continue
        target = port.get("targetPort", port.get("port"))
        pods = _service_pods(stack, namespace, service)
        if pods and not any(target in p.ports for p in pods):
            yield Finding(
                monitor.origin,
                str(monitor),
                f"{owner} port {wanted!r} targets {target!r}, which no selected pod exposes: nothing listens there",
            )


def _scrape_configs(values: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(values, Mapping):
        for key, value in values.items():
            if key == "additionalScrapeConfigs" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, Mapping))
            else:
                yield from _scrape_configs(value)


def _check_scrape_job(stack: Stack, item: Rendered, job: Mapping[str, Any]) -> Iterator[Finding]:
    roles = {c.get("role") for c in job.get("kubernetes_sd_configs") or []}
    port = None
    for relabel in job.get("relabel_configs") or []:
        if relabel.get("target_label") == "__address__" and ":" in str(relabel.get("replacement", "")):
            port = int(str(relabel["replacement"]).rsplit(":", 1)[1])
    if port is None:
        return
    if "node" in roles:
        listeners = [p for p in stack.pods if p.daemon and p.host_network and port in p.ports]
        where = "hostNetwork DaemonSet"
    else:
        listeners = [p for p in stack.pods if port in p.ports]
        where = "pod"
    if not listeners:
        yield Finding(
            f"{item.install.kind} {item.install.name}",
            f"additionalScrapeConfigs[{job.get('job_name')}]",
            f"scrapes port {port} ({'/'.join(sorted(r for r in roles if r))} discovery) but no {where} in the stack "
            "listens there: the targets stay down",
        )
