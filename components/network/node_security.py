"""The security group of the sandbox nodes (Kata, gVisor): what a host that runs untrusted code may reach.

A VM escape lands in the host network namespace, where NetworkPolicy does not apply, so the node's group is the
boundary there; it also applies to every sandbox pod (VPC CNI pod IPs live on the node's ENIs). Each rule and why:
docs/network.md#the-sandbox-node-security-group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig
from components.contracts.runtime import KATA_MONITOR_PORT
from components.contracts.sandboxes import sandbox_services

KUBELET_PORT = 10250
NODE_EXPORTER_PORT = 9100  # kube-prometheus-stack's prometheus-node-exporter (host network)
KUBE_PROXY_METRICS_PORT = 10249  # kube-proxy's metrics, scraped by kube-prometheus-stack (kubeProxy.service.port)
ANYWHERE = "0.0.0.0/0"
RULES = {"in": aws.vpc.SecurityGroupIngressRule, "out": aws.vpc.SecurityGroupEgressRule}


def port_rule(
    direction: str,
    name: str,
    group_id: pulumi.Input[str],
    protocol: str,
    port: int | None,
    *,
    opts: pulumi.ResourceOptions,
    description: str,
    cidr: str | None = None,
    sg: pulumi.Input[str] | None = None,
) -> None:
    """A rule of ``group_id`` (``direction`` "in" or "out") for one port (None, with protocol "-1": all traffic),
    from or to a CIDR or another security group: the only kind of rule the platform's groups have."""
    RULES[direction](
        name,
        security_group_id=group_id,
        cidr_ipv4=cidr,
        referenced_security_group_id=sg,
        ip_protocol=protocol,
        from_port=port,
        to_port=port,
        description=description,
        opts=opts,
    )


@dataclass(frozen=True)
class SandboxNodeSecurityGroupArgs:
    cluster_name: str
    vpc_id: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]  # the EKS cluster SG: core nodes and control plane ENIs
    network: NetworkConfig
    allowlist: bool  # egressMode allowlist: sandboxes reach the egress proxy NLB
    tenant_cidrs: Sequence[str] = ()  # every tenant's egress.cidrs
    kata_monitor: bool = False  # kata-monitor pods on the sandbox nodes, scraped by Prometheus


class SandboxNodeSecurityGroup(pulumi.ComponentResource):
    id: pulumi.Output[str]

    def __init__(
        self, name: str, args: SandboxNodeSecurityGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("agent-platform:cluster:SandboxNodeSecurityGroup", name, None, opts)
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"EKS sandbox (Kata, gVisor) nodes of {args.cluster_name}",
            vpc_id=args.vpc_id,
            revoke_rules_on_delete=True,
            tags={"Name": f"{args.cluster_name}-sandbox-nodes"},  # no kubernetes.io/cluster tag (docs/network.md)
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.id = group.id
        cluster_sg = args.cluster_security_group_id
        # Rules are children of the component (not of the group): depending on the component waits for them all.
        child = pulumi.ResourceOptions(parent=self)

        def rule(
            direction: str,
            what: str,
            group_id: pulumi.Input[str],
            protocol: str,
            port: int | None,
            **peer: pulumi.Input[str],
        ) -> None:
            """``peer``: ``cidr`` or ``sg``, what the rule admits or reaches."""
            port_rule(
                direction, f"{name}-{direction}-{what}", group_id, protocol, port, opts=child, description=what, **peer
            )

        # --- into the sandbox nodes
        rule("in", "kubelet-from-cluster", group.id, "tcp", KUBELET_PORT, sg=cluster_sg)
        rule("in", "node-exporter-from-cluster", group.id, "tcp", NODE_EXPORTER_PORT, sg=cluster_sg)
        rule("in", "kube-proxy-metrics-from-cluster", group.id, "tcp", KUBE_PROXY_METRICS_PORT, sg=cluster_sg)
        if args.kata_monitor:
            rule("in", "kata-monitor-from-cluster", group.id, "tcp", KATA_MONITOR_PORT, sg=cluster_sg)
        # --- into the cluster security group, from the sandbox nodes
        rule("in", "api-from-sandbox-nodes", cluster_sg, "tcp", 443, sg=group.id)
        for protocol in ("udp", "tcp"):
            rule("in", f"dns-{protocol}-from-sandbox-nodes", cluster_sg, protocol, 53, sg=group.id)

        # --- out of the sandbox nodes
        rule("out", "https", group.id, "tcp", 443, cidr=ANYWHERE)
        rule("out", "http", group.id, "tcp", 80, cidr=ANYWHERE)
        for service in sandbox_services(args.allowlist):  # each through its NLB, whose addresses are in the VPC
            rule("out", service.name, group.id, "tcp", service.port, cidr=args.network.cidr)
        for protocol in ("udp", "tcp"):
            rule("out", f"dns-{protocol}-resolver", group.id, protocol, 53, cidr=f"{args.network.resolver_ip}/32")
            rule("out", f"dns-{protocol}-coredns", group.id, protocol, 53, sg=cluster_sg)
        for cidr in sorted(set(args.tenant_cidrs)):
            rule("out", f"tenant-{cidr.replace('/', '-')}", group.id, "-1", None, cidr=cidr)

        self.register_outputs({"id": self.id})


def core_clients_only_group(
    name: str,
    *,
    vpc_id: pulumi.Input[str],
    client_security_group_id: pulumi.Input[str],
    port: int,
    description: str,
    tag: str,
    parent: pulumi.Resource,
) -> aws.ec2.SecurityGroup:
    """A security group admitting only the core nodes (LiteLLM) on ``port``: the managed cache and database."""
    opts = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(
        f"{name}-sg", vpc_id=vpc_id, description=description, tags={"Name": f"{name}-{tag}"}, opts=opts
    )
    port_rule(
        "in",
        f"{name}-from-core",
        group.id,
        "tcp",
        port,
        opts=opts,
        description="LiteLLM on core nodes",
        sg=client_security_group_id,
    )
    return group
