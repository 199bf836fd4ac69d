"""The Kata pod rules: kata-dns (no ClusterIP nameserver, IPv6 spellings of IPv4 included) and
kata-clh-no-init-containers."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.dns import kata_dns
from agent_policies.kata import kata_clh_no_init_containers

from tests.policies.builders import KIND_IDS, check, who, workload_resource
from tests.policy_cases import KINDS, VPC_DNS, Kind, kata_spec
from tools.analyzer import PolicyPackProcess

# --- kata-dns ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_kata_dns_every_kind(kind: Kind) -> None:
    assert check(kata_dns, kind, kata_spec()) == []
    messages = check(
        kata_dns,
        kind,
        kata_spec(dnsPolicy="ClusterFirst", dnsConfig={"nameservers": ["172.20.0.10"]}),
    )
    assert len(messages) == 2
    assert messages[0].startswith(f'{who(kind)}: set {kind.spec_path}.dnsPolicy to "None" instead of "ClusterFirst"')
    assert messages[1].startswith(
        f"{who(kind)}: replace nameserver 172.20.0.10 in {kind.spec_path}.dnsConfig.nameservers"
    )
    assert "service CIDR 172.20.0.0/16" in messages[1]
    # Not Kata: the rule does not apply.
    assert check(kata_dns, kind, {"containers": []}, sandbox=False) == []
    assert check(kata_dns, kind, kata_spec(runtimeClassName="runc", dnsPolicy="ClusterFirst")) == []


@pytest.mark.parametrize(
    ("dns_policy", "dns_config", "expected"),
    [
        ("None", {"nameservers": ["10.1.0.2", "fd00::2"]}, []),
        ("None", {"nameservers": ["172.20.0.10"]}, ["service CIDR 172.20.0.0/16"]),
        ("None", {"nameservers": ["kube-dns.kube-system"]}, ["must be IP addresses"]),
        ("None", {"nameservers": [53]}, ["must be IP addresses"]),
        ("None", {"nameservers": []}, ["needs at least one nameserver"]),
        ("None", {"searches": ["svc.cluster.local"]}, ["needs at least one nameserver"]),
        ("None", None, ["needs at least one nameserver"]),
        ("None", {"nameservers": "10.1.0.2"}, ["needs at least one nameserver"]),
        (None, {"nameservers": [VPC_DNS]}, ['dnsPolicy to "None" and list']),
        ("Default", {"nameservers": [VPC_DNS]}, ['instead of "Default"']),
    ],
)
def test_kata_dns_cases(dns_policy: Any, dns_config: Any, expected: list[str]) -> None:
    spec = kata_spec(runtimeClassName="kata-clh", dnsPolicy=dns_policy, dnsConfig=dns_config)  # None: absent
    messages = check(kata_dns, KINDS[1], spec)
    assert len(messages) == len(expected), messages
    for message, fragment in zip(messages, expected, strict=True):
        assert fragment in message


def test_kata_dns_config() -> None:
    deployment = KINDS[1]
    spec = kata_spec(dnsConfig={"nameservers": ["10.1.0.2"]})
    assert len(check(kata_dns, deployment, spec, config={"serviceCidrs": ["10.1.0.0/24"]})) == 1
    runsc = kata_spec(runtimeClassName="vm-clh", dnsPolicy="ClusterFirst")
    assert check(kata_dns, deployment, runsc) == []
    assert len(check(kata_dns, deployment, runsc, config={"kataRuntimePrefix": "vm-"})) == 1


@pytest.mark.parametrize(
    ("nameserver", "inside"),
    [
        ("::ffff:0:172.20.0.10", True),  # IPv4-translated
        ("::172.20.0.10", True),  # IPv4-compatible
        ("64:ff9b::172.20.0.10", True),  # NAT64
        ("2002:ac14:000a::1", True),  # 6to4
        ("64:ff9b::10.1.0.2", False),
        ("fd00::a", False),
        ("::1", False),
        ("::", False),
    ],
)
def test_kata_dns_ipv6_spellings_of_ipv4(nameserver: str, inside: bool) -> None:
    spec = kata_spec(dnsConfig={"nameservers": [nameserver]})
    messages = check(kata_dns, KINDS[1], spec)
    assert len(messages) == int(inside), messages
    if inside:
        assert f"replace nameserver {nameserver} in spec.template.spec.dnsConfig.nameservers" in messages[0]
        assert ", IPv4 172.20.0.10)" in messages[0]
        assert "inside the service CIDR" in messages[0]


@pytest.mark.parametrize(
    ("nameserver", "ipv4"),
    [
        ("::ffff:172.20.0.10", "172.20.0.10"),
        ("::FFFF:AC14:000A", "172.20.0.10"),
        ("0:0:0:0:0:ffff:172.20.0.10", "172.20.0.10"),
        ("::ffff:203.0.113.53", "203.0.113.53"),
        ("::ffff:10.1.0.2", "10.1.0.2"),  # even the VPC resolver: admission (CEL ip()) refuses every mapped form
    ],
)
def test_kata_dns_refuses_ipv4_mapped_nameservers(nameserver: str, ipv4: str) -> None:
    (message,) = check(kata_dns, KINDS[1], kata_spec(dnsConfig={"nameservers": [nameserver]}))
    assert (
        f"replace nameserver {nameserver} in spec.template.spec.dnsConfig.nameservers with the plain IPv4 address {ipv4}"
        in message
    )


def test_kata_dns_ipv6_service_cidr() -> None:
    spec = kata_spec(dnsConfig={"nameservers": ["fd00:10:96::a", "10.1.0.2"]})
    config = {"serviceCidrs": ["fd00:10:96::/112"]}
    assert len(check(kata_dns, KINDS[0], spec, config=config)) == 1


def test_grpc_kata_dns_mapped_ipv4(pack: PolicyPackProcess) -> None:
    spec = kata_spec(dnsConfig={"nameservers": ["::ffff:172.20.0.10"]})
    (violation,) = pack.analyze(workload_resource(KINDS[2], spec))
    assert violation.policy == "kata-dns"
    assert "the plain IPv4 address 172.20.0.10" in violation.message


# --- kata-clh-no-init-containers --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_kata_clh_no_init_containers_every_kind(kind: Kind) -> None:
    init = [{"name": "fetch-config", "image": "busybox"}]
    messages = check(kata_clh_no_init_containers, kind, kata_spec(runtimeClassName="kata-clh", initContainers=init))
    assert messages == [
        f"{who(kind)}: remove {kind.spec_path}.initContainers (fetch-config) and move that "
        "work into the entrypoint, or use runtimeClassName kata-qemu; kata-clh (Cloud "
        'Hypervisor) fails to start init containers with "File exists (os error 17)".'
    ]
    assert check(kata_clh_no_init_containers, kind, kata_spec(initContainers=init)) == []
    assert check(kata_clh_no_init_containers, kind, kata_spec(runtimeClassName="kata-clh")) == []
    assert check(kata_clh_no_init_containers, kind, kata_spec(runtimeClassName="kata-clh", initContainers=[])) == []
