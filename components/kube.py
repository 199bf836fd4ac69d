"""Small Kubernetes helpers the platform components share: options for a component's in-cluster children and
the platform namespace every component owns (labelled part-of the platform, with its Pod Security level)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pulumi
import pulumi_kubernetes as k8s

PART_OF = {"app.kubernetes.io/part-of": "agent-platform"}


def child_options(parent: pulumi.Resource) -> Callable[..., pulumi.ResourceOptions]:
    """``opts(*depends_on)``: a child of ``parent`` waiting for ``depends_on``; it takes the Kubernetes provider
    from ``parent``'s ``opts.providers`` (the cluster's), like every in-cluster child."""

    def opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))

    return opts


def platform_namespace(
    name: str, namespace: str, pod_security: Mapping[str, str], opts: pulumi.ResourceOptions
) -> k8s.core.v1.Namespace:
    """``pod_security``: ``pod-security.kubernetes.io/<mode>`` suffix -> level, e.g. ``{"enforce": "baseline"}``."""
    labels = {**PART_OF, **{f"pod-security.kubernetes.io/{k}": v for k, v in pod_security.items()}}
    return k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": namespace, "labels": labels}, opts=opts)


def named_port_service(
    name: str,
    service: str,
    namespace: str,
    labels: Mapping[str, str],
    port: tuple[str, int],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """A ClusterIP Service ``service`` for the pods ``labels`` select, on one named container port."""
    port_name, number = port
    return k8s.core.v1.Service(
        name,
        metadata={"name": service, "namespace": namespace, "labels": dict(labels)},
        spec={"selector": dict(labels), "ports": [{"name": port_name, "port": number, "targetPort": port_name}]},
        opts=opts,
    )
