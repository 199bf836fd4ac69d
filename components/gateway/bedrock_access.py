"""LiteLLM's access to Amazon Bedrock: a Pod Identity role for its service account, scoped to the configured models
(and their Marketplace products). Details: docs/gateway.md#bedrock-model-access."""

from __future__ import annotations

import pulumi

from components.aws.bedrock import bedrock_policy
from components.aws.iam import PodIdentity, account_policy
from components.config import GatewayConfig
from components.contracts.gateway import NAMESPACE

POD_IDENTITY_TYPE = "agent-platform:gateway:PodIdentity"  # the deployed token of the gateway's identities


def bedrock_pod_identity(
    name: str, cfg: GatewayConfig, *, cluster_name: pulumi.Input[str], service_account: str, parent: pulumi.Resource
) -> PodIdentity:
    """The role LiteLLM's pods assume (``parent``: the gateway, which also names the account in the policy)."""
    model_ids = [m.model_id for m in cfg.models]
    policy = account_policy(
        parent,
        lambda partition, account: bedrock_policy(
            model_ids, cfg.bedrock_region, account, partition, cfg.marketplace_product_ids
        ),
    )
    return PodIdentity(
        name,
        cluster_name=cluster_name,
        namespace=NAMESPACE,
        service_account=service_account,
        policy=policy,
        opts=pulumi.ResourceOptions(parent=parent),
        type_token=POD_IDENTITY_TYPE,
    )
