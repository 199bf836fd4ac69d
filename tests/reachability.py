"""A small NetworkPolicy evaluator over a rendered stack (tools/render_checks.Stack): may pod A open a connection
to pod B on a port, or to an address?

Kubernetes semantics: a pod selected by no policy of a direction is open in that direction; a selected pod accepts
what the union of the selecting policies' rules allows; a connection needs the source's egress AND the
destination's ingress. Every pod address is an address of the VPC CIDR (VPC CNI), so an ``ipBlock`` peer matches
a pod when it covers some VPC address its ``except`` leaves out: an over-approximation, which makes a "no route"
answer sound.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tools.render_checks import Obj, Pod, Stack, matches

NAME_LABEL = "kubernetes.io/metadata.name"


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) else value


@dataclass
class Reachability:
    stack: Stack
    vpc_cidr: str

    def __post_init__(self) -> None:
        self.vpc = ipaddress.ip_network(self.vpc_cidr)
        self.policies = [o for o in self.stack.objects if o.kind == "NetworkPolicy"]
        self.namespace_labels: dict[str, dict[str, str]] = {}
        for obj in self.stack.objects:
            if obj.kind == "Namespace":
                labels = dict((obj.body.get("metadata") or {}).get("labels") or {})
                self.namespace_labels[obj.name] = {**labels, NAME_LABEL: obj.name}
        for builtin in ("kube-system", "default"):
            self.namespace_labels.setdefault(builtin, {NAME_LABEL: builtin})

    # --- selection

    def selecting(self, pod: Pod, direction: str) -> list[Obj]:
        found = []
        for policy in self.policies:
            spec = policy.body.get("spec") or {}
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
            if (
                policy.namespace == pod.namespace
                and direction in types
                and matches(spec.get("podSelector"), pod.labels)
            ):
                found.append(policy)
        return found

    def _peer_matches_pod(self, peer: Mapping[str, Any], policy_ns: str, pod: Pod) -> bool:
        if "ipBlock" in peer:
            return self._block_covers_vpc(peer["ipBlock"])
        ns_selector = peer.get("namespaceSelector")
        if ns_selector is None:
            in_namespace = pod.namespace == policy_ns
        else:
            in_namespace = matches(ns_selector, self.namespace_labels.get(pod.namespace, {NAME_LABEL: pod.namespace}))
        return in_namespace and matches(peer.get("podSelector"), pod.labels)

    def _block_covers_vpc(self, block: Mapping[str, Any]) -> bool:
        net = ipaddress.ip_network(block["cidr"], strict=False)
        if not net.overlaps(self.vpc):
            return False
        part = self.vpc if self.vpc.subnet_of(net) else net  # the VPC addresses inside the block
        return not any(part.subnet_of(ipaddress.ip_network(e, strict=False)) for e in block.get("except") or [])

    @staticmethod
    def _block_covers_ip(block: Mapping[str, Any], ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        if address not in ipaddress.ip_network(block["cidr"], strict=False):
            return False
        return not any(address in ipaddress.ip_network(e, strict=False) for e in block.get("except") or [])

    @staticmethod
    def _port_matches(rule: Mapping[str, Any], port: int, protocol: str, target: Pod | None) -> bool:
        ports = rule.get("ports")
        if not ports:
            return True
        for item in ports:
            if (item.get("protocol") or "TCP") != protocol:
                continue
            value = _num(item.get("port"))
            if value is None:
                return True
            if isinstance(value, int):
                if value <= port <= _num(item.get("endPort") or value):
                    return True
            elif target is not None and _named_port(target, value) == port:
                return True
        return False

    # --- questions

    def ingress_allows(
        self, source: Pod | None, target: Pod, port: int, protocol: str = "TCP", source_ip: str | None = None
    ) -> bool:
        def peer_ok(peer: Mapping[str, Any], namespace: str) -> bool:
            if source is not None and self._peer_matches_pod(peer, namespace, source):
                return True
            return source_ip is not None and "ipBlock" in peer and self._block_covers_ip(peer["ipBlock"], source_ip)

        return self._allowed(target, "Ingress", port, protocol, peer_ok, target)

    def egress_allows_pod(self, source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
        return self._egress(source, port, protocol, lambda peer, ns: self._peer_matches_pod(peer, ns, target), target)

    def egress_allows_ip(self, source: Pod, ip: str, port: int, protocol: str = "TCP") -> bool:
        """To an address outside the pods (the internet, instance metadata, a VPC endpoint)."""
        return self._egress(
            source,
            port,
            protocol,
            lambda peer, _: "ipBlock" in peer and self._block_covers_ip(peer["ipBlock"], ip),
            None,
        )

    def _egress(self, source: Pod, port: int, protocol: str, peer_ok: Any, target: Pod | None) -> bool:
        return self._allowed(source, "Egress", port, protocol, peer_ok, target)

    def _allowed(self, pod: Pod, direction: str, port: int, protocol: str, peer_ok: Any, target: Pod | None) -> bool:
        """Whether the policies selecting ``pod`` for ``direction`` ("Ingress" or "Egress") have a rule with the port
        and a peer ``peer_ok`` accepts (a rule without peers accepts all); no such policy leaves the pod open."""
        policies = self.selecting(pod, direction)
        if not policies:
            return True
        peers_key = "from" if direction == "Ingress" else "to"
        for policy in policies:
            for rule in (policy.body.get("spec") or {}).get(direction.lower()) or []:
                if not self._port_matches(rule, port, protocol, target):
                    continue
                peers = rule.get(peers_key)
                if not peers or any(peer_ok(peer, policy.namespace) for peer in peers):
                    return True
        return False

    def connects(self, source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
        return self.egress_allows_pod(source, target, port, protocol) and self.ingress_allows(
            source, target, port, protocol
        )

    def open_ports(self, source: Pod, target: Pod, extra: tuple[int, ...] = (22, 80, 443, 8080, 8443)) -> list[int]:
        """The target's container ports (and a few usual ones) the source may connect to."""
        ports = {p for p in (_num(x) for x in target.ports) if isinstance(p, int)} | set(extra)
        return sorted(p for p in ports if self.connects(source, target, p))


def _named_port(pod: Pod, name: str) -> int | None:
    for container in [*(pod.spec.get("containers") or []), *(pod.spec.get("initContainers") or [])]:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return _num(port.get("containerPort"))
    return None


def pods_where(stack: Stack, namespace: str | None = None, **labels: str) -> Iterator[Pod]:
    for pod in stack.pods:
        if (namespace is None or pod.namespace == namespace) and all(pod.labels.get(k) == v for k, v in labels.items()):
            yield pod


def pods_with(stack: Stack, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
    return [
        p for p in stack.pods if p.namespace == namespace and all(p.labels.get(k) == v for k, v in selector.items())
    ]
