"""Every policy under unknown values (preview), secrets, garbage properties and unrelated resources."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from agent_policies import POLICIES
from agent_policies.dns import kata_dns
from agent_policies.host_access import sandbox_no_host_access
from agent_policies.runtime_class import sandbox_runtime_class
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from tests.policies.builders import (
    AWS_LB,
    CROSS_ZONE,
    KIND_IDS,
    LB_TYPE,
    NAMESPACE,
    SANDBOX,
    ec2_node_class,
    launch_template,
    lb_service,
    node_pool,
)
from tests.policy_cases import (
    KINDS,
    PATCH_KINDS,
    UNKNOWN,
    VPC_DNS,
    Kind,
    defaults,
    k8s,
    k8s_provider,
    kata_spec,
    resource,
    run_resource_policy,
    run_stack_policy,
    secret,
    workload,
)
from tests.tokens import LAUNCH_TEMPLATE, NODE_GROUP, NODE_POOL, SERVICE

# --- unknowns and secrets ---------------------------------------------------------------------

RESOURCE_POLICIES = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
STACK_POLICIES = [p for p in POLICIES if isinstance(p, StackValidationPolicy)]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_unknown_runtime_class_is_never_a_violation(kind: Kind) -> None:
    spec = kata_spec(runtimeClassName=UNKNOWN, hostNetwork=True)
    for policy in RESOURCE_POLICIES:
        outcome = run_resource_policy(policy, kind.resource_type, workload(kind, spec))
        if policy is sandbox_no_host_access:
            assert len(outcome) == 1  # hostNetwork is known and wrong
        else:
            assert len(outcome) == 0, (policy.name, outcome.messages)


def test_unknowns_keep_checking_the_known_parts() -> None:
    spec = kata_spec(
        runtimeClassName="kata-clh",
        dnsConfig={"nameservers": [UNKNOWN, "172.20.0.10"]},
        containers=[UNKNOWN, {"name": "b", "securityContext": {"privileged": True}}],
    )
    outcome = run_resource_policy(kata_dns, KINDS[1].resource_type, workload(KINDS[1], spec))
    assert len(outcome) == 1
    assert "172.20.0.10" in outcome.messages[0]
    assert outcome.unknown is not None
    assert "nameservers" in outcome.unknown.message
    outcome = run_resource_policy(sandbox_no_host_access, KINDS[1].resource_type, workload(KINDS[1], spec))
    assert len(outcome) == 1
    assert "containers[b]" in outcome.messages[0]
    assert outcome.unknown is not None


def test_unknown_sandbox_label_decided_by_namespace() -> None:
    kind = KINDS[1]
    props = workload(kind, {"containers": []}, sandbox=False, labels={"agent-platform.io/sandbox": UNKNOWN})
    outcome = run_resource_policy(sandbox_runtime_class, kind.resource_type, props)
    assert len(outcome) == 0
    assert outcome.unknown is not None
    outcome = run_resource_policy(sandbox_runtime_class, kind.resource_type, props, {"sandboxNamespaces": ["tenant-a"]})
    assert len(outcome) == 1
    assert outcome.unknown is None


def test_secrets_are_read_through() -> None:
    kind = KINDS[1]
    spec = kata_spec(
        runtimeClassName=secret("kata-clh"),
        dnsConfig={"nameservers": [secret(VPC_DNS)]},
        hostNetwork=secret(False),
    )
    for policy in RESOURCE_POLICIES:
        assert len(run_resource_policy(policy, kind.resource_type, workload(kind, spec))) == 0
    spec["dnsConfig"] = secret({"nameservers": ["172.20.0.10"]})
    assert len(run_resource_policy(kata_dns, kind.resource_type, workload(kind, spec))) == 1


# --- garbage and unrelated resources ----------------------------------------------------------

GARBAGE: list[Any] = [None, "garbage", 42, 1.5, True, [], [1, "x", None], {}, {"x": [None]}, UNKNOWN]


def _garbage_variants(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The properties with each nested value replaced, in turn, by each garbage value."""

    def paths(value: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        yield prefix
        if isinstance(value, dict):
            for key, child in value.items():
                yield from paths(child, (*prefix, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                yield from paths(child, (*prefix, index))

    for path in list(paths(props, ()))[1:]:
        for junk in GARBAGE:
            variant = copy.deepcopy(props)
            target = variant
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = junk
            yield variant


def _garbage_corpus() -> list[tuple[str, dict[str, Any]]]:
    spec = kata_spec(
        runtimeClassName="kata-clh",
        initContainers=[{"name": "i"}],
        hostNetwork=True,
        volumes=[{"name": "h", "hostPath": {"path": "/"}}],
    )
    corpus = [(kind.resource_type, workload(kind, spec)) for kind in (KINDS[0], KINDS[6], KINDS[8], PATCH_KINDS[1])]
    corpus.append((SERVICE, lb_service({LB_TYPE: "external", **CROSS_ZONE})))
    tg = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
    legacy = "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled"
    corpus.append(
        (SERVICE, lb_service({legacy: "true", tg: "a=b", f"{tg}.4000": "load_balancing.cross_zone.enabled=true"}))
    )
    corpus.append((AWS_LB, {"loadBalancerType": "network", "enableCrossZoneLoadBalancing": True}))
    corpus.append((LAUNCH_TEMPLATE, launch_template()))
    pool = node_pool(families=["m8i"])
    corpus.append((NODE_POOL, pool.properties))
    return corpus


def test_garbage_never_raises() -> None:
    for resource_type, props in _garbage_corpus():
        for variant in [props, *_garbage_variants(props)]:
            for policy in RESOURCE_POLICIES:
                run_resource_policy(policy, resource_type, variant)  # must not raise
            stack = [
                resource(resource_type, "r", variant),
                resource(
                    NAMESPACE, "ns", k8s("v1", "Namespace", "tenant-a", labels={"agent-platform.io/sandbox": "true"})
                ),
                resource(NODE_GROUP, "ng", {"instanceTypes": variant.get("instanceType"), "launchTemplate": variant}),
                ec2_node_class(),
            ]
            stack[2].property_dependencies = {"launchTemplate": [stack[0].urn]}
            for policy in STACK_POLICIES:
                run_stack_policy(policy, stack)


def test_garbage_providers_never_raise() -> None:
    inputs = {"namespace": "tenant-a", "kubeconfig": {"contexts": [{"name": "c", "context": {"namespace": "x"}}]}}
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    for variant in [inputs, *_garbage_variants(inputs)]:
        provider = k8s_provider("p", **variant)
        for policy in RESOURCE_POLICIES:
            config = {"sandboxNamespaces": ["tenant-a"]} if "sandboxNamespaces" in defaults(policy) else None
            run_resource_policy(policy, KINDS[1].resource_type, props, config, provider=provider)
        namespace = resource(
            NAMESPACE, "ns", k8s("v1", "Namespace", "tenant-a", labels={SANDBOX: "true"}), provider=provider
        )
        stack = [provider, namespace, resource(KINDS[1].resource_type, "w", props, provider=provider)]
        for policy in STACK_POLICIES:
            run_stack_policy(policy, stack)


@pytest.mark.parametrize("resource_type", ["aws:s3/bucketV2:BucketV2", "kubernetes:core/v1:ConfigMap", NAMESPACE])
def test_quiet_on_unrelated_resources(resource_type: str) -> None:
    props = {"metadata": {"name": "x"}, "spec": {"template": {"spec": {"hostNetwork": True}}}}
    for policy in RESOURCE_POLICIES:
        assert len(run_resource_policy(policy, resource_type, props)) == 0
