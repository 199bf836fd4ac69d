"""The self-hosted model servers (components/models/): names, labels and the URL the gateway routes to."""

from components.contracts.labels import MODEL_SERVER_LABEL
from components.contracts.namespaces import MODELS_NAMESPACE
from components.contracts.ports import VLLM_PORT

VLLM_PODS = {"app.kubernetes.io/name": "vllm"}  # every model server pod (NetworkPolicies, the dashboard)


def server_name(model: str) -> str:
    """The Deployment, Service, PDB and ScaledObject of ``model`` (a DNS label: config checks the model name)."""
    return f"vllm-{model}"


def server_labels(model: str) -> dict[str, str]:
    return {**VLLM_PODS, MODEL_SERVER_LABEL: model}


def server_url(model: str) -> str:
    """vLLM's OpenAI-compatible base URL for ``model`` (LiteLLM's ``api_base``; core pods only, never Kata pods)."""
    return f"http://{server_name(model)}.{MODELS_NAMESPACE}.svc.cluster.local:{VLLM_PORT}/v1"
