"""VPC with public and private subnets over the configured AZs, NAT per AZ or shared, and the audit trail of
sandbox traffic: VPC Flow Logs (where every ENI connected) and Route 53 Resolver query logs (what every pod
resolved) in CloudWatch Logs, kept for ``egressLogRetentionDays``."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.iam import assume_role_policy
from components.config import NetworkConfig
from components.contracts.cluster import DISCOVERY_TAG

# Availability Zone IDs EKS refuses cluster subnets in (EKS User Guide, "View Amazon EKS networking requirements for
# VPC and subnets", Subnet requirements for clusters). Zone names map to different physical zones per account, so the
# exclusion is by zone ID. docs/cloud.md.
EKS_UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")


def cluster_zones(parent: pulumi.Resource) -> list[str]:
    """The region's Availability Zones EKS accepts cluster subnets in, by name: zone type ``availability-zone``
    only (no Local or Wavelength Zones, which an account may have opted into and which sort first), without
    ``EKS_UNSUPPORTED_ZONE_IDS``. For a deployed stack this picks the zones it has: any other pick failed to
    create its cluster."""
    zones = aws.get_availability_zones(
        state="available",
        filters=[{"name": "zone-type", "values": ["availability-zone"]}],
        exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS),
        opts=pulumi.InvokeOptions(parent=parent),
    )
    return sorted(zones.names)


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    cluster_name: str
    protect: bool = False
    log_retention_days: int | None = None  # None: no flow or query logs


# Flow log fields: the default set plus the packet-level addresses (the pod behind a NAT'd flow), the
# direction and the AWS service (S3, EC2 metadata...) a flow reached.
FLOW_LOG_FORMAT = " ".join(
    f"${{{field}}}"
    for field in (
        "version",
        "account-id",
        "interface-id",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "protocol",
        "packets",
        "bytes",
        "start",
        "end",
        "action",
        "log-status",
        "vpc-id",
        "subnet-id",
        "pkt-srcaddr",
        "pkt-dstaddr",
        "flow-direction",
        "pkt-src-aws-service",
        "pkt-dst-aws-service",
    )
)


def flow_log_role_policy(log_group_arn: str) -> str:
    """What the VPC Flow Logs service may do: write streams of this one log group."""
    actions = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"]
    resources = [log_group_arn, f"{log_group_arn}:*"]
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
    )


def query_log_resource_policy(log_group_arn: str, account_id: str) -> str:
    """Route 53 Resolver delivers query logs as vended logs: delivery.logs.amazonaws.com writes into the group,
    only on behalf of this account."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "delivery.logs.amazonaws.com"},
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": f"{log_group_arn}:*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ],
        }
    )


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:network:Network", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        zones = cluster_zones(self)
        if len(zones) < cfg.az_count:
            raise pulumi.RunError(
                f"agent-platform:azCount: the region has {len(zones)} zones EKS accepts, {cfg.az_count} asked"
            )
        zones = zones[: cfg.az_count]
        public_cidrs, private_cidrs = cfg.subnet_cidrs()
        discovery = {DISCOVERY_TAG: args.cluster_name}
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{args.cluster_name}-vpc"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        vpc_child = pulumi.ResourceOptions(parent=vpc)
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{args.cluster_name}-igw"}, opts=vpc_child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={"Name": f"{args.cluster_name}-public"},
            opts=vpc_child,
        )

        def subnet(
            tier: str,
            zone: str,
            cidr: str,
            route_table: aws.ec2.RouteTable,
            tags: dict[str, str],
            public_ip: bool | None = None,
        ) -> aws.ec2.Subnet:
            """The ``tier`` (public, private) subnet of ``zone``, routed by ``route_table``."""
            resource = aws.ec2.Subnet(
                f"{name}-{tier}-{zone}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=public_ip,
                tags={"Name": f"{args.cluster_name}-{tier}-{zone}", **tags, **cluster_tag},
                opts=vpc_child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{tier}-{zone}", subnet_id=resource.id, route_table_id=route_table.id, opts=vpc_child
            )
            return resource

        public, private, nats = [], [], []
        for i, (zone, cidr) in enumerate(zip(zones, public_cidrs, strict=True)):
            public_subnet = subnet("public", zone, cidr, public_rt, {"kubernetes.io/role/elb": "1"}, public_ip=False)
            public.append(public_subnet)
            if cfg.nat_per_az or i == 0:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{zone}", domain="vpc", tags={"Name": f"{args.cluster_name}-nat-{zone}"}, opts=child
                )
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{zone}",
                        allocation_id=eip.id,
                        subnet_id=public_subnet.id,
                        tags={"Name": f"{args.cluster_name}-nat-{zone}"},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )

        for i, (zone, cidr) in enumerate(zip(zones, private_cidrs, strict=True)):
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[i if cfg.nat_per_az else 0].id}],
                tags={"Name": f"{args.cluster_name}-private-{zone}"},
                opts=vpc_child,
            )
            private.append(
                subnet("private", zone, cidr, route_table, {"kubernetes.io/role/internal-elb": "1", **discovery})
            )

        if args.log_retention_days is not None:
            self._traffic_logs(name, args, vpc)

        self.vpc_id = vpc.id
        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )

    def _traffic_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> None:
        """VPC Flow Logs and Route 53 Resolver query logs, each in its own CloudWatch log group."""
        child = pulumi.ResourceOptions(parent=self)
        retention = args.log_retention_days
        flow_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/agent-platform/{args.cluster_name}/vpc-flow-logs",
            retention_in_days=retention,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=flow_group.arn.apply(flow_log_role_policy),
            opts=pulumi.ResourceOptions(parent=role),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=flow_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            log_format=FLOW_LOG_FORMAT,
            tags={"Name": f"{args.cluster_name}-flow-log"},
            opts=child,
        )
        query_group = aws.cloudwatch.LogGroup(
            f"{name}-dns-query-logs",
            name=f"/agent-platform/{args.cluster_name}/resolver-query-logs",
            retention_in_days=retention,
            opts=child,
        )
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        policy = aws.cloudwatch.LogResourcePolicy(
            f"{name}-dns-query-logs",
            policy_name=f"{args.cluster_name}-resolver-query-logs",
            policy_document=pulumi.Output.all(query_group.arn, account).apply(
                lambda v: query_log_resource_policy(v[0], v[1])
            ),
            opts=child,
        )
        query_config = aws.route53.ResolverQueryLogConfig(
            f"{name}-dns-query-logs",
            name=f"{args.cluster_name}-vpc",
            destination_arn=query_group.arn,
            tags={"Name": f"{args.cluster_name}-resolver-query-logs"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        aws.route53.ResolverQueryLogConfigAssociation(
            f"{name}-dns-query-logs",
            resolver_query_log_config_id=query_config.id,
            resource_id=vpc.id,
            opts=child,
        )
