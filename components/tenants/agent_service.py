"""An agent that others call (an agent type with callers, e.g. a tool server the gateway calls): its ClusterIP Service
and the NetworkPolicy admitting exactly its callers, from one service declaration (components/contracts/services.py).
Agents without callers get neither: they only connect out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import AgentConfig, TenantConfig
from components.contracts.labels import selector_labels
from components.contracts.services import Service
from components.k8s.network_policy import policy
from components.k8s.reach import ingress, service_spec
from components.tenants.agent_pod import agent_ports
from components.tenants.agent_types.base import AgentType


def agent_service(tenant: TenantConfig, agent: AgentConfig, kind: AgentType) -> Service:
    """The declaration of ``agent`` as a service: its Deployment's pods, the type's service port and callers."""
    return Service(
        agent.name,
        tenant.namespace,
        selector_labels(tenant.name, agent.name, "deployment"),
        dict(agent_ports(agent))[kind.service_port],
        callers=kind.callers,
        port_name=kind.service_port,
    )


def admit_callers(
    name: str, service: Service, labels: Mapping[str, str], vpc_cidr: str, opts: pulumi.ResourceOptions
) -> None:
    """The Service (``<name>-service``) and the NetworkPolicy (``<name>-callers``) of a called agent."""
    metadata: dict[str, Any] = {"name": service.name, "namespace": service.namespace, "labels": dict(labels)}
    k8s.core.v1.Service(f"{name}-service", metadata=metadata, spec=service_spec(service), opts=opts)
    body = policy(f"{service.name}-callers", service.namespace, service.selector, ingress=[ingress(service, vpc_cidr)])
    k8s.networking.v1.NetworkPolicy(f"{name}-callers", metadata=body["metadata"], spec=body["spec"], opts=opts)
