"""Default-deny NetworkPolicies for every platform namespace, with explicit allows.

Sandboxes may reach the VPC CIDR on 4000 and 3128, which covers every pod IP, so the platform's pods refuse what
they do not expect. The policies are plain data built by pure functions; :class:`PlatformNetworkPolicies` only
creates the objects. Details: docs/gateway.md#networkpolicies-componentsnetworknetwork_policiespy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.capacity import keda
from components.capacity.karpenter import NAMESPACE as KARPENTER_NAMESPACE
from components.contracts.models import VLLM_PODS
from components.contracts.namespaces import CLOUDWATCH_NAMESPACE, KUBE_SYSTEM, MODELS_NAMESPACE
from components.contracts.networks import INSTANCE_METADATA, NON_INTERNET_IPV4
from components.contracts.ports import PROXY_PORT, VLLM_PORT
from components.egress import proxy as eg
from components.egress import squid as sq
from components.gateway import cache as gc
from components.gateway import database as db
from components.gateway import litellm as gw
from components.gateway import rds
from components.gateway import tenant_gateway as gp
from components.observability import monitoring as obs
from components.runtime import kata_deploy as kata
from components.runtime import nvidia
from components.runtime.agent_sandbox import NAMESPACE as SANDBOX_NAMESPACE

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
DNS_PODS = {"k8s-app": "kube-dns"}  # CoreDNS (EKS add-on)
DNS_PORT = 53
# EKS Pod Identity agent (hostNetwork DaemonSet): AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials
POD_IDENTITY_AGENT = "169.254.170.23/32"
POD_IDENTITY_PORT = 80
HTTPS = 443
HTTP = 80

# What each platform namespace is, for tests and the component: name -> policy builder key.
PLATFORM_NAMESPACES = (
    gw.NAMESPACE,
    obs.NAMESPACE,
    KARPENTER_NAMESPACE,
    kata.NAMESPACE,
    SANDBOX_NAMESPACE,
    eg.NAMESPACE,
    MODELS_NAMESPACE,
    keda.NAMESPACE,
    nvidia.NAMESPACE,
)


# ----------------------------------------------------------------------------------------------
# Building blocks


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
        {"to": [cidr(vpc_cidr)], "ports": tcp(db.POSTGRES_PORT)}
        if external_database
        else {"to": [pods(db.POSTGRES_LABELS)], "ports": tcp(db.POSTGRES_PORT)}
    )
    cache = (
        {"to": [cidr(vpc_cidr)], "ports": tcp(gc.VALKEY_PORT)}
        if external_cache
        else {"to": [pods(gc.VALKEY_LABELS)], "ports": tcp(gc.VALKEY_PORT)}
    )
    policies = [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "litellm",
            ns,
            gw.SELECTOR,
            ingress=[
                {
                    "from": [pods(gp.SELECTOR), pods(gw.KEY_JOB_SELECTOR), pods(obs.PROMETHEUS_PODS, obs.NAMESPACE)],
                    "ports": tcp(gw.PORT),
                }
            ],
            # Bedrock (public endpoints), never a private address: no SSRF into the VPC or the metadata service;
            # the self-hosted model servers on their port.
            egress=[
                public_https(),
                database,
                cache,
                pod_identity_out(),
                *([{"to": [pods(VLLM_PODS, MODELS_NAMESPACE)], "ports": tcp(VLLM_PORT)}] if model_servers else []),
            ],
        ),
        policy(
            "tenant-gateway",
            ns,
            gp.SELECTOR,
            ingress=[{"from": [cidr(vpc_cidr)], "ports": tcp(gp.LISTEN_PORT)}],  # the NLB (and pods) in the VPC
            egress=[{"to": [pods(gw.SELECTOR)], "ports": tcp(gw.PORT)}],
        ),
        policy("key-jobs", ns, gw.KEY_JOB_SELECTOR, egress=[{"to": [pods(gw.SELECTOR)], "ports": tcp(gw.PORT)}]),
        # IAM database tokens (RDS) are signed with Pod Identity credentials.
        policy("migrations", ns, db.MIGRATION_LABELS, egress=[database, pod_identity_out()]),
    ]
    if external_database:
        # The RDS bootstrap Job: the master secret from Secrets Manager (public endpoint), then the database.
        policies.append(
            policy("rds-bootstrap", ns, rds.BOOTSTRAP_LABELS, egress=[public_https(), database, pod_identity_out()])
        )
    if not external_cache:
        policies.append(
            policy(
                "valkey", ns, gc.VALKEY_LABELS, ingress=[{"from": [pods(gw.SELECTOR)], "ports": tcp(gc.VALKEY_PORT)}]
            )
        )
    if not external_database:
        policies.append(
            policy(
                "postgres",
                ns,
                db.POSTGRES_LABELS,
                ingress=[{"from": [pods(gw.SELECTOR), pods(db.MIGRATION_LABELS)], "ports": tcp(db.POSTGRES_PORT)}],
            )
        )
    return policies


def monitoring_policies(vpc_cidr: str, keda_scaler: bool = False) -> list[dict[str, Any]]:
    ns = obs.NAMESPACE
    prometheus, grafana = pods(obs.PROMETHEUS_PODS), pods(obs.GRAFANA_PODS)
    # KEDA's operator queries Prometheus for the model servers' queue.
    scaler = [{"from": [pods(keda.OPERATOR_PODS, keda.NAMESPACE)], "ports": tcp(obs.PROMETHEUS_PORT)}]
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "prometheus",
            ns,
            obs.PROMETHEUS_PODS,
            ingress=[
                {"from": [prometheus, grafana], "ports": tcp(obs.PROMETHEUS_PORT, obs.RELOADER_PORT)},
                *(scaler if keda_scaler else []),
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


def kata_policies(kata_monitor: bool) -> list[dict[str, Any]]:
    monitor = [
        policy("kata-monitor", kata.NAMESPACE, kata.MONITOR_LABELS, ingress=[from_prometheus(kata.KATA_MONITOR_PORT)])
    ]
    return [*controller_policies(kata.NAMESPACE), *(monitor if kata_monitor else [])]


def non_internet(*extra: str) -> list[str]:
    """The non-internet IPv4 ranges plus ``extra`` (the VPC, the service CIDR) where a range does not cover it."""
    ranges = [ipaddress.ip_network(r) for r in NON_INTERNET_IPV4]
    more = [e for e in dict.fromkeys(extra) if not any(ipaddress.ip_network(e).subnet_of(r) for r in ranges)]
    return [*NON_INTERNET_IPV4, *more]


def egress_proxy_policies(vpc_cidr: str, service_cidr: str | None = None) -> list[dict[str, Any]]:
    ns = eg.NAMESPACE
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "egress-proxy",
            ns,
            eg.SELECTOR,
            ingress=[{"from": [cidr(vpc_cidr)], "ports": tcp(PROXY_PORT)}, from_prometheus(sq.MTAIL_PORT)],
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


def model_server_policies() -> list[dict[str, Any]]:
    """vLLM: reached by LiteLLM (the gateway is the only way in) and Prometheus on its one port; out, only the weights
    (S3, or the Hugging Face Hub, public HTTPS) and Pod Identity."""
    ns = MODELS_NAMESPACE
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "model-servers",
            ns,
            VLLM_PODS,
            ingress=[{"from": [pods(gw.SELECTOR, gw.NAMESPACE), pods(obs.PROMETHEUS_PODS, obs.NAMESPACE)], "ports": tcp(VLLM_PORT)}],
            egress=[public_https(), pod_identity_out()],
        ),
    ]


def keda_policies(vpc_cidr: str) -> list[dict[str, Any]]:
    """KEDA: the operator reads Prometheus and the API server, the API server calls the metrics server (external
    metrics) and the webhooks (its ENIs are in the VPC), the metrics server asks the operator over gRPC."""
    ns = keda.NAMESPACE
    operator, metrics_server = pods(keda.OPERATOR_PODS), pods(keda.METRICS_SERVER_PODS)
    return [
        default_deny(ns),
        allow_dns(ns),
        policy(
            "keda-operator",
            ns,
            keda.OPERATOR_PODS,
            ingress=[{"from": [metrics_server], "ports": tcp(keda.OPERATOR_GRPC_PORT)}],
            egress=[https_out(), {"to": [pods(obs.PROMETHEUS_PODS, obs.NAMESPACE)], "ports": tcp(obs.PROMETHEUS_PORT)}],
        ),
        policy(
            "keda-metrics-server",
            ns,
            keda.METRICS_SERVER_PODS,
            ingress=[{"from": [cidr(vpc_cidr)], "ports": tcp(keda.METRICS_SERVER_PORT)}],
            egress=[https_out(), {"to": [operator], "ports": tcp(keda.OPERATOR_GRPC_PORT)}],
        ),
        policy(
            "keda-webhooks",
            ns,
            keda.WEBHOOK_PODS,
            ingress=[{"from": [cidr(vpc_cidr)], "ports": tcp(keda.WEBHOOK_PORT)}],
            egress=[https_out()],
        ),
    ]


def device_plugin_policies() -> list[dict[str, Any]]:
    """NVIDIA's device plugin talks to the kubelet over a socket on the host: no network at all."""
    return [default_deny(nvidia.NAMESPACE)]


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
    models = MODELS_NAMESPACE in namespaces
    builders = {
        gw.NAMESPACE: lambda: litellm_policies(vpc_cidr, external_database, external_cache, models),
        obs.NAMESPACE: lambda: monitoring_policies(vpc_cidr, keda.NAMESPACE in namespaces),
        KARPENTER_NAMESPACE: lambda: controller_policies(KARPENTER_NAMESPACE),
        kata.NAMESPACE: lambda: kata_policies(kata_monitor),
        SANDBOX_NAMESPACE: lambda: controller_policies(SANDBOX_NAMESPACE),
        eg.NAMESPACE: lambda: egress_proxy_policies(vpc_cidr, service_cidr),
        MODELS_NAMESPACE: model_server_policies,
        keda.NAMESPACE: lambda: keda_policies(vpc_cidr),
        nvidia.NAMESPACE: device_plugin_policies,
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
