"""Small Kubernetes helpers the platform components share: options for a component's in-cluster children and
the platform namespace every component owns (labelled part-of the platform, with its Pod Security level)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts.labels import PART_OF
from components.contracts.services import Service
from components.k8s.reach import service_spec


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


@dataclass(frozen=True)
class Chart:
    """A third-party chart the platform installs as one release in a namespace of its own."""

    release: str  # the Helm release name = the namespace
    chart: str
    repo: str
    pod_security: Mapping[str, str]  # the namespace's Pod Security levels (see platform_namespace)


def chart_in_namespace(
    parent: pulumi.Resource,
    name: str,
    chart: Chart,
    version: str,
    values: Mapping[str, Any],
    depends_on: Sequence[pulumi.Resource] = (),
) -> tuple[k8s.core.v1.Namespace, k8s.helm.v3.Release]:
    """``chart`` at ``version`` with ``values``, in its namespace (children of ``parent``; the namespace waits for
    ``depends_on``, the release for the namespace)."""
    opts = child_options(parent)
    namespace = platform_namespace(name, chart.release, chart.pod_security, opts(*depends_on))
    release = k8s.helm.v3.Release(
        f"{name}-release",
        name=chart.release,
        namespace=chart.release,
        chart=chart.chart,
        repository_opts={"repo": chart.repo},
        version=version,
        values=dict(values),
        opts=opts(namespace),
    )
    return namespace, release


Workload = type[k8s.apps.v1.Deployment] | type[k8s.apps.v1.StatefulSet]


def in_cluster_store(
    kind: Workload,
    name: str,
    store: Service,
    spec: Mapping[str, Any],
    secret: k8s.core.v1.Secret,
    opts: pulumi.ResourceOptions,
) -> tuple[k8s.core.v1.Service, k8s.apps.v1.Deployment | k8s.apps.v1.StatefulSet]:
    """A single-instance store (PostgreSQL, Valkey, declared as a service in its area's contract): its workload and
    a ClusterIP Service of the same name, labelled as its pods and selecting them, on the store's named port. The
    workload waits for its ``secret`` (password and config), a StatefulSet also for its governing Service."""
    metadata = {"name": store.name, "namespace": store.namespace, "labels": dict(store.selector)}
    service = k8s.core.v1.Service(name, metadata=metadata, spec=service_spec(store), opts=opts)
    after = [secret, service] if kind is k8s.apps.v1.StatefulSet else [secret]
    workload = kind(
        name,
        metadata=metadata,
        spec=spec,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
    )
    return service, workload


def run_to_completion_job(
    name: str,
    metadata: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    *,
    backoff_limit: int,
    deadline_seconds: int,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """A Job whose pod carries the Job's labels (what the NetworkPolicies select) and runs to completion within
    ``deadline_seconds``. No ttlSecondsAfterFinished: a Job deleted by the TTL controller would be drift."""
    return k8s.batch.v1.Job(
        name,
        metadata=metadata,
        spec={
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline_seconds,
            "template": {"metadata": {"labels": dict(metadata["labels"])}, "spec": pod_spec},
        },
        opts=opts,
    )


def rolling_deployment(
    name: str,
    metadata: Mapping[str, Any],
    selector: Mapping[str, str],
    replicas: int,
    template: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.apps.v1.Deployment:
    """A platform Deployment that replaces one pod at a time and never has fewer than ``replicas`` ready."""
    return k8s.apps.v1.Deployment(
        name,
        metadata=metadata,
        spec={
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": dict(selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": template,
        },
        opts=opts,
    )


def keep_one_available(
    name: str, metadata: Mapping[str, Any], selector: Mapping[str, str], opts: pulumi.ResourceOptions
) -> k8s.policy.v1.PodDisruptionBudget:
    """A disruption budget keeping one of the ``selector`` pods serving through node drains."""
    return k8s.policy.v1.PodDisruptionBudget(
        name, metadata=metadata, spec={"minAvailable": 1, "selector": {"matchLabels": dict(selector)}}, opts=opts
    )
