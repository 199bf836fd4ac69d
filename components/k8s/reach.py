"""How a caller reaches an in-cluster service (components/contracts/services.py), built from its one declaration: the
ingress rule on the serving pods, the egress rule on the callers, the Service object, the URL and the callers' proxy
exclusions. Plain data; nothing here creates a resource."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from components.contracts.services import ANY_SANDBOX, Pods, Service
from components.k8s.network_policy import cidr, pods, tcp
from components.k8s.nlb import NLB_ANNOTATIONS, NLB_CLASS

LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _peer(caller: Pods, namespace: str) -> dict[str, Any]:
    if caller.namespace == ANY_SANDBOX:
        raise ValueError(f"{caller}: sandboxes reach services through an NLB only (nlb=True)")
    return pods(caller.labels, None if caller.namespace in (None, namespace) else caller.namespace)


def ingress(service: Service, vpc_cidr: str) -> dict[str, Any]:
    """The rule admitting the service's callers to its pods (an NLB-fronted service: the VPC, where the NLB is)."""
    peers = [cidr(vpc_cidr)] if service.nlb else [_peer(c, service.namespace) for c in service.callers]
    return {"from": peers, "ports": tcp(service.pod_port)}


def egress(service: Service, vpc_cidr: str, caller_namespace: str | None = None) -> dict[str, Any]:
    """The rule letting a caller (in ``caller_namespace``; None: the service's) open connections to the service: the
    VPC on the listener port for an NLB (its addresses are not known in advance and may change), else its pods."""
    if service.nlb:
        return {"to": [{"ipBlock": {"cidr": vpc_cidr}}], "ports": [{"protocol": "TCP", "port": service.port}]}
    namespace = None if caller_namespace in (None, service.namespace) else service.namespace
    return {"to": [pods(service.selector, namespace)], "ports": tcp(service.pod_port)}


def service_spec(service: Service, vpc_cidr: str = "") -> dict[str, Any]:
    """The Service object's ``spec``: an internal NLB (AWS Load Balancer Controller, IP targets) open to the VPC only,
    or a ClusterIP; the pods' port by name for a ClusterIP, by number behind an NLB."""
    if not service.nlb:
        port = {"name": service.port_name, "port": service.port, "targetPort": service.port_name}
        return {"selector": dict(service.selector), "ports": [port]}
    port = {"name": service.port_name, "port": service.port, "targetPort": service.pod_port, "protocol": "TCP"}
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "loadBalancerClass": NLB_CLASS,
        "selector": dict(service.selector),
        "ports": [port],
    }
    if vpc_cidr:
        spec["loadBalancerSourceRanges"] = [vpc_cidr]
    return spec


def service_metadata(service: Service, labels: Mapping[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": service.name, "namespace": service.namespace, "labels": dict(labels)}
    if service.nlb:
        metadata["annotations"] = dict(NLB_ANNOTATIONS)
    return metadata


def no_proxy(urls: Iterable[str]) -> str:
    """NO_PROXY for a caller that sends everything else through the egress proxy: loopback and the hosts of the
    services it calls directly (which the proxy would refuse: they are not on the internet)."""
    hosts = [urlsplit(url).hostname or "" for url in urls]
    return ",".join(dict.fromkeys((*LOOPBACK, *(h for h in hosts if h))))
