"""Network component: subnets per AZ, discovery and ELB tags, NAT gateways per stack."""

from __future__ import annotations

import ipaddress

import pytest

from components.network.vpc import EKS_UNSUPPORTED_ZONE_IDS
from tests.conftest import program_result

SUBNET = "aws:ec2/subnet:Subnet"


def subnets(stack: str, kind: str) -> list[dict]:
    return [r.inputs for r in program_result(stack).of_type(SUBNET) if f"-{kind}-" in r.name]


@pytest.mark.parametrize(("stack", "azs"), [("dev", 2), ("staging", 3), ("prod", 3)])
def test_one_public_and_one_private_subnet_per_az(stack: str, azs: int) -> None:
    public, private = subnets(stack, "public"), subnets(stack, "private")
    assert len(public) == len(private) == azs
    assert len({s["availabilityZone"] for s in private}) == azs
    assert {s["availabilityZone"] for s in public} == {s["availabilityZone"] for s in private}


def test_zones_are_availability_zones_eks_accepts_by_zone_id() -> None:
    """The mocked account has an opted-in Local Zone (its name sorts first) and us-east-1c is use1-az3, which EKS
    refuses for cluster subnets: prod's three zones are a, b and d."""
    prod = {s["availabilityZone"] for s in subnets("prod", "private")}
    assert prod == {"us-east-1a", "us-east-1b", "us-east-1d"}
    staging = {s["availabilityZone"] for s in subnets("staging", "private")}  # us-west-2: nothing excluded
    assert staging == {"us-west-2a", "us-west-2b", "us-west-2c"}
    assert {"use1-az3", "usw1-az2", "cac1-az3"} == set(EKS_UNSUPPORTED_ZONE_IDS)


def test_subnet_cidrs_are_computed_inside_the_vpc() -> None:
    result = program_result("staging")
    vpc = ipaddress.ip_network(result.of_type("aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"])
    cidrs = [ipaddress.ip_network(s["cidrBlock"]) for s in subnets("staging", "public") + subnets("staging", "private")]
    assert vpc == ipaddress.ip_network("10.2.0.0/16")
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])


def test_subnet_tags_for_load_balancers_and_karpenter() -> None:
    for s in subnets("dev", "private"):
        assert s["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert s["tags"]["karpenter.sh/discovery"] == "agents-dev"
        assert "kubernetes.io/role/elb" not in s["tags"]
    for s in subnets("dev", "public"):
        assert s["tags"]["kubernetes.io/role/elb"] == "1"
        assert "karpenter.sh/discovery" not in s["tags"]
        assert s["mapPublicIpOnLaunch"] is False


@pytest.mark.parametrize(("stack", "nats"), [("dev", 1), ("staging", 3), ("prod", 3)])
def test_nat_gateway_count_per_stack(stack: str, nats: int) -> None:
    result = program_result(stack)
    assert len(result.of_type("aws:ec2/natGateway:NatGateway")) == nats
    assert len(result.of_type("aws:ec2/eip:Eip")) == nats


def test_private_routes_go_through_nat_and_public_through_igw() -> None:
    result = program_result("prod")
    tables = {r.name: r.inputs for r in result.of_type("aws:ec2/routeTable:RouteTable")}
    private = [t for name, t in tables.items() if "-private-" in name]
    assert len(private) == 3
    assert len({t["routes"][0]["natGatewayId"] for t in private}) == 3  # one NAT per AZ in prod
    public = [t for name, t in tables.items() if name.endswith("-public")]
    assert public[0]["routes"][0]["cidrBlock"] == "0.0.0.0/0"
    assert "gatewayId" in public[0]["routes"][0]
    dev_private = [
        r.inputs for r in program_result("dev").of_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name
    ]
    assert len({t["routes"][0]["natGatewayId"] for t in dev_private}) == 1  # shared NAT in dev


def test_vpc_is_protected_in_prod_only() -> None:
    assert program_result("prod").of_type("aws:ec2/vpc:Vpc")[0].protect is True
    assert program_result("dev").of_type("aws:ec2/vpc:Vpc")[0].protect is False


def test_children_are_parented_to_the_component(dev) -> None:  # noqa: ANN001
    component = dev.of_type("agent-platform:network:Network")[0]
    by_urn = {r.urn: r for r in dev.registrations}
    children = [r for r in dev.registrations if r.type.startswith("aws:ec2/") and r.name.startswith("network-")]
    assert len(children) > 10
    for r in children:
        ancestor = r
        while ancestor.parent in by_urn and ancestor.type != component.type:
            ancestor = by_urn[ancestor.parent]
        assert ancestor.urn == component.urn, r.urn
    assert component.parent.endswith("pulumi:pulumi:Stack::agent-platform-dev")
