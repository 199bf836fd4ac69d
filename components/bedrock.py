"""The Bedrock scope of LiteLLM's IAM role: only the configured models, foundation models and cross-Region
inference profiles alike, never a bare ``*``. Pure functions, so tests check the ARNs directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

BEDROCK_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
# Cross-Region inference profile ids start with a geography (or "global"): us.anthropic.claude-...
INFERENCE_PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")


def split_model_id(model_id: str) -> tuple[str | None, str]:
    """``us.anthropic.claude-x`` -> (``us``, ``anthropic.claude-x``); a plain model id -> (None, id)."""
    prefix, _, rest = model_id.partition(".")
    if rest and prefix in INFERENCE_PROFILE_PREFIXES:
        return prefix, rest
    return None, model_id


def bedrock_resource_arns(model_ids: Sequence[str], region: str, account_id: str, partition: str = "aws") -> list[str]:
    """The only resources LiteLLM may invoke.

    A plain model id is a foundation model in the Bedrock region. An inference profile needs the profile
    ARN in the source region AND the foundation model in every Region the profile routes to; those
    destination Regions are AWS's to change, so the foundation-model ARN uses a Region wildcard (``*``
    also matches the empty Region of the ``arn:aws:bedrock:::foundation-model/...`` form that global
    profiles use) while the model id stays exact. Never a bare ``*``.
    """
    arns: set[str] = set()
    for model_id in model_ids:
        prefix, base = split_model_id(model_id)
        if prefix is None:
            arns.add(f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}")
        else:
            arns.add(f"arn:{partition}:bedrock:{region}:{account_id}:inference-profile/{model_id}")
            arns.add(f"arn:{partition}:bedrock:*::foundation-model/{base}")
    return sorted(arns)


def bedrock_policy(model_ids: Sequence[str], region: str, account_id: str, partition: str = "aws") -> str:
    statement = {
        "Sid": "InvokeConfiguredModels",
        "Effect": "Allow",
        "Action": list(BEDROCK_ACTIONS),
        "Resource": bedrock_resource_arns(model_ids, region, account_id, partition),
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)
