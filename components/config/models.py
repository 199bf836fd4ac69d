"""Self-hosted models: vLLM servers on a Karpenter GPU pool behind the gateway, scaled by KEDA (docs/models.md).

``models.selfHosted`` is off by default (an empty list): no GPU pool, no device plugin, no KEDA. Every model names
its weights (an S3 prefix, or a Hugging Face repository pinned to a revision), its GPU instance families and
replicas, and its per-token prices: LiteLLM records no spend for a model without them, so budgets would not apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.config.aws_facts import check_instance_family
from components.config.keys import (
    Derived,
    Key,
    KeyReader,
    integer,
    matching,
    quantity,
    read_keys,
    strings,
    text,
)
from components.config.reader import Reader, check, check_match, parse_semver, unique

# NVIDIA GPU families the EKS-optimized AL2023 NVIDIA AMI supports on x86_64 (EKS User Guide, ml-eks-optimized-ami:
# p6-b300 ... g4dn), less the fractional-GPU g6f and gr6f: EC2 reports no whole GPU for them, so Karpenter never
# places an nvidia.com/gpu pod there (Karpenter docs, NodeOverlays). Arm64 (g5g, p6e-gb200) is left out: the vLLM
# image is pinned for amd64.
NVIDIA_FAMILIES = (
    "g4dn",
    "g5",
    "g6",
    "g6e",
    "gr6",
    "g7e",
    "p3",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "p6-b200",
    "p6-b300",
)
GPUS_PER_REPLICA = (1, 2, 4, 8)  # vLLM's tensor parallelism splits attention heads evenly; instances have 1-8 GPUs
_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")  # a DNS-1035 label: Service names are built from it
_S3 = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>[^\s]+?)/?$")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_HF_REVISION = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class SelfHostedModel:
    name: str  # LiteLLM model name = vLLM's served name; tenants call it by this name
    model: str  # s3://bucket/prefix (copied to the pod's cache volume) or a Hugging Face repository id
    revision: str | None  # the Hugging Face commit (required for a repository id: the weights are pinned too)
    instance_families: tuple[str, ...]
    gpus: int  # per replica (vLLM's --tensor-parallel-size)
    min_replicas: int  # 0: scaled to zero when idle
    max_replicas: int
    max_model_len: int  # tokens, prompt + output
    max_num_seqs: int  # sequences one replica runs at once; past them requests wait (what KEDA scales on)
    waiting_requests_target: int  # waiting requests per replica KEDA aims for
    input_cost_per_token: float  # USD, LiteLLM's spend and budgets
    output_cost_per_token: float
    tenants: tuple[str, ...]  # tenants granted the model (their LiteLLM team and key)
    cpu: str
    memory: str
    cache_gib: int  # the weights' volume

    @property
    def s3(self) -> tuple[str, str] | None:
        """(bucket, prefix without a trailing slash) for weights in S3; None for a Hugging Face repository."""
        match = _S3.match(self.model)
        return (match["bucket"], match["prefix"].rstrip("/")) if match else None

    @classmethod
    def from_reader(cls, r: Reader) -> SelfHostedModel:
        """The declared keys (MODEL_KEYS), then what ties them together."""
        values = read_keys(r, MODEL_KEYS)
        model, revision = values["model"], values["revision"]
        check(
            r.key("model"),
            bool(_S3.match(model) or _HF_ID.match(model)),
            f"{model!r} is neither s3://<bucket>/<prefix> nor a Hugging Face repository id like org/name",
        )
        if _S3.match(model):
            check(r.key("revision"), revision is None, "applies to Hugging Face repositories only, not to S3 weights")
        else:
            check(
                r.key("revision"),
                revision is not None,
                f"is required for {model}: pin the repository's commit (40 hex characters), as every version is",
            )
            check_match(r.key("revision"), revision or "", _HF_REVISION, "a 40-character commit hash")
        check(
            r.key("maxReplicas"),
            values["max_replicas"] >= values["min_replicas"],
            f"{values['max_replicas']} is below minReplicas ({values['min_replicas']})",
        )
        return cls(**values)


def _families(key: str, families: tuple[str, ...]) -> None:
    check(key, len(families) > 0, "needs at least one GPU instance family")
    unique(key, families, "instance family")
    for i, family in enumerate(families):
        check_instance_family(f"{key}[{i}]", family)
        check(
            f"{key}[{i}]",
            family in NVIDIA_FAMILIES,
            f"{family!r} is not an NVIDIA GPU family of the AL2023 NVIDIA AMI on x86_64: {', '.join(NVIDIA_FAMILIES)}",
        )


def _gpus(key: str, gpus: int) -> None:
    check(key, gpus in GPUS_PER_REPLICA, f"{gpus} must be one of {', '.join(map(str, GPUS_PER_REPLICA))}")


def _price(r: Reader, key: Key, _: Mapping[str, Any]) -> float:
    price = r.number(key.name, lo=0)
    check(
        r.key(key.name),
        price > 0,
        "must be more than 0: LiteLLM records no spend for a model without prices, so budgets would not apply",
    )
    return price


def _checked(read: KeyReader, checker: Callable[[str, Any], None]) -> KeyReader:
    def checked(r: Reader, key: Key, context: Mapping[str, Any]) -> Any:
        value = read(r, key, context)
        checker(r.key(key.name), value)
        return value

    return checked


def _optional_text(r: Reader, key: Key, _: Mapping[str, Any]) -> str | None:
    return r.str(key.name) if key.name in r.values else None


# One declaration per key of a models.selfHosted[] entry: the parser reads exactly these, and the docs table
# (docs/models.md#model-keys) is checked against them (tests/test_models.py).
MODEL_KEYS = (
    Key(
        "name",
        "string",
        "What tenants call (LiteLLM's model name, vLLM's served name); a DNS label of at most 40 characters.",
        matching(_NAME, "a DNS label of at most 40 characters (lowercase letters, digits, '-')"),
    ),
    Key(
        "model",
        "string",
        "The weights: `s3://<bucket>/<prefix>` (copied into the pod with the model's own role) or a Hugging Face "
        "repository id `org/name`.",
        text(),
    ),
    Key(
        "revision",
        "string",
        "The Hugging Face commit (40 hex characters): required for a repository id, refused for S3 weights.",
        _optional_text,
        default=None,
    ),
    Key(
        "instanceFamilies",
        "list of strings",
        "NVIDIA GPU families of the AL2023 NVIDIA AMI on x86_64 (g4dn, g5, g6, g6e, gr6, g7e, p3-p6).",
        _checked(strings(), _families),
        default=["g6"],
    ),
    Key(
        "gpus",
        "integer",
        "GPUs per replica (vLLM's tensor parallelism): 1, 2, 4 or 8.",
        _checked(integer(), _gpus),
        default=1,
    ),
    Key("minReplicas", "integer", "0 scales the model to zero when idle (0-50).", integer(0, 50), default=1),
    Key(
        "maxReplicas",
        "integer",
        "KEDA's maximum (1-50, at least minReplicas).",
        integer(1, 50),
        default=Derived("`minReplicas`, at least 1", lambda values, _: max(values["min_replicas"], 1)),
    ),
    Key("maxModelLen", "integer", "Tokens per request, prompt and output (128 or more).", integer(128, 10_000_000)),
    Key(
        "maxNumSeqs",
        "integer",
        "Sequences one replica runs at once; past them requests wait in vLLM's queue (1-4096).",
        integer(1, 4096),
        default=64,
    ),
    Key(
        "waitingRequestsTarget",
        "integer",
        "Waiting requests per replica KEDA aims for (its Prometheus trigger's threshold).",
        integer(1, 10_000),
        default=4,
    ),
    Key("inputCostPerToken", "number", "USD per prompt token LiteLLM charges (more than 0).", _price),
    Key("outputCostPerToken", "number", "USD per generated token LiteLLM charges (more than 0).", _price),
    Key("tenants", "list of strings", "Tenants granted the model (their LiteLLM team and key).", strings(), default=[]),
    Key("cpu", "quantity", "CPU request of a replica.", quantity("cpu"), default="3"),
    Key("memory", "quantity", "Memory of a replica, requests = limits.", quantity("memory"), default="12Gi"),
    Key("cacheGiB", "integer", "The weights' emptyDir (GiB).", integer(1, 16384), default=50),
)


@dataclass(frozen=True)
class ModelsConfig:
    self_hosted: tuple[SelfHostedModel, ...]
    vllm_image: str  # "" when no model is self-hosted
    aws_cli_image: str  # copies S3 weights into the pod
    device_plugin_version: str
    gpu_capacity_types: tuple[str, ...]
    gpu_disk_gib: int  # GPU nodes' root volume: images (vLLM's is several GB) and the weights' emptyDir

    @property
    def enabled(self) -> bool:
        return bool(self.self_hosted)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.self_hosted)

    @property
    def instance_families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for m in self.self_hosted for f in m.instance_families))

    @property
    def gpu_limit(self) -> int:
        """GPUs the pool may hold: every model at its maximum."""
        return sum(m.gpus * m.max_replicas for m in self.self_hosted)

    @classmethod
    def from_reader(cls, r: Reader) -> ModelsConfig:
        section = r.object("models", lambda m: m)
        section.reject_unknown(("selfHosted",))
        models = section.objects("selfHosted", SelfHostedModel.from_reader, default=[])
        unique("models.selfHosted", [m.name for m in models], "model name")
        image = r.str("vllmImage")
        if models:
            check(
                "vllmImage",
                image != "",
                "is required when models.selfHosted lists a model: the vLLM OpenAI server image "
                "(docker.io/vllm/vllm-openai:<tag>), a tag listed in ../shared/images/catalog.json",
            )
        capacity = r.strs("gpuCapacityTypes")
        for i, kind in enumerate(capacity):
            check(f"gpuCapacityTypes[{i}]", kind in ("on-demand", "spot"), f"{kind!r} is not on-demand or spot")
        check("gpuCapacityTypes", len(capacity) > 0, "needs on-demand, spot or both")
        parse_semver("nvidiaDevicePluginVersion", r.str("nvidiaDevicePluginVersion"))
        return cls(
            self_hosted=models,
            vllm_image=r.image("vllmImage") if image else "",
            aws_cli_image=r.image("awsCliImage"),
            device_plugin_version=r.str("nvidiaDevicePluginVersion").lstrip("v"),
            gpu_capacity_types=capacity,
            gpu_disk_gib=r.int("gpuDiskGiB", lo=20, hi=16384),
        )
