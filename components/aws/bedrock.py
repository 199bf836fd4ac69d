"""The Bedrock scope of LiteLLM's IAM role: only the configured models, foundation models and cross-Region
inference profiles alike, never a bare ``*``; and the AWS Marketplace subscription a third-party model needs on its
first call in an account, only for the configured models' product IDs. Pure functions, so tests check the policy
directly. Details: docs/gateway.md#bedrock-model-access, docs/cloud.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

BEDROCK_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
# Cross-Region inference profile ids start with a geography (or "global"): us.anthropic.claude-...
INFERENCE_PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")


# Bedrock User Guide, "Use product ID condition keys to control access" (December 2026): models of these providers are
# not sold through AWS Marketplace and have no product ID (no aws-marketplace permission applies to them).
NOT_ON_MARKETPLACE = ("amazon", "deepseek", "mistral", "meta", "qwen", "openai")
# The same page's product IDs for the third-party models the stacks may configure, by base model id prefix (the
# longest prefix wins). A model missing here needs bedrockModels[].marketplaceProductId (config error otherwise).
MARKETPLACE_PRODUCT_IDS = {
    "anthropic.claude-sonnet-4-5": "prod-mxcfnwvpd6kb4",
    "anthropic.claude-haiku-4-5": "prod-xdkflymybwmvi",
    "anthropic.claude-sonnet-4": "prod-4pmewlybdftbs",
    "anthropic.claude-opus-4-1": "prod-w3q2d6rfge4tw",
    "anthropic.claude-opus-4": "prod-azycxvnd5mhqi",
    "anthropic.claude-3-7-sonnet": "prod-4dlfvry4v5hbi",
    "anthropic.claude-3-5-sonnet-20241022": "prod-cx7ovbu5wex7g",
    "anthropic.claude-3-5-sonnet": "prod-m5ilt4siql27k",
    "anthropic.claude-3-5-haiku": "prod-5oba7y7jpji56",
    "anthropic.claude-3-haiku": "prod-ozonys2hmmpeu",
}
# Bedrock User Guide, "Request access to models": the first call of a third-party model subscribes the account in
# the background and needs these on the caller; only Subscribe can be scoped (aws-marketplace:ProductId).
MARKETPLACE_ACTIONS = ("aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe", "aws-marketplace:ViewSubscriptions")


def on_marketplace(model_id: str) -> bool:
    """Whether ``model_id`` (a foundation model or an inference profile) is a third-party model sold through
    AWS Marketplace."""
    return split_model_id(model_id)[1].split(".", 1)[0] not in NOT_ON_MARKETPLACE


def marketplace_product_id(model_id: str) -> str | None:
    """The documented product ID of ``model_id``, None when the program does not know it."""
    base = split_model_id(model_id)[1]
    known = [prefix for prefix in MARKETPLACE_PRODUCT_IDS if base.startswith(prefix)]
    return MARKETPLACE_PRODUCT_IDS[max(known, key=len)] if known else None


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


def bedrock_policy(
    model_ids: Sequence[str],
    region: str,
    account_id: str,
    partition: str = "aws",
    product_ids: Sequence[str] = (),
) -> str:
    """Invoke the configured models; with ``product_ids`` (the third-party ones among them), subscribe to those
    products only, and view or cancel subscriptions, which AWS documents without a narrower scope."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "InvokeConfiguredModels",
            "Effect": "Allow",
            "Action": list(BEDROCK_ACTIONS),
            "Resource": bedrock_resource_arns(model_ids, region, account_id, partition),
        }
    ]
    if product_ids:
        statements += [
            {
                "Sid": "SubscribeToConfiguredModels",
                "Effect": "Allow",
                "Action": MARKETPLACE_ACTIONS[0],
                "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": sorted(set(product_ids))}},
            },
            {
                "Sid": "ModelSubscriptions",
                "Effect": "Allow",
                "Action": list(MARKETPLACE_ACTIONS[1:]),
                "Resource": "*",
            },
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
