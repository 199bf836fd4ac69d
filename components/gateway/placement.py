"""Where the gateway's managed AWS stores (RDS PostgreSQL, ElastiCache Valkey) live: the private subnets, behind
a security group that admits the core nodes (LiteLLM) only. Both stores take it whole, so the placement and its
checks are written once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.network.node_security import core_clients_only_group


@dataclass(frozen=True)
class ManagedPlacement:
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]  # the private subnets
    client_security_group_id: pulumi.Input[str]  # the core nodes' SG: the only clients
    protect: bool = False  # deletion protection and a final snapshot where the store has them

    def clients_only_group(
        self, name: str, port: int, tag: str, description: str, parent: pulumi.Resource
    ) -> aws.ec2.SecurityGroup:
        """The store's security group (named ``<name>-<tag>``): ``port`` from the core nodes only."""
        where = {"vpc_id": self.vpc_id, "client_security_group_id": self.client_security_group_id}
        return core_clients_only_group(name, port=port, description=description, tag=tag, parent=parent, **where)
