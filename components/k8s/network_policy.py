"""NetworkPolicy bodies as plain data: peers, ports, the policy object and the rules every platform namespace shares.

Builders return dicts (no Pulumi), so tests evaluate them and the areas compose them. Rules between a service and its
callers come from the service's declaration (components/k8s/reach.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from components.contracts.namespaces import KUBE_SYSTEM
from components.contracts.networks import INSTANCE_METADATA, NON_INTERNET_IPV4

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
DNS_PODS = {"k8s-app": "kube-dns"}  # CoreDNS (EKS add-on)
DNS_PORT = 53
# EKS Pod Identity agent (hostNetwork DaemonSet): AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials
POD_IDENTITY_AGENT = "169.254.170.23/32"
POD_IDENTITY_PORT = 80
HTTPS = 443
HTTP = 80


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def pods(labels: Mapping[str, str], namespace: str | None = None) -> dict[str, Any]:
    """A peer: pods with ``labels`` in ``namespace`` (None: the policy's own namespace)."""
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(labels)}}
    if namespace is not None:
        peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}
    return peer


def cidr(block: str, except_: Sequence[str] = ()) -> dict[str, Any]:
    ip_block: dict[str, Any] = {"cidr": block}
    if except_:
        ip_block["except"] = list(except_)
    return {"ipBlock": ip_block}


def policy(
    name: str,
    namespace: str,
    selector: Mapping[str, str] | None,
    *,
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A NetworkPolicy body; ``None`` leaves that direction out, ``[]`` denies it for the selected pods."""
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": dict(selector)} if selector else {},
        "policyTypes": types,
    }
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    labels = {"app.kubernetes.io/part-of": "agent-platform", "app.kubernetes.io/managed-by": "pulumi"}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def default_deny(namespace: str) -> dict[str, Any]:
    """Every pod of the namespace: nothing in, nothing out, unless another policy allows it."""
    return policy("default-deny", namespace, None, ingress=[], egress=[])


def allow_dns(namespace: str) -> dict[str, Any]:
    return policy(
        "allow-dns",
        namespace,
        None,
        egress=[
            {"to": [pods(DNS_PODS, KUBE_SYSTEM)], "ports": [{"protocol": "UDP", "port": DNS_PORT}, *tcp(DNS_PORT)]}
        ],
    )


def https_out(*, except_: Sequence[str] = (INSTANCE_METADATA,)) -> dict[str, Any]:
    """TCP 443 anywhere but ``except_``: the API server (its ClusterIP and ENIs) and the AWS APIs."""
    return {"to": [cidr("0.0.0.0/0", except_)], "ports": tcp(HTTPS)}


def pod_identity_out() -> dict[str, Any]:
    return {"to": [cidr(POD_IDENTITY_AGENT)], "ports": tcp(POD_IDENTITY_PORT)}


def non_internet(*extra: str) -> list[str]:
    """The non-internet IPv4 ranges plus ``extra`` (the VPC, the service CIDR) where a range does not cover it."""
    ranges = [ipaddress.ip_network(r) for r in NON_INTERNET_IPV4]
    more = [e for e in dict.fromkeys(extra) if not any(ipaddress.ip_network(e).subnet_of(r) for r in ranges)]
    return [*NON_INTERNET_IPV4, *more]
