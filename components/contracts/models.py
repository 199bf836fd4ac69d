"""What the models area provides the others: the self-hosted model servers (vLLM), who may call them (LiteLLM, and
Prometheus for /metrics) and the URL the gateway routes each model to."""

from __future__ import annotations

import dataclasses

from components.contracts import gateway, observability
from components.contracts.labels import MODEL_SERVER_LABEL
from components.contracts.namespaces import MODELS_NAMESPACE
from components.contracts.services import Pods, Service

NAMESPACE = MODELS_NAMESPACE
PORT = 8000  # vLLM's OpenAI API and /metrics (its default port)
VLLM_PODS = {"app.kubernetes.io/name": "vllm"}  # every model server pod (NetworkPolicies, PodMonitor)
# The model servers as one service: the gateway is the only way in (and Prometheus scrapes). Each model's own
# ClusterIP Service (server(model)) selects its pods among them.
MODEL_SERVERS = Service(
    "vllm",
    NAMESPACE,
    VLLM_PODS,
    PORT,
    callers=(Pods(gateway.SELECTOR, gateway.NAMESPACE), Pods(observability.PROMETHEUS_PODS, observability.NAMESPACE)),
)


def server_name(model: str) -> str:
    """The Deployment, Service, PDB and ScaledObject of ``model`` (a DNS label: config checks the model name)."""
    return f"vllm-{model}"


def server_labels(model: str) -> dict[str, str]:
    return {**VLLM_PODS, MODEL_SERVER_LABEL: model}


def server(model: str) -> Service:
    return dataclasses.replace(MODEL_SERVERS, name=server_name(model), selector=server_labels(model))


def server_url(model: str) -> str:
    """vLLM's OpenAI-compatible base URL for ``model`` (LiteLLM's ``api_base``; core pods only, never Kata pods)."""
    return f"{server(model).url()}/v1"
