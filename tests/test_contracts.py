"""One owner per shared name: components/contracts/ holds the platform's contracts; everything that repeats
them (the policy pack, a separate package, above all) must agree with it."""

from __future__ import annotations

from typing import Any

import pytest
from agent_policies import POLICIES
from agent_policies.common import SANDBOX_LABEL as PACK_SANDBOX_LABEL

from components.config import NESTED_VIRT_FAMILIES, project_schema
from components.contracts import cluster, labels, namespaces
from tests.configs import config_error
from tools.program import ProgramResult

POLICY = {p.name: p for p in POLICIES}


def default(policy: str, key: str) -> Any:
    return POLICY[policy].config_schema.properties[key]["default"]


def test_the_policy_pack_agrees_with_the_program() -> None:
    assert PACK_SANDBOX_LABEL == labels.SANDBOX_LABEL
    for policy in ("nested-virtualization-nodes", "kata-node-capacity"):
        assert set(default(policy, "nestedVirtualizationFamilies")) == set(NESTED_VIRT_FAMILIES)
    assert default("kata-node-capacity", "kataTaintKeys") == [labels.KATA_TAINT["key"]]
    assert default("kata-node-capacity", "kataNodeLabels") == labels.KATA_NODE_SELECTOR
    schema = project_schema()
    assert schema["serviceCidr"]["default"] in default("kata-dns", "serviceCidrs")
    assert (
        default("nlb-cross-zone", "awsLoadBalancerControllerVersion")
        == f"v{schema['awsLoadBalancerControllerVersion']['default']}"
    )
    for policy in ("sandbox-runtime-class", "sandbox-namespace-runtime-class"):
        assert {"kata-clh", "kata-qemu", "kata-fc"} <= set(default(policy, "allowedRuntimeClasses"))


def test_every_platform_namespace_is_reserved(each_stack: ProgramResult) -> None:
    declared = {r.inputs["metadata"]["name"] for r in each_stack.of_type("kubernetes:core/v1:Namespace")}
    tenants = set(each_stack.outputs["tenantNamespaces"].values())
    assert declared - tenants <= namespaces.PLATFORM_NAMESPACES
    assert not tenants & namespaces.RESERVED_NAMESPACES


@pytest.mark.parametrize("namespace", sorted(namespaces.RESERVED_NAMESPACES))
def test_a_tenant_cannot_take_a_platform_namespace(namespace: str) -> None:
    tenant = {"name": "t", "namespace": namespace, "agents": [{"name": "a", "type": "hermes"}]}
    assert "is reserved for the platform" in config_error(tenants=[tenant])


def test_one_storage_class_everywhere(each_stack: ProgramResult) -> None:
    (storage_class,) = each_stack.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class.inputs["metadata"]["name"] == cluster.STORAGE_CLASS
    text = str([r.inputs for r in each_stack.registrations if r.type.startswith("kubernetes:")])
    assert text.count("'storageClassName': ") == text.count(f"'storageClassName': '{cluster.STORAGE_CLASS}'") > 0
