"""A scrape credential of its own for LiteLLM's ``/metrics``, instead of the master key.

The Prometheus operator copies the ServiceMonitor's bearer token into Prometheus' config Secret, so the token is a
virtual key limited to ``/metrics``. Details: docs/gateway.md#master-key-and-scrape-key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.contracts import gateway as gw
from components.gateway import keys
from components.k8s.resources import run_to_completion_job

METRICS_KEY_ALIAS = "platform-prometheus-scrape"
METRICS_ROUTES = ("/metrics",)
METRICS_KEY_LENGTH = 64
JOB_LABELS = {**gw.KEY_JOB_SELECTOR, "app.kubernetes.io/component": "metrics-key"}


METRICS_TEAM = {"team_id": "platform-metrics", "team_alias": "platform-metrics", "metadata": {"managed-by": "pulumi"}}


def metrics_key_spec() -> dict[str, Any]:
    """Body of /key/generate and /key/update without the key: metrics only, no model routes."""
    return {
        "key_alias": METRICS_KEY_ALIAS,
        "team_id": METRICS_TEAM["team_id"],
        "allowed_routes": list(METRICS_ROUTES),
        "metadata": {"purpose": "prometheus scrape", "managed-by": "pulumi"},
    }


def metrics_job_name(curl_image: str) -> str:
    material = json.dumps(
        {"spec": metrics_key_spec(), "script": keys.KEY_JOB_SCRIPT, "image": curl_image}, sort_keys=True
    )
    return f"litellm-metrics-key-{hashlib.sha256(material.encode()).hexdigest()[:8]}"


def metrics_job_pod_spec(curl_image: str) -> dict[str, Any]:
    return keys.registration_pod_spec(
        curl_image,
        service_account=None,
        litellm_url=gw.CLUSTER_URL,
        master_key_secret=(gw.MASTER_KEY_SECRET, gw.MASTER_KEY_KEY),
        key_secret=(gw.METRICS_KEY_SECRET, gw.METRICS_KEY_KEY),
        alias=METRICS_KEY_ALIAS,
        team=METRICS_TEAM,
        key=metrics_key_spec(),
    )


@dataclass(frozen=True)
class MetricsKeyArgs:
    curl_image: str
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the gateway (LiteLLM and its master key)
    namespace: pulumi.Resource | None = None


class MetricsKey(pulumi.ComponentResource):
    """The scrape key's Secret (what the ServiceMonitor reads) and the Job registering it in LiteLLM."""

    secret: k8s.core.v1.Secret

    def __init__(self, name: str, args: MetricsKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:gateway:MetricsKey", name, None, opts)
        password = random.RandomPassword(
            f"{name}-value", length=METRICS_KEY_LENGTH, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        key = pulumi.Output.secret(password.result.apply(lambda value: f"sk-{value}"))
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={
                "name": gw.METRICS_KEY_SECRET,
                "namespace": gw.NAMESPACE,
                "labels": {"app.kubernetes.io/part-of": "agent-platform"},
            },
            type="Opaque",
            string_data={gw.METRICS_KEY_KEY: key},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.namespace] if args.namespace is not None else [],
                additional_secret_outputs=["data", "stringData"],
            ),
        )
        run_to_completion_job(
            f"{name}-registration",
            {"name": metrics_job_name(args.curl_image), "namespace": gw.NAMESPACE, "labels": dict(JOB_LABELS)},
            metrics_job_pod_spec(args.curl_image),
            backoff_limit=3,
            deadline_seconds=1800,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.secret, *args.depends_on],
                replace_with=[password],  # a new key is registered again
                custom_timeouts=pulumi.CustomTimeouts(create="35m", update="35m"),  # the Job's own deadline + margin
            ),
        )
        self.register_outputs({"secret": gw.METRICS_KEY_SECRET})
