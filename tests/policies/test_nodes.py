"""nested-virtualization-nodes and kata-node-capacity (stack): launch templates, EKS node groups and
Karpenter NodePools for Kata on nested-virtualization instance families."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies.node_capacity import kata_node_capacity
from agent_policies.nodes import nested_virtualization_nodes

from tests.policies.builders import ec2_node_class, launch_template, node_pool, node_stack
from tests.policy_cases import UNKNOWN, run_resource_policy, run_stack_policy
from tests.tokens import LAUNCH_TEMPLATE
from tools.analyzer import AnalyzerResource, PolicyPackProcess

# --- nested-virtualization-nodes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({}, []),
        ({"instanceType": None}, []),
        ({"instanceType": "c8i-flex.large"}, []),
        ({"instanceType": "R8I.xlarge"}, []),
        ({"instanceType": "m7i.large"}, ['instead of "m7i.large"']),
        ({"instanceType": "c8g.large"}, ['instead of "c8g.large"']),
        ({"metadataOptions": {"httpTokens": "optional"}}, ['httpTokens to "required"']),
        ({"metadataOptions": None}, ['httpTokens to "required"']),
        (
            {"instanceType": "t3.medium", "metadataOptions": None},
            ['instead of "t3.medium"', "IMDSv2"],
        ),
        ({"cpuOptions": {"nestedVirtualization": "disabled"}, "instanceType": "t3.medium"}, []),
        ({"cpuOptions": None, "metadataOptions": None}, []),
    ],
)
def test_nested_virtualization_nodes(props: dict[str, Any], expected: list[str]) -> None:
    outcome = run_resource_policy(
        nested_virtualization_nodes, LAUNCH_TEMPLATE, launch_template(**props), name="kata-nodes"
    )
    assert outcome.unknown is None
    assert len(outcome) == len(expected), outcome.messages
    for message, fragment in zip(outcome.messages, expected, strict=True):
        assert message.startswith("LaunchTemplate kata-nodes: ")
        assert fragment in message


def test_nested_virtualization_nodes_config() -> None:
    props = launch_template(instanceType="m7i.large", metadataOptions=None)
    config = {"nestedVirtualizationFamilies": ["m7i"], "requireImdsv2": False}
    assert len(run_resource_policy(nested_virtualization_nodes, LAUNCH_TEMPLATE, props, config)) == 0


# --- kata-node-capacity: node groups ----------------------------------------------------------


@pytest.mark.parametrize("link", ["property", "dependency", "name"])
def test_kata_node_capacity_node_groups(link: str) -> None:
    resources, group = node_stack(["m8i.xlarge", "c7i.xlarge", "t3.medium"], link=link)
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.urns == [group.urn]
    assert outcome.messages[0].startswith(
        "NodeGroup kata-ng: use only c8i, m8i, r8i, c8i-flex, m8i-flex or r8i-flex instance "
        "types in instanceTypes (remove c7i.xlarge, t3.medium)"
    )
    resources, _ = node_stack(["m8i.xlarge", "c8i-flex.large"], link=link)
    assert len(run_stack_policy(kata_node_capacity, resources)) == 0


def test_kata_node_capacity_node_group_without_instance_types() -> None:
    resources, _ = node_stack(None)
    assert len(run_stack_policy(kata_node_capacity, resources)) == 0  # the template sets one
    resources, group = node_stack(None, template_type=None)
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.urns == [group.urn]
    assert "EKS would use t3.medium" in outcome.messages[0]


@pytest.mark.parametrize("link", ["property", "dependency"])
def test_node_group_with_unknown_launch_template(link: str) -> None:
    resources, group = node_stack(["m8i.xlarge", "m5.large"], link=link)
    group.properties["launchTemplate"] = UNKNOWN
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.urns == [group.urn]
    assert "(remove m5.large)" in outcome.messages[0]
    resources, group = node_stack(["m8i.xlarge"], link=link)
    group.properties["launchTemplate"] = UNKNOWN
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_node_group_with_unknown_launch_template_and_no_link() -> None:
    resources, group = node_stack(["m5.large"], link="none")
    group.properties["launchTemplate"] = UNKNOWN
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is not None
    # The core group's unknown template is known not to be a nested-virtualization one.
    core = next(r for r in resources if r.name == "core-ng")
    core.properties["launchTemplate"] = UNKNOWN
    others = [r for r in resources if r is not group]
    outcome = run_stack_policy(kata_node_capacity, others)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_node_group_with_unknown_template_id_and_no_link() -> None:
    resources, group = node_stack(["m5.large"], link="none")  # launchTemplate {id: unknown}
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is not None
    group.properties["launchTemplate"] = {"id": "lt-0123456789", "version": "1"}  # a template of another stack
    outcome = run_stack_policy(kata_node_capacity, resources)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_grpc_node_group_with_unknown_launch_template(pack: PolicyPackProcess) -> None:
    resources, group = node_stack(["c7i.large"])
    group.properties["launchTemplate"] = UNKNOWN
    assert [(v.policy, v.urn, v.enforcement_level) for v in pack.analyze_stack(resources)] == [
        ("kata-node-capacity", group.urn, "mandatory")
    ]


# --- kata-node-capacity: NodePools ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "classes", "expected"),
    [
        (node_pool(families=["c8i", "m8i", "r8i"]), [ec2_node_class()], []),
        (node_pool(taint=None, labels={"workload-type": "kata"}), [ec2_node_class()], []),
        (node_pool(), [], ['EC2NodeClass "kata" is not declared here']),
        (node_pool(), [ec2_node_class(nested="disabled")], ["on EC2NodeClass kata"]),
        (node_pool(), [ec2_node_class(nested=None)], ['nestedVirtualization to "enabled"']),
        (
            node_pool(families=["m8i", "m7i", "c6a"]),
            [ec2_node_class()],
            ["karpenter.k8s.aws/instance-family requirement (remove m7i, c6a)"],
        ),
        (
            node_pool(
                extra_requirements=[
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": ["m8i.large", "m5.large"],
                    },
                    {"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": ["t3"]},
                ]
            ),
            [ec2_node_class()],
            ["node.kubernetes.io/instance-type requirement (remove m5.large)"],
        ),
        # Not for Kata: no taint, no label.
        (node_pool(taint=None, families=["t3"]), [], []),
        (node_pool(taint="gpu", labels={"workload-type": "core"}), [], []),
    ],
)
def test_kata_node_capacity_node_pools(
    pool: AnalyzerResource, classes: list[AnalyzerResource], expected: list[str]
) -> None:
    outcome = run_stack_policy(kata_node_capacity, [pool, *classes])
    assert outcome.unknown is None
    assert len(outcome) == len(expected), outcome.messages
    for message, fragment in zip(outcome.messages, expected, strict=True):
        assert message.startswith("NodePool kata: ")
        assert fragment in message
    assert all(u == pool.urn for u in outcome.urns)


def test_kata_node_capacity_computed_node_class_name() -> None:
    node_class = ec2_node_class(name="kata-x1")
    pool = node_pool(node_class=UNKNOWN)
    pool.property_dependencies = {"spec": [node_class.urn]}
    assert len(run_stack_policy(kata_node_capacity, [pool, node_class])) == 0
    unlinked = node_pool(node_class=UNKNOWN)
    outcome = run_stack_policy(kata_node_capacity, [unlinked, node_class])
    assert len(outcome) == 0
    assert outcome.unknown is not None


FAMILY = "karpenter.k8s.aws/instance-family"
TYPE = "node.kubernetes.io/instance-type"


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ([{"key": FAMILY, "operator": "NotIn", "values": ["t3"]}], ["karpenter.k8s.aws/instance-family NotIn"]),
        ([{"key": FAMILY, "operator": "Exists"}], ["instance-family Exists does not confine"]),
        ([{"key": FAMILY, "operator": "DoesNotExist"}], ["DoesNotExist"]),
        ([{"key": TYPE, "operator": "Gt", "values": ["1"]}], ["node.kubernetes.io/instance-type Gt"]),
        ([{"key": TYPE, "operator": "Lt", "values": ["9"]}], ["Lt"]),
        (
            [{"key": "beta.kubernetes.io/instance-type", "operator": "NotIn", "values": ["m5.large"]}],
            ["beta.kubernetes.io/instance-type NotIn"],
        ),  # noqa: E501
        (
            [
                {"key": FAMILY, "operator": "NotIn", "values": ["t3"]},
                {"key": FAMILY, "operator": "In", "values": ["m8i"]},
            ],
            [],
        ),  # noqa: E501
        ([{"key": FAMILY, "operator": "Exists"}, {"key": TYPE, "operator": "In", "values": ["c8i.large"]}], []),
        (
            [{"key": "beta.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]}],
            ["(remove m5.large)"],
        ),  # noqa: E501
        (
            [{"key": FAMILY, "operator": "Exists"}, {"key": FAMILY, "operator": "In", "values": ["m8i", "m7i"]}],
            ["(remove m7i)"],
        ),  # noqa: E501
        ([{"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["7"]}], []),  # other keys
        ([], []),
    ],
)
def test_kata_node_pool_requirement_operators(requirements: list[dict[str, Any]], expected: list[str]) -> None:
    pool = node_pool(extra_requirements=requirements)
    outcome = run_stack_policy(kata_node_capacity, [pool, ec2_node_class()])
    assert outcome.unknown is None
    assert len(outcome) == len(expected), outcome.messages
    for message, fragment in zip(outcome.messages, expected, strict=True):
        assert message.startswith("NodePool kata: ")
        assert fragment in message
    if expected and "does not confine" in outcome.messages[0]:
        assert outcome.messages[0].startswith(
            "NodePool kata: add a requirement {key: karpenter.k8s.aws/instance-family"
        )
    not_kata = node_pool(taint=None, extra_requirements=requirements)
    assert len(run_stack_policy(kata_node_capacity, [not_kata, ec2_node_class()])) == 0


def test_grpc_kata_node_pool_not_in(pack: PolicyPackProcess) -> None:
    pool = node_pool(extra_requirements=[{"key": FAMILY, "operator": "NotIn", "values": ["t3"]}])
    assert [(v.policy, v.urn) for v in pack.analyze_stack([pool, ec2_node_class()])] == [
        ("kata-node-capacity", pool.urn)
    ]
