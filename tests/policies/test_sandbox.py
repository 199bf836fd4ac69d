"""sandbox-runtime-class and sandbox-no-host-access: sandbox detection (label, namespace, kind, the
provider's default namespace), every workload kind and server-side-apply patches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent_policies.dns import kata_dns
from agent_policies.host_access import sandbox_no_host_access
from agent_policies.kata import kata_clh_no_init_containers
from agent_policies.runtime_class import sandbox_runtime_class

from tests.policies.builders import (
    KIND_IDS,
    PATCH_IDS,
    check,
    deployment_patch_resource,
    deployment_resource,
    policy_levels,
    who,
)
from tests.policy_cases import (
    KINDS,
    PATCH_KINDS,
    UNKNOWN,
    Kind,
    k8s_provider,
    kata_spec,
    resource,
    run_resource_policy,
    workload,
)
from tools.analyzer import PolicyPackProcess

# --- sandbox-runtime-class --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_sandbox_runtime_class_every_kind(kind: Kind) -> None:
    spec = kata_spec()
    del spec["runtimeClassName"]
    assert check(sandbox_runtime_class, kind, spec) == [
        f"{who(kind)}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."
    ]
    assert check(sandbox_runtime_class, kind, kata_spec(runtimeClassName="runc")) == [
        f'{who(kind)}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, kata-fc instead of "runc".'
    ]
    for runtime_class in ("kata-clh", "kata-qemu", "kata-fc"):
        assert check(sandbox_runtime_class, kind, kata_spec(runtimeClassName=runtime_class)) == []
    # Not a sandbox: no label, namespace not configured.
    assert check(sandbox_runtime_class, kind, {"containers": []}, sandbox=False) == []


def test_sandbox_runtime_class_config() -> None:
    deployment = KINDS[1]
    plain = {"containers": [{"name": "x"}]}
    assert check(sandbox_runtime_class, deployment, plain, sandbox=False) == []
    in_namespace = check(
        sandbox_runtime_class,
        deployment,
        plain,
        sandbox=False,
        config={"sandboxNamespaces": ["tenant-a"]},
    )
    assert len(in_namespace) == 1
    # No namespace means the default namespace.
    assert check(
        sandbox_runtime_class,
        deployment,
        plain,
        sandbox=False,
        namespace=None,
        config={"sandboxNamespaces": ["default"]},
    ) == ["Deployment default/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."]
    assert (
        check(
            sandbox_runtime_class,
            deployment,
            kata_spec(runtimeClassName="gvisor"),
            config={"allowedRuntimeClasses": ["gvisor"]},
        )
        == []
    )
    sandbox_kind = KINDS[7]
    assert len(check(sandbox_runtime_class, sandbox_kind, plain, sandbox=False)) == 0
    assert (
        len(
            check(
                sandbox_runtime_class,
                sandbox_kind,
                plain,
                sandbox=False,
                config={"sandboxKinds": ["Sandbox"]},
            )
        )
        == 1
    )


def test_sandbox_label_value_forms() -> None:
    deployment = KINDS[1]
    spec = {"containers": []}
    for value, expected in (("true", 1), ("True", 1), (True, 1), ("false", 0), ("yes", 0)):
        messages = check(
            sandbox_runtime_class,
            deployment,
            spec,
            sandbox=False,
            labels={"agent-platform.io/sandbox": value},
        )
        assert len(messages) == expected, value


# --- sandbox-no-host-access -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_sandbox_no_host_access_every_kind(kind: Kind) -> None:
    assert check(sandbox_no_host_access, kind, kata_spec()) == []
    privileged = {"name": "root", "securityContext": {"privileged": True}}
    spec = kata_spec(
        hostNetwork=True,
        hostPID=True,
        hostIPC=True,
        initContainers=[privileged],
        ephemeralContainers=[{"name": "debug", "securityContext": {"privileged": True}}],
        volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
    )
    spec["containers"].append({"name": "sidecar", "securityContext": {"privileged": True}})
    messages = check(sandbox_no_host_access, kind, spec)
    path = kind.spec_path
    expected_fragments = [
        f"remove {path}.hostNetwork",
        f"remove {path}.hostPID",
        f"remove {path}.hostIPC",
        f"set {path}.initContainers[root].securityContext.privileged to false",
        f"set {path}.containers[sidecar].securityContext.privileged to false",
        f"set {path}.ephemeralContainers[debug].securityContext.privileged to false",
        f'remove the hostPath volume "docker" from {path}.volumes',
    ]
    assert len(messages) == len(expected_fragments), messages
    for message, fragment in zip(messages, expected_fragments, strict=True):
        assert message.startswith(f"{who(kind)}: {fragment}")
    # Not a sandbox: host access is another policy's business.
    assert check(sandbox_no_host_access, kind, spec, sandbox=False) == []


def test_sandbox_no_host_access_false_flags() -> None:
    spec = kata_spec(hostNetwork=False, hostPID=False, hostIPC=False)
    assert check(sandbox_no_host_access, KINDS[0], spec) == []


# --- server-side-apply patches ----------------------------------------------------------------


@pytest.mark.parametrize("kind", PATCH_KINDS, ids=PATCH_IDS)
def test_patches_are_workloads(kind: Kind) -> None:
    """A patch that sets a bad field on a sandbox is reported; a field it omits is not a violation."""
    who_ = f"{kind.kind} tenant-a/hermes"
    assert check(sandbox_runtime_class, kind, {"runtimeClassName": "runc"}) == [
        f'{who_}: set {kind.spec_path}.runtimeClassName to one of kata-clh, kata-qemu, kata-fc instead of "runc".'
    ]
    assert check(sandbox_runtime_class, kind, {"containers": [{"name": "agent", "image": "x:2"}]}) == []
    assert check(sandbox_runtime_class, kind, {"runtimeClassName": "kata-clh"}) == []
    host = check(
        sandbox_no_host_access,
        kind,
        {
            "hostNetwork": True,
            "hostPID": "true",
            "containers": [{"name": "agent", "securityContext": {"privileged": True}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        },
    )
    assert [m.split(": ", 1)[1].split(" ", 2)[:2] for m in host] == [
        ["remove", f"{kind.spec_path}.hostNetwork"],
        ["remove", f"{kind.spec_path}.hostPID"],
        ["set", f"{kind.spec_path}.containers[agent].securityContext.privileged"],
        ["remove", "the"],
    ]
    assert all(m.startswith(who_) for m in host)
    assert check(sandbox_no_host_access, kind, {"hostNetwork": False}) == []
    assert check(sandbox_no_host_access, kind, {}) == []
    # kata-dns: judged on the fields the patch sets, Kata by runtime class or (left alone) by the sandbox label.
    assert len(check(kata_dns, kind, {"runtimeClassName": "kata-qemu", "dnsPolicy": "ClusterFirst"})) == 1
    assert len(check(kata_dns, kind, {"dnsPolicy": "ClusterFirst"})) == 1
    assert len(check(kata_dns, kind, {"dnsConfig": {"nameservers": ["172.20.0.10"]}})) == 1
    assert len(check(kata_dns, kind, {"dnsConfig": {"nameservers": []}})) == 1
    assert check(kata_dns, kind, {"dnsPolicy": "None"}) == []
    assert check(kata_dns, kind, {"containers": [{"name": "agent"}]}) == []
    assert check(kata_dns, kind, {"dnsPolicy": "ClusterFirst"}, sandbox=False) == []
    assert len(check(kata_clh_no_init_containers, kind, {"runtimeClassName": "kata-clh", "initContainers": [{}]})) == 1


def test_patch_sandbox_by_namespace_and_kind() -> None:
    kind = PATCH_KINDS[1]  # DeploymentPatch
    config = {"sandboxNamespaces": ["tenant-a"]}
    assert len(check(sandbox_runtime_class, kind, {"runtimeClassName": "runc"}, sandbox=False, config=config)) == 1
    assert check(sandbox_runtime_class, kind, {"runtimeClassName": "runc"}, sandbox=False) == []
    sandbox_patch = next(k for k in PATCH_KINDS if k.kind == "SandboxPatch")
    config = {"sandboxKinds": ["Sandbox"]}
    assert len(check(sandbox_no_host_access, sandbox_patch, {"hostIPC": True}, sandbox=False, config=config)) == 1


def test_grpc_patches(pack: PolicyPackProcess) -> None:
    kind = PATCH_KINDS[3]  # DaemonSetPatch
    bad = resource(kind.resource_type, "ds", workload(kind, {"runtimeClassName": "runc", "hostNetwork": True}))
    assert policy_levels(pack.analyze(bad)) == {
        "sandbox-runtime-class": "mandatory",
        "sandbox-no-host-access": "mandatory",
    }
    fine = resource(kind.resource_type, "ds-ok", workload(kind, {"containers": [{"name": "agent", "image": "x:2"}]}))
    assert pack.analyze(fine) == []
    target = deployment_resource("hermes", kata_spec(), sandbox=True)
    patch = deployment_patch_resource("hermes-runc", {"runtimeClassName": "runc"})
    assert [(v.policy, v.urn) for v in pack.analyze_stack([target, patch])] == [
        ("sandbox-namespace-runtime-class", patch.urn)
    ]


# --- the provider's default namespace ---------------------------------------------------------

KUBECONFIG_YAML = """
apiVersion: v1
kind: Config
current-context: main
contexts:
- name: main
  context: {cluster: c, user: u, namespace: tenant-a}
- name: other
  context: {cluster: c, user: u}
"""


@pytest.mark.parametrize(
    ("inputs", "sandbox"),
    [
        ({"namespace": "tenant-a"}, True),
        ({"namespace": "tenant-b"}, False),
        ({}, False),  # "default"
        ({"kubeconfig": KUBECONFIG_YAML}, True),
        ({"kubeconfig": KUBECONFIG_YAML, "context": "other"}, False),
        ({"kubeconfig": KUBECONFIG_YAML, "namespace": "tenant-b"}, False),  # the provider input wins
        (
            {
                "kubeconfig": json.dumps(
                    {"current-context": "x", "contexts": [{"name": "x", "context": {"namespace": "tenant-a"}}]}
                )
            },
            True,
        ),  # noqa: E501
        ({"kubeconfig": "not: [a kubeconfig"}, False),
    ],
)
def test_provider_default_namespace_resource_policies(inputs: dict[str, Any], sandbox: bool) -> None:
    provider = k8s_provider("cluster", **inputs)
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    config = {"sandboxNamespaces": ["tenant-a"]}
    outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)
    assert outcome.unknown is None
    assert len(outcome) == int(sandbox), outcome.messages
    # metadata.namespace, when set, wins over the provider's default.
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace="tenant-c")
    assert (
        len(run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)) == 0
    )


def test_provider_default_namespace_from_a_kubeconfig_file(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG_YAML)
    props = workload(KINDS[0], {"hostNetwork": True}, sandbox=False, namespace=None)
    outcome = run_resource_policy(
        sandbox_no_host_access,
        KINDS[0].resource_type,
        props,
        {"sandboxNamespaces": ["tenant-a"]},
        provider=k8s_provider("file", kubeconfig=str(path)),
    )
    assert len(outcome) == 1


def test_provider_default_namespace_unknown() -> None:
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    config = {"sandboxNamespaces": ["tenant-a"]}
    for inputs in ({"namespace": UNKNOWN}, {"kubeconfig": UNKNOWN}):
        provider = k8s_provider("cluster", **inputs)
        outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)
        assert outcome.messages == []
        assert outcome.unknown is not None
    # Not needed when nothing depends on it.
    provider = k8s_provider("cluster", namespace=UNKNOWN)
    outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, provider=provider)
    assert outcome.messages == []
    assert outcome.unknown is None


def test_empty_namespace_is_the_provider_default() -> None:
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace="")
    config = {"sandboxNamespaces": ["tenant-a"]}
    provider = k8s_provider("c", namespace="tenant-a")
    outcome = run_resource_policy(sandbox_runtime_class, KINDS[1].resource_type, props, config, provider=provider)
    assert len(outcome) == 1
    outcome = run_resource_policy(
        sandbox_runtime_class, KINDS[1].resource_type, props, {"sandboxNamespaces": ["default"]}
    )
    assert len(outcome) == 1


def test_grpc_provider_default_namespace(pack: PolicyPackProcess, reconfigure: Any) -> None:
    reconfigure({"sandbox-runtime-class": {"sandboxNamespaces": ["tenant-a"]}})
    props = workload(KINDS[1], {"runtimeClassName": "runc"}, sandbox=False, namespace=None)
    bad = resource(KINDS[1].resource_type, "p", props, provider=k8s_provider("c", namespace="tenant-a"))
    assert policy_levels(pack.analyze(bad)) == {"sandbox-runtime-class": "mandatory"}
    ok = resource(KINDS[1].resource_type, "q", props, provider=k8s_provider("d", namespace="web"))
    assert pack.analyze(ok) == []
