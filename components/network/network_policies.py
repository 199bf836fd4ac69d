"""Default-deny NetworkPolicies for every platform namespace, with explicit allows.

Sandboxes may reach the VPC CIDR on the NLB listener ports, which covers every pod IP, so the platform's pods refuse
what they do not expect. Built from the areas' contracts (components/contracts/): who calls each service is declared
there once (components/k8s/reach.py turns it into rules). The policies are plain data built by pure functions;
:class:`PlatformNetworkPolicies` only creates the objects.
Details: docs/gateway.md#networkpolicies-componentsnetworknetwork_policiespy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import egress as eg
from components.contracts import gateway as gw
from components.contracts import models, runtime
from components.contracts import observability as obs
from components.contracts import scaling as keda
from components.contracts.labels import SANDBOX_LABEL
from components.contracts.namespaces import (
    AGENT_SANDBOX_NAMESPACE,
    CLOUDWATCH_NAMESPACE,
    KARPENTER_NAMESPACE,
    KEDA_NAMESPACE,
    KUBE_SYSTEM,
    NVIDIA_NAMESPACE,
)
from components.contracts.networks import INSTANCE_METADATA, NON_INTERNET_IPV4
from components.contracts.services import Pods
from components.k8s.network_policy import (
    HTTP,
    HTTPS,
    allow_dns,
    cidr,
    default_deny,
    https_out,
    non_internet,
    pod_identity_out,
    pods,
    policy,
    tcp,
)
from components.k8s.reach import egress, ingress
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.agent_types.base import AgentType
from components.tenants.agent_types.mcp import MCP_PORT_RANGE


def to_agents_called_by(caller: Pods) -> list[dict[str, Any]]:
    """Egress for ``caller`` to every agent type that admits it (its service port, in any sandbox namespace): the
    other end of the NetworkPolicy components/tenants/agent_service.py gives those agents."""
    return [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {SANDBOX_LABEL: "true"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": kind.name}},
                }
            ],
            "ports": called_ports(kind),
        }
        for kind in AGENT_TYPES.values()
        if caller in kind.callers
    ]


def called_ports(kind: AgentType) -> list[dict[str, Any]]:
    """The type's service port; an MCP server's is its tenant's choice (agents[].mcp.port, in MCP_PORT_RANGE): the
    caller may open any of them on MCP pods, each server admits its callers on its own port only
    (components/tenants/agent_service.py). The VPC CNI enforces port ranges (endPort; aws/containers-roadmap#2481
    discusses its limit of 24 ranges per selector rule)."""
    if kind.mcp_server:
        return [{"protocol": "TCP", "port": MCP_PORT_RANGE[0], "endPort": MCP_PORT_RANGE[1]}]
    return tcp(dict(kind.ports)[kind.service_port])


def from_prometheus(*ports: int) -> dict[str, Any]:
    return {"from": [pods(obs.PROMETHEUS_PODS, obs.NAMESPACE)], "ports": tcp(*ports)}


# ----------------------------------------------------------------------------------------------
# Per namespace


def public_https() -> dict[str, Any]:
    """TCP 443 to public addresses only: AWS and other public APIs, never the VPC, the metadata or the cluster."""
    return {"to": [cidr("0.0.0.0/0", NON_INTERNET_IPV4)], "ports": tcp(HTTPS)}


def litellm_policies(
    vpc_cidr: str, external_database: bool, external_cache: bool = False, model_servers: bool = False
) -> list[dict[str, Any]]:
    ns = gw.NAMESPACE
    # The database: the in-cluster PostgreSQL pod, or RDS in the VPC; the shared rate-limit cache likewise
    # (the in-cluster Valkey pod, or ElastiCache Serverless in the VPC).
    database = (
        {"to": [cidr(vpc_cidr)], "ports": tcp(gw.POSTGRES_PORT)} if external_database else egress(gw.POSTGRES, vpc_cidr)
    )
    cache = {"to": [cidr(vpc_cidr)], "ports": tcp(gw.VALKEY_PORT)} if external_cache else egress(gw.VALKEY, vpc_cidr)
    policies = [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "litellm",
            ns,
            gw.SELECTOR,
            ingress=[ingress(gw.LITELLM, vpc_cidr)],
            # Bedrock (public endpoints), never a private address: no SSRF into the VPC or the metadata service;
            # the self-hosted model servers.
            egress=[
                public_https(),
                database,
                cache,
                pod_identity_out(),
                *([egress(models.MODEL_SERVERS, vpc_cidr, ns)] if model_servers else []),
                *to_agents_called_by(gw.GATEWAY_PODS),
            ],
        ),
        policy(
            "tenant-gateway",
            ns,
            gw.TENANT_GATEWAY_SELECTOR,
            ingress=[ingress(gw.TENANT_GATEWAY, vpc_cidr)],  # the NLB (and pods) in the VPC
            egress=[egress(gw.LITELLM, vpc_cidr)],
        ),
        policy("key-jobs", ns, gw.KEY_JOB_SELECTOR, egress=[egress(gw.LITELLM, vpc_cidr)]),
        # IAM database tokens (RDS) are signed with Pod Identity credentials.
        policy("migrations", ns, gw.MIGRATION_LABELS, egress=[database, pod_identity_out()]),
    ]
    if external_database:
        # The RDS bootstrap Job: the master secret from Secrets Manager (public endpoint), then the database.
        policies.append(
            policy("rds-bootstrap", ns, gw.RDS_BOOTSTRAP_LABELS, egress=[public_https(), database, pod_identity_out()])
        )
    if not external_cache:
        policies.append(policy("valkey", ns, gw.VALKEY_LABELS, ingress=[ingress(gw.VALKEY, vpc_cidr)]))
    if not external_database:
        policies.append(policy("postgres", ns, gw.POSTGRES_LABELS, ingress=[ingress(gw.POSTGRES, vpc_cidr)]))
    return policies


def monitoring_policies(vpc_cidr: str, keda_scaler: bool = False) -> list[dict[str, Any]]:
    ns = obs.NAMESPACE
    prometheus, grafana = pods(obs.PROMETHEUS_PODS), pods(obs.GRAFANA_PODS)
    # KEDA's operator queries Prometheus for the model servers' queue.
    scaler = {"from": [pods(keda.OPERATOR_PODS, keda.NAMESPACE)], "ports": tcp(obs.PROMETHEUS_PORT)}
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "prometheus",
            ns,
            obs.PROMETHEUS_PODS,
            ingress=[
                {"from": [prometheus, grafana], "ports": tcp(obs.PROMETHEUS_PORT, obs.RELOADER_PORT)},
                *([scaler] if keda_scaler else []),
            ],
            # Scrapes pods and nodes across the cluster, lists targets from the API server, pushes alerts.
            egress=[{"to": [cidr("0.0.0.0/0", [INSTANCE_METADATA])]}],
        ),
        policy(
            "alertmanager",
            ns,
            obs.ALERTMANAGER_PODS,
            ingress=[
                {"from": [prometheus, grafana], "ports": tcp(obs.ALERTMANAGER_PORT, obs.RELOADER_PORT)},
                {
                    "from": [pods(obs.ALERTMANAGER_PODS)],
                    "ports": [
                        *tcp(obs.ALERTMANAGER_MESH_PORT),
                        {"protocol": "UDP", "port": obs.ALERTMANAGER_MESH_PORT},
                    ],
                },
            ],
            egress=[
                https_out(),  # receivers (webhooks, chat, paging services)
                {
                    "to": [pods(obs.ALERTMANAGER_PODS)],
                    "ports": [
                        *tcp(obs.ALERTMANAGER_MESH_PORT),
                        {"protocol": "UDP", "port": obs.ALERTMANAGER_MESH_PORT},
                    ],
                },
            ],
        ),
        policy(
            "grafana",
            ns,
            obs.GRAFANA_PODS,
            ingress=[{"from": [prometheus], "ports": tcp(obs.GRAFANA_PORT)}],
            egress=[
                {"to": [prometheus], "ports": tcp(obs.PROMETHEUS_PORT)},
                {"to": [pods(obs.ALERTMANAGER_PODS)], "ports": tcp(obs.ALERTMANAGER_PORT)},
                https_out(),  # its sidecars watch ConfigMaps and Secrets through the API server
            ],
        ),
        policy(
            "kube-state-metrics",
            ns,
            obs.KUBE_STATE_METRICS_PODS,
            ingress=[{"from": [prometheus], "ports": tcp(*obs.KUBE_STATE_METRICS_PORTS)}],
            egress=[https_out()],
        ),
        policy(
            "opencost",
            ns,
            obs.OPENCOST_PODS,
            ingress=[{"from": [prometheus], "ports": tcp(obs.OPENCOST_PORT)}],
            # its queries to Prometheus; the API server and AWS's public price list (pricing.us-east-1.amazonaws.com)
            egress=[{"to": [prometheus], "ports": tcp(obs.PROMETHEUS_PORT)}, https_out()],
        ),
        policy(
            "prometheus-operator",
            ns,
            obs.OPERATOR_PODS,
            # the admission webhook is called by the API server (its ENIs are in the VPC); Prometheus scrapes it
            ingress=[{"from": [cidr(vpc_cidr), prometheus], "ports": tcp(obs.OPERATOR_PORT)}],
            egress=[https_out()],
        ),
    ]


def controller_policies(namespace: str) -> list[dict[str, Any]]:
    """A namespace of controllers: nothing in, HTTPS (API server, AWS APIs) and Pod Identity out."""
    return [
        default_deny(namespace),
        allow_dns(namespace),
        policy("controllers", namespace, None, egress=[https_out(), pod_identity_out()]),
    ]


def keda_policies(vpc_cidr: str) -> list[dict[str, Any]]:
    """KEDA: its metrics API server and admission webhook are called by the API server (its ENIs are in the VPC),
    the metrics API server asks the operator over gRPC; all three talk to the API server."""
    ns = keda.NAMESPACE
    return [
        *controller_policies(ns),
        policy(
            "keda-metrics-api",
            ns,
            keda.METRICS_API_PODS,
            ingress=[{"from": [cidr(vpc_cidr)], "ports": tcp(keda.METRICS_API_PORT)}],
            egress=[{"to": [pods(keda.OPERATOR_PODS)], "ports": tcp(keda.OPERATOR_GRPC_PORT)}],
        ),
        policy(
            "keda-operator",
            ns,
            keda.OPERATOR_PODS,
            ingress=[{"from": [pods(keda.METRICS_API_PODS)], "ports": tcp(keda.OPERATOR_GRPC_PORT)}],
            # the Prometheus scaler: the model servers' queue (components/models/vllm.py)
            egress=[{"to": [pods(obs.PROMETHEUS_PODS, obs.NAMESPACE)], "ports": tcp(obs.PROMETHEUS_PORT)}],
        ),
        policy(
            "keda-webhooks",
            ns,
            keda.WEBHOOK_PODS,
            ingress=[{"from": [cidr(vpc_cidr)], "ports": tcp(keda.WEBHOOK_PORT)}],
        ),
    ]


def kata_policies(kata_monitor: bool) -> list[dict[str, Any]]:
    ns = runtime.NAMESPACE
    monitor = [
        policy("kata-monitor", ns, runtime.KATA_MONITOR_LABELS, ingress=[from_prometheus(runtime.KATA_MONITOR_PORT)])
    ]
    return [*controller_policies(ns), *(monitor if kata_monitor else [])]


def egress_proxy_policies(vpc_cidr: str, service_cidr: str | None = None) -> list[dict[str, Any]]:
    ns = eg.NAMESPACE
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "egress-proxy",
            ns,
            eg.SELECTOR,
            ingress=[ingress(eg.PROXY, vpc_cidr), from_prometheus(eg.MTAIL_PORT)],
            # Squid's own ACLs decide the domains; the network keeps it on the internet: off the cluster's
            # services (ClusterIPs), the VPC, the metadata and every other non-internet range.
            egress=[
                {
                    "to": [cidr("0.0.0.0/0", non_internet(vpc_cidr, *filter(None, [service_cidr])))],
                    "ports": tcp(HTTP, HTTPS),
                }
            ],
        ),
    ]


def model_server_policies(vpc_cidr: str) -> list[dict[str, Any]]:
    """vLLM: reached by its callers only (LiteLLM: the gateway is the one way in; Prometheus); out, only the weights
    (S3, or the Hugging Face Hub: public HTTPS) and Pod Identity."""
    ns = models.NAMESPACE
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "model-servers",
            ns,
            models.VLLM_PODS,
            ingress=[ingress(models.MODEL_SERVERS, vpc_cidr)],
            egress=[public_https(), pod_identity_out()],
        ),
    ]


def allow_all(namespace: str) -> list[dict[str, Any]]:
    """A namespace of EKS add-ons (kube-system, amazon-cloudwatch), not policed here: strict mode would deny their
    pods without a policy selecting them."""
    return [policy("allow-all", namespace, None, ingress=[{}], egress=[{}])]


def platform_policies(
    namespaces: Iterable[str],
    vpc_cidr: str,
    external_database: bool,
    kata_monitor: bool = False,
    external_cache: bool = False,
    service_cidr: str | None = None,
) -> list[dict[str, Any]]:
    """Every policy for the platform namespaces this stack creates (and kube-system)."""
    namespaces = list(namespaces)
    builders = {
        gw.NAMESPACE: lambda: litellm_policies(
            vpc_cidr, external_database, external_cache, models.NAMESPACE in namespaces
        ),
        obs.NAMESPACE: lambda: monitoring_policies(vpc_cidr, KEDA_NAMESPACE in namespaces),
        KARPENTER_NAMESPACE: lambda: controller_policies(KARPENTER_NAMESPACE),
        runtime.NAMESPACE: lambda: kata_policies(kata_monitor),
        AGENT_SANDBOX_NAMESPACE: lambda: controller_policies(AGENT_SANDBOX_NAMESPACE),
        keda.NAMESPACE: lambda: keda_policies(vpc_cidr),
        eg.NAMESPACE: lambda: egress_proxy_policies(vpc_cidr, service_cidr),
        models.NAMESPACE: lambda: model_server_policies(vpc_cidr),
        # NVIDIA's device plugin talks to the kubelet over a socket on the host: no network but DNS.
        NVIDIA_NAMESPACE: lambda: [default_deny(NVIDIA_NAMESPACE), allow_dns(NVIDIA_NAMESPACE)],
        KUBE_SYSTEM: lambda: allow_all(KUBE_SYSTEM),
        CLOUDWATCH_NAMESPACE: lambda: allow_all(CLOUDWATCH_NAMESPACE),
    }
    unknown = set(namespaces) - set(builders)
    if unknown:
        raise ValueError(f"no network policies defined for namespaces {sorted(unknown)}")
    return [body for ns in namespaces for body in builders[ns]()]


# ----------------------------------------------------------------------------------------------
# Component


@dataclass(frozen=True)
class PlatformNetworkPoliciesArgs:
    # namespace name -> what creates it (its Namespace object or the install that does). Policies wait for that
    # only, never for the workloads: under strict mode the workloads need the policies to start.
    namespaces: Mapping[str, pulumi.Resource | None]
    vpc_cidr: str
    external_database: bool
    kata_monitor: bool = False  # kata-monitor runs (a Go-runtime shim is on): Prometheus may scrape it
    external_cache: bool = False  # LiteLLM's rate-limit cache is ElastiCache (in the VPC), not the Valkey pod
    service_cidr: str | None = None  # the cluster's ClusterIP range: the egress proxy must not reach it
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class PlatformNetworkPolicies(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: PlatformNetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("agent-platform:network:PlatformNetworkPolicies", name, None, opts)
        for body in platform_policies(
            args.namespaces,
            args.vpc_cidr,
            args.external_database,
            args.kata_monitor,
            args.external_cache,
            args.service_cidr,
        ):
            meta = body["metadata"]
            creator = args.namespaces[meta["namespace"]]
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{meta['namespace']}-{meta['name']}",
                metadata=meta,
                spec=body["spec"],
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[*args.depends_on, *([creator] if creator is not None else [])],
                ),
            )
        self.register_outputs({"namespaces": sorted(args.namespaces)})
