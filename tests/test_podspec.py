"""The single sandbox pod template builder: isolation invariants for every agent type and for SandboxTemplates."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest

from components.config import PlatformConfig, TenantConfig
from components.contracts.labels import ISOLATION_LABEL, SANDBOX_LABEL
from components.k8s.podspec import (
    KATA_MEMORY_ANNOTATION,
    KATA_VCPUS_ANNOTATION,
    Container,
    SandboxPod,
    pod_security_context,
    sandbox_pod_template,
)
from components.runtime.agent_sandbox import sandbox_template_spec
from components.tenants.agent_pod import agent_image, agent_pod_template
from components.tenants.agent_types import AGENT_TYPES
from components.tenants.sandbox_network import sandbox_egress_rules
from tests.configs import parse_config
from tests.schemas import validate_custom_resource, validate_object


def platform(cidr: str = "10.1.0.0/16", **agent: Any) -> PlatformConfig:
    agents = [
        {"name": "hermes", "type": "hermes", "cpu": "2", "memory": "4Gi", "storageGiB": 10, **agent},
        {"name": "openclaw", "type": "openclaw", **agent},
        {"name": "mcp", "type": "mcp", "mcp": {"image": "example.com/acme/tools:1.0"}, **agent},
    ]
    return parse_config(vpcCidr=cidr, tenants=[{"name": "acme", "agents": agents}])


def template_for(cfg: PlatformConfig, agent: str, workload: str = "deployment", data: str = "emptyDir") -> dict:
    tenant: TenantConfig = cfg.tenants[0]
    config = next(a for a in tenant.agents if a.name == agent)
    return agent_pod_template(
        tenant=tenant,
        agent_name=agent,
        image=agent_image(cfg.images, config),
        network=cfg.network,
        workload=workload,
        data=data,
        secret_names=("LITELLM_API_KEY", AGENT_TYPES[agent].token_env),
    )


def assert_sandbox_pod(template: dict[str, Any], *, resolver: str, namespace: str) -> None:
    """Every isolation invariant of a sandbox pod template (also used by tests/test_agents.py)."""
    labels, spec = template["metadata"]["labels"], template["spec"]
    assert labels[SANDBOX_LABEL] == "true"
    assert labels["agent-platform.io/tenant"]
    assert labels["app.kubernetes.io/name"]
    if "runtimeClassName" in spec:
        assert spec["runtimeClassName"].startswith("kata-")
        assert ISOLATION_LABEL not in labels
    else:  # a Fargate tenant's pod: its own micro-VM, placed by the profile that selects this label
        assert labels[ISOLATION_LABEL] == "fargate"
        assert not {"nodeSelector", "affinity", "tolerations", "nodeName", "schedulerName"} & set(spec)
        assert not any("persistentVolumeClaim" in v for v in spec.get("volumes", []))
    assert spec["dnsPolicy"] == "None"
    assert spec["dnsConfig"]["nameservers"] == [resolver]
    assert spec["dnsConfig"]["searches"][:2] == [f"{namespace}.svc.cluster.local", "svc.cluster.local"]
    if spec.get("runtimeClassName") == "kata-clh":
        assert "initContainers" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == "sandbox"
    assert not any(spec.get(flag) for flag in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in spec.get("volumes", []))
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] > 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"] + spec.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == pod_sc["runAsUser"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["readOnlyRootFilesystem"] is True
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        assert set(resources["limits"]) == {"cpu", "memory"}
        assert ":" in container["image"]
        assert not container["image"].endswith(":latest")


def deployment(template: dict) -> dict:
    labels = {k: v for k, v in template["metadata"]["labels"].items() if k.startswith("agent-platform.io/")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "agent", "namespace": "tenant-acme"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }


@pytest.mark.parametrize("agent", sorted(AGENT_TYPES))
def test_every_agent_type_gets_a_hardened_sandbox_pod(agent: str) -> None:
    cfg = platform()
    template = template_for(cfg, agent)
    assert_sandbox_pod(template, resolver="10.1.0.2", namespace="tenant-acme")
    spec = template["spec"]
    assert spec["runtimeClassName"] == "kata-clh"
    assert spec["securityContext"]["runAsUser"] == AGENT_TYPES[agent].uid
    assert spec["containers"][0]["resources"]["limits"] == {
        "cpu": cfg.tenants[0].agents[0 if agent == "hermes" else 1].cpu,
        "memory": cfg.tenants[0].agents[0 if agent == "hermes" else 1].memory,
    }
    assert "annotations" not in template["metadata"]  # no VM sizing asked
    validate_object(deployment(template))


@pytest.mark.parametrize("agent", sorted(AGENT_TYPES))
def test_sandbox_templates_use_the_same_pod_and_validate(agent: str) -> None:
    cfg = platform()
    template = template_for(cfg, agent, workload="warm-pool", data="claimTemplate")
    assert_sandbox_pod(template, resolver="10.1.0.2", namespace="tenant-acme")
    assert template["metadata"]["labels"]["agent-platform.io/workload"] == "warm-pool"
    # The agent-sandbox controller adds the "data" volume from volumeClaimTemplates itself.
    assert "data" not in {v["name"] for v in template["spec"]["volumes"]}
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    spec = sandbox_template_spec(template, sandbox_egress_rules(cfg.network), [claim])
    assert spec["networkPolicyManagement"] == "Managed"
    assert "ingress" not in spec["networkPolicy"]  # no ingress rule: all ingress denied
    validate_custom_resource(
        {
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
            "kind": "SandboxTemplate",
            "metadata": {"name": agent, "namespace": "tenant-acme"},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    ("cidr", "resolver"),
    [("10.1.0.0/16", "10.1.0.2"), ("172.18.16.0/20", "172.18.16.2"), ("192.168.64.0/18", "192.168.64.2")],
)
def test_resolver_is_computed_from_the_vpc_cidr(cidr: str, resolver: str) -> None:
    cfg = platform(cidr)
    assert str(ipaddress.ip_network(cidr).network_address + 2) == resolver
    for agent in AGENT_TYPES:
        assert template_for(cfg, agent)["spec"]["dnsConfig"]["nameservers"] == [resolver]
    rules = sandbox_egress_rules(cfg.network)
    assert rules[0]["to"] == [{"ipBlock": {"cidr": f"{resolver}/32"}}]
    assert {p["protocol"] for p in rules[0]["ports"]} == {"UDP", "TCP"}


def test_vm_sizing_annotations_only_when_asked() -> None:
    cfg = platform(cpu="2", memory="4Gi", vmCpus=2, vmMemoryMiB=4096)
    annotations = template_for(cfg, "hermes")["metadata"]["annotations"]
    assert annotations == {KATA_VCPUS_ANNOTATION: "2", KATA_MEMORY_ANNOTATION: "4096"}
    assert KATA_VCPUS_ANNOTATION == "io.katacontainers.config.hypervisor.default_vcpus"


def test_runtime_class_comes_from_the_agent() -> None:
    cfg = platform(runtimeClass="kata-qemu")
    assert template_for(cfg, "openclaw")["spec"]["runtimeClassName"] == "kata-qemu"


def base_pod(**fields: Any) -> SandboxPod:
    container = Container(name="c", image="example.com/agent:1.0", command=("run",))
    values = dict(
        tenant="acme",
        namespace="tenant-acme",
        app="hermes",
        agent="a",
        workload="deployment",
        runtime_class="kata-clh",
        uid=10000,
        cpu="1",
        memory="1Gi",
        service_account="sandbox",
        container=container,
    )
    values.update(fields)
    return SandboxPod(**values)


def test_builder_refuses_init_containers_on_cloud_hypervisor() -> None:
    init = Container(name="seed", image="example.com/busybox:1.37", command=("true",))
    cfg = platform()
    with pytest.raises(ValueError, match="initContainers"):
        sandbox_pod_template(base_pod(init_containers=(init,)), cfg.network)
    # QEMU starts them fine, and they get the same hardening.
    spec = sandbox_pod_template(base_pod(runtime_class="kata-qemu", init_containers=(init,)), cfg.network)["spec"]
    assert spec["initContainers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"uid": 0}, "non-root"),
        ({"volumes": ({"name": "host", "hostPath": {"path": "/"}},)}, "hostPath"),
    ],
)
def test_builder_refuses_root_and_host_paths(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        sandbox_pod_template(base_pod(**fields), platform().network)


def test_egress_allows_dns_litellm_and_public_https_only() -> None:
    network = platform("10.9.0.0/16").network
    rules = sandbox_egress_rules(network)
    ports = sorted((p["protocol"], p["port"]) for rule in rules for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 4000), ("UDP", 53)]
    litellm = next(r for r in rules if r["ports"] == [{"protocol": "TCP", "port": 4000}])
    assert litellm["to"] == [{"ipBlock": {"cidr": "10.9.0.0/16"}}]
    https = next(r for r in rules if r["ports"] == [{"protocol": "TCP", "port": 443}])
    assert https["to"][0]["ipBlock"] == {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.9.0.0/16"]}


def test_builder_output_is_not_shared_between_calls() -> None:
    cfg = platform()
    first = template_for(cfg, "hermes")
    snapshot = copy.deepcopy(first)
    first["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    assert template_for(cfg, "hermes") == snapshot


def test_pod_security_context_is_non_root_seccomp_default_and_sets_only_what_it_is_given() -> None:
    pod = {"securityContext": pod_security_context(100, 101), "containers": []}
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 100,
        "runAsGroup": 101,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    validate_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod})
    volumes = pod_security_context(999, fs_group=999, fs_group_change_policy="OnRootMismatch")
    assert (volumes["runAsGroup"], volumes["fsGroup"], volumes["fsGroupChangePolicy"]) == (999, 999, "OnRootMismatch")
    assert "fsGroup" not in pod_security_context(999)
