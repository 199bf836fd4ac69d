"""What AWS accepts, checked before anything is created: regions per partition, EKS service CIDRs, EC2 instance types.

Each table cites where it comes from; none of it can be tried offline, so a value AWS would refuse is caught here
with the key named instead of failing minutes into a deploy.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from functools import cache
from pathlib import Path

from components.config.reader import ConfigError, check

# Regions per partition: botocore 1.44.5 (PyPI, 2026-11) botocore/data/endpoints.json, "partitions[].regions";
# its "eks" service lists the same regions in each of these partitions (EKS is offered in every one of them).
# The platform targets the commercial, China and GovCloud partitions; the isolated ones are named for the message.
_COMMERCIAL = """
af-south-1 ap-east-1 ap-east-2 ap-northeast-1 ap-northeast-2 ap-northeast-3 ap-south-1 ap-south-2 ap-southeast-1
ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ap-southeast-6 ap-southeast-7 ca-central-1 ca-west-1
eu-central-1 eu-central-2 eu-north-1 eu-south-1 eu-south-2 eu-west-1 eu-west-2 eu-west-3 il-central-1 me-central-1
me-south-1 mx-central-1 sa-east-1 us-east-1 us-east-2 us-west-1 us-west-2
"""
PARTITION_REGIONS: dict[str, tuple[str, ...]] = {
    "aws": tuple(_COMMERCIAL.split()),
    "aws-cn": ("cn-north-1", "cn-northwest-1"),
    "aws-us-gov": ("us-gov-east-1", "us-gov-west-1"),
}
# Partitions the platform does not target, by the region pattern endpoints.json gives them ("regionRegex").
UNSUPPORTED_PARTITIONS = {
    "aws-iso": re.compile(r"^us-iso-\w+-\d+$"),
    "aws-iso-b": re.compile(r"^us-isob-\w+-\d+$"),
    "aws-iso-e": re.compile(r"^eu-isoe-\w+-\d+$"),
    "aws-iso-f": re.compile(r"^us-isof-\w+-\d+$"),
    "aws-eusc": re.compile(r"^eusc-de-\w+-\d+$"),
}
REGION_PARTITION = {region: partition for partition, regions in PARTITION_REGIONS.items() for region in regions}


def region_partition(key: str, region: str) -> str:
    """The partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``); ConfigError naming ``key`` otherwise."""
    if region in REGION_PARTITION:
        return REGION_PARTITION[region]
    for partition, pattern in UNSUPPORTED_PARTITIONS.items():
        check(
            key,
            not pattern.match(region),
            f"{region!r} is in the {partition} partition, which this platform does not target",
        )
    close = difflib.get_close_matches(region, REGION_PARTITION, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "e.g. us-east-1, eu-west-1, cn-north-1, us-gov-west-1"
    raise ConfigError(key, f"{region!r} is not an AWS region; {hint}")


def arn_partition(arn: str) -> str:
    """``arn:aws-cn:iam::...`` -> ``aws-cn``."""
    return arn.split(":", 2)[1]


# The service CIDR EKS accepts (EKS API reference, KubernetesNetworkConfigRequest.serviceIpv4Cidr): within one of
# these private blocks, between /24 and /12, not overlapping the VPC (checked with the VPC, components/config/platform).
SERVICE_CIDR_BLOCKS = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
SERVICE_CIDR_PREFIXES = (12, 24)


def check_service_cidr(key: str, net: ipaddress.IPv4Network) -> None:
    check(
        key,
        any(net.subnet_of(block) for block in SERVICE_CIDR_BLOCKS),
        f"{net} is not within {', '.join(map(str, SERVICE_CIDR_BLOCKS))}, which EKS requires",
    )
    lo, hi = SERVICE_CIDR_PREFIXES
    check(key, lo <= net.prefixlen <= hi, f"{net} must be between /{lo} and /{hi} for EKS, got /{net.prefixlen}")


# EC2 instance types by family: the EC2 API model's InstanceType enum (source and regeneration in the JSON file).
INSTANCE_TYPES_FILE = Path(__file__).with_name("ec2_instance_types.json")
_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9-]+)$")


@cache
def instance_families() -> dict[str, tuple[str, ...]]:
    """Family -> its sizes, e.g. ``"m8i"`` -> ``("large", "xlarge", ..., "metal-96xl")``."""
    families = json.loads(INSTANCE_TYPES_FILE.read_text())["families"]
    return {family: tuple(sizes.split()) for family, sizes in families.items()}


def check_instance_family(key: str, family: str) -> str:
    if family not in instance_families():
        close = difflib.get_close_matches(family, instance_families(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(key, f"{family!r} is not an EC2 instance family{hint}")
    return family


def check_instance_type(key: str, instance_type: str) -> str:
    """``m8i.2xlarge``: a known family and one of its sizes."""
    match = _INSTANCE_TYPE.match(instance_type)
    check(key, match is not None, f"{instance_type!r} is not an EC2 instance type like m8i.2xlarge")
    family, size = match["family"], match["size"]  # type: ignore[index]
    check_instance_family(key, family)
    sizes = instance_families()[family]
    check(key, size in sizes, f"{instance_type!r} does not exist; {family} sizes: {', '.join(sizes)}")
    return instance_type
