"""The model gateway's AWS identities: Bedrock scoped to the configured models, Pod Identity bindings, the LB
controller's published policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws import bedrock
from components.cluster import lb_controller
from tests.configs import config_error, parse_config
from tests.conftest import program_result
from tests.tokens import RELEASE, ROLE
from tools.mocks import ACCOUNT_ID
from tools.program import ProgramResult

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
STACKS = ("dev", "staging", "prod")


def bedrock_statements(result: ProgramResult) -> dict[str, dict[str, Any]]:
    policy = json.loads(result.named(ROLE_POLICY, "gateway-bedrock-policy").inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def bedrock_statement(result: ProgramResult) -> dict[str, Any]:
    return bedrock_statements(result)["InvokeConfiguredModels"]


# --------------------------------------------------------------------------------------------
# Bedrock IAM scope


def test_plain_model_ids_get_their_regional_foundation_model_arn() -> None:
    arns = bedrock.bedrock_resource_arns(["amazon.nova-pro-v1:0"], "eu-west-1", ACCOUNT_ID)
    assert arns == ["arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-pro-v1:0"]


@pytest.mark.parametrize("prefix", ["us", "eu", "apac", "global"])
def test_inference_profiles_get_the_profile_and_the_routed_foundation_models(prefix: str) -> None:
    model = f"{prefix}.anthropic.claude-sonnet-4-5-20250929-v1:0"
    arns = bedrock.bedrock_resource_arns([model], "us-west-2", ACCOUNT_ID)
    assert arns == [
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
        f"arn:aws:bedrock:us-west-2:{ACCOUNT_ID}:inference-profile/{model}",
    ]


def test_split_model_id_only_strips_known_geographies() -> None:
    assert bedrock.split_model_id("us.amazon.nova-pro-v1:0") == ("us", "amazon.nova-pro-v1:0")
    assert bedrock.split_model_id("amazon.nova-pro-v1:0") == (None, "amazon.nova-pro-v1:0")
    assert bedrock.split_model_id("meta.llama3-70b-instruct-v1:0") == (None, "meta.llama3-70b-instruct-v1:0")


@pytest.mark.parametrize("stack", STACKS)
def test_bedrock_role_may_only_invoke_the_configured_models(stack: str) -> None:
    result = program_result(stack)
    statement = bedrock_statement(result)
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    resources = statement["Resource"]
    assert "*" not in resources
    assert all(arn.startswith("arn:aws:bedrock:") for arn in resources)
    assert not any(arn.endswith("/*") or arn.endswith(":*") for arn in resources)
    assert "Condition" not in statement
    assert "NotResource" not in statement
    assert "NotAction" not in statement
    model_list = result.named(RELEASE, "gateway-litellm").inputs["values"]["proxy_config"]["model_list"]
    region = model_list[0]["litellm_params"]["aws_region_name"]
    assert region == {"dev": "us-east-1", "staging": "us-west-2", "prod": "us-east-1"}[stack]
    expected: set[str] = set()
    for model in model_list:
        model_id = model["litellm_params"]["model"].removeprefix("bedrock/")
        expected.update(bedrock.bedrock_resource_arns([model_id], region, ACCOUNT_ID))
    assert set(resources) == expected


def test_prod_bedrock_policy_has_no_wildcard_resource_and_covers_each_inference_profile() -> None:
    statement = bedrock_statement(program_result("prod"))
    assert all(arn != "*" for arn in statement["Resource"])
    profiles = [arn for arn in statement["Resource"] if ":inference-profile/" in arn]
    models = [arn for arn in statement["Resource"] if ":foundation-model/" in arn]
    assert {arn.rsplit("/", 1)[1] for arn in profiles} == {
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "us.amazon.nova-pro-v1:0",
    }
    assert all(arn.startswith(f"arn:aws:bedrock:us-east-1:{ACCOUNT_ID}:inference-profile/") for arn in profiles)
    assert {arn.rsplit("/", 1)[1] for arn in models} == {
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.nova-pro-v1:0",
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_first_call_of_a_third_party_model_may_subscribe_to_its_product_only(stack: str) -> None:
    """Bedrock subscribes the account on the first call of a third-party model, with the caller's permissions;
    only Subscribe takes the product condition (docs/gateway.md#bedrock-model-access)."""
    statements = bedrock_statements(program_result(stack))
    assert set(statements) == {"InvokeConfiguredModels", "SubscribeToConfiguredModels", "ModelSubscriptions"}
    subscribe = statements["SubscribeToConfiguredModels"]
    assert subscribe["Action"] == "aws-marketplace:Subscribe"
    products = {"dev": ["prod-mxcfnwvpd6kb4"], "prod": ["prod-mxcfnwvpd6kb4", "prod-xdkflymybwmvi"]}[stack]
    assert subscribe["Condition"] == {"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": products}}
    views = statements["ModelSubscriptions"]
    assert views["Action"] == ["aws-marketplace:Unsubscribe", "aws-marketplace:ViewSubscriptions"]
    assert "Condition" not in views


def test_models_not_sold_on_marketplace_get_no_marketplace_permission() -> None:
    nova = [{"name": "nova-pro", "modelId": "us.amazon.nova-pro-v1:0"}]
    products = parse_config(bedrockModels=nova).gateway.marketplace_product_ids
    assert products == ()
    policy = json.loads(bedrock.bedrock_policy([nova[0]["modelId"]], "us-east-1", ACCOUNT_ID, product_ids=products))
    assert [s["Sid"] for s in policy["Statement"]] == ["InvokeConfiguredModels"]


def test_product_ids_come_from_the_documented_table_by_longest_prefix() -> None:
    assert bedrock.marketplace_product_id("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == "prod-mxcfnwvpd6kb4"
    assert bedrock.marketplace_product_id("anthropic.claude-sonnet-4-20250514-v1:0") == "prod-4pmewlybdftbs"
    assert bedrock.marketplace_product_id("global.anthropic.claude-haiku-4-5-20251001-v1:0") == "prod-xdkflymybwmvi"
    assert bedrock.marketplace_product_id("cohere.command-r-v1:0") is None
    assert not bedrock.on_marketplace("us.amazon.nova-pro-v1:0")
    assert not bedrock.on_marketplace("meta.llama3-70b-instruct-v1:0")
    assert bedrock.on_marketplace("cohere.command-r-v1:0")


def test_a_third_party_model_of_unknown_product_is_a_config_error_naming_the_key() -> None:
    models = [{"name": "command", "modelId": "cohere.command-r-v1:0"}]
    message = config_error(bedrockModels=models)
    assert message.startswith("agent-platform:bedrockModels[0].marketplaceProductId: is needed for cohere.command-r")
    models[0]["marketplaceProductId"] = "prod-tukx4z3hrewle"
    assert parse_config(bedrockModels=models).gateway.marketplace_product_ids == ("prod-tukx4z3hrewle",)
    wrong = [{"name": "x", "modelId": "cohere.command-r-v1:0", "marketplaceProductId": "nope"}]
    assert "marketplaceProductId" in config_error(bedrockModels=wrong)


# --------------------------------------------------------------------------------------------
# Pod Identity


@pytest.mark.parametrize(
    ("name", "namespace", "service_account"),
    [
        ("gateway-bedrock", "litellm", "litellm"),
        ("gateway-lb-controller", "kube-system", "aws-load-balancer-controller"),
    ],
)
def test_pod_identity_binds_the_service_account_to_its_own_role(
    each_stack: ProgramResult, name: str, namespace: str, service_account: str
) -> None:
    association = each_stack.named(ASSOCIATION, f"{name}-pod-identity")
    assert association.inputs["namespace"] == namespace
    assert association.inputs["serviceAccount"] == service_account
    assert association.inputs["clusterName"] == f"agents-{each_stack.stack}"
    role = each_stack.named(ROLE, f"{name}-role")
    assert association.inputs["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-role"
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    # the Kubernetes ServiceAccount exists, declared by the gateway
    accounts = [r for r in each_stack.of_type("kubernetes:core/v1:ServiceAccount") if "gateway" in r.urn]
    assert {"name": service_account, "namespace": namespace} in [
        {k: r.inputs["metadata"][k] for k in ("name", "namespace")} for r in accounts
    ]


def test_litellm_waits_for_its_pod_identity(dev: ProgramResult) -> None:
    release = dev.named(RELEASE, "gateway-litellm")
    # Pod Identity injects credentials at pod creation: the association must exist before the pods.
    association = dev.named(ASSOCIATION, "gateway-bedrock-pod-identity")
    assert association.urn in release.dependencies
    assert dev.named(ROLE, "gateway-bedrock-role").urn in release.dependencies


def test_lb_controller_policy_is_the_published_one(dev: ProgramResult) -> None:
    shipped = json.loads(lb_controller.POLICY.read_text())
    policy = json.loads(dev.named(ROLE_POLICY, "gateway-lb-controller-policy").inputs["policy"])
    assert policy == shipped
    actions = {
        a for s in shipped["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    # what the controller needs for an NLB with IP targets (v2.14 policy)
    assert {
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:RegisterTargets",
        "ec2:DescribeAvailabilityZones",
        "elasticloadbalancing:DescribeCapacityReservation",
    } <= actions
