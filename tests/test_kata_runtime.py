"""kata-deploy (Helm) values and the RuntimeClasses, across Kata versions and optional shims."""

from __future__ import annotations

import email
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import load
from components.config.reader import safe_load
from components.contracts.labels import KATA_RUNTIME_LABEL, KATA_TOLERATION
from components.runtime.kata_deploy import (
    CHART,
    FC_POOL,
    KataRuntime,
    KataRuntimeArgs,
    chart_image,
    firecracker_devmapper_parts,
    firecracker_devmapper_userdata,
)
from tests.configs import default
from tests.conftest import program_result
from tests.schemas import validate_object
from tests.tokens import RELEASE, RUNTIME_CLASS
from tools.program import ProgramResult


def kata_program() -> None:
    provider = k8s.Provider("test-k8s", kubeconfig="{}")
    KataRuntime("kata-runtime", KataRuntimeArgs(load().kata), opts=pulumi.ResourceOptions(providers=[provider]))


def kata(**overrides: Any) -> ProgramResult:
    return program_result("dev", {f"agent-platform:{k}": v for k, v in overrides.items()}, kata_program)


def values(result: ProgramResult) -> dict[str, Any]:
    return result.named(RELEASE, "kata-runtime-deploy").inputs["values"]


def runtime_classes(result: ProgramResult) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in result.of_type(RUNTIME_CLASS)}


def test_kata_deploy_release_runs_only_on_kata_nodes() -> None:
    release = kata().named(RELEASE, "kata-runtime-deploy").inputs
    assert release["chart"] == CHART == "oci://ghcr.io/kata-containers/kata-deploy-charts/kata-deploy"
    assert release["version"] == default("kataDeployVersion")
    assert release["namespace"] == "kata-system"
    v = release["values"]
    assert v["nodeSelector"] == {"workload-type": "kata"}
    assert v["tolerations"] == [KATA_TOLERATION]
    assert v["shims"]["disableAll"] is True
    # Kata 4.x: the Rust runtime (runtime-rs) behind the platform's stable class names
    assert {s for s, c in v["shims"].items() if s != "disableAll" and c["enabled"]} == {
        "clh-runtime-rs",
        "qemu-runtime-rs",
    }
    assert v["shims"]["clh-runtime-rs"]["allowedHypervisorAnnotations"] == ["default_vcpus", "default_memory"]
    assert v["defaultShim"] == {"amd64": "clh-runtime-rs"}
    assert v["runtimeClasses"] == {"enabled": False}  # declared below instead
    assert "deploymentMode" not in v  # 4.1's default is the DaemonSet: it also covers nodes Karpenter adds later
    assert "monitor" not in v  # kata-monitor reads only the Go runtime's /run/vc/sbs: nothing to see here
    assert v["kubectlImage"] == {"reference": default("kataKubectlImage")}  # tag@digest, not the chart's latest
    assert chart_image("docker.io/alpine/k8s:1.36.2") == {"reference": "docker.io/alpine/k8s", "tag": "1.36.2"}


def test_runtime_classes_match_the_shims_and_kata_4_overhead() -> None:
    classes = runtime_classes(kata())
    assert set(classes) == {"kata-clh", "kata-qemu"}
    assert classes["kata-clh"]["overhead"]["podFixed"] == {"cpu": "250m", "memory": "130Mi"}
    assert classes["kata-qemu"]["overhead"]["podFixed"] == {"cpu": "250m", "memory": "320Mi"}
    assert {name: rc["handler"] for name, rc in classes.items()} == {
        "kata-clh": "kata-clh-runtime-rs",
        "kata-qemu": "kata-qemu-runtime-rs",
    }
    for rc in classes.values():
        # never a node where kata-deploy has not finished (no /dev/kvm check passed, no shim installed)
        ready = {KATA_RUNTIME_LABEL: "true", "kata-deploy.katacontainers.io/default": "true"}
        assert rc["scheduling"] == {"nodeSelector": ready, "tolerations": [KATA_TOLERATION]}
        validate_object(rc)


def test_kata_3_halves_the_qemu_overhead_and_has_no_monitor() -> None:
    result = kata(kataDeployVersion="3.27.0")
    assert runtime_classes(result)["kata-qemu"]["overhead"]["podFixed"]["memory"] == "160Mi"
    assert runtime_classes(result)["kata-clh"]["handler"] == "kata-clh"  # the Go runtime in 3.x
    assert runtime_classes(result)["kata-clh"]["scheduling"]["nodeSelector"] == {KATA_RUNTIME_LABEL: "true"}
    assert "monitor" not in values(result)


def test_firecracker_and_gvisor_are_opt_in() -> None:
    result = kata(kataFirecracker=True, gvisor=True)
    v = values(result)
    assert v["shims"]["fc"]["enabled"] is True
    assert "containerd" not in v["shims"]["fc"]  # kata-deploy 4.x maps fc to devmapper itself (render-checked)
    assert v["monitor"] == {"enabled": True}  # fc is a Go-runtime shim: kata-monitor sees its sandboxes
    classes = runtime_classes(result)
    assert set(classes) == {"kata-clh", "kata-qemu", "kata-fc", "gvisor"}
    assert classes["kata-fc"]["handler"] == "kata-fc"
    assert classes["kata-fc"]["overhead"]["podFixed"] == {"cpu": "250m", "memory": "130Mi"}
    assert classes["gvisor"]["handler"] == "runsc"
    assert "overhead" not in classes["gvisor"]
    assert classes["gvisor"]["scheduling"]["tolerations"][0]["key"] == "gvisor"  # its own pool (test_gvisor)
    for rc in classes.values():
        validate_object(rc)


def test_children_use_the_given_provider() -> None:
    result = kata()
    provider = result.of_type("pulumi:providers:kubernetes")[0].urn
    component = result.of_type("agent-platform:kata:KataRuntime")[0].urn
    children = result.of_type(RUNTIME_CLASS) + result.of_type(RELEASE)
    assert all(r.provider == provider and r.parent == component for r in children)
    namespace = result.named("kubernetes:core/v1:Namespace", "kata-runtime-ns")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespace.urn in result.named(RELEASE, "kata-runtime-deploy").dependencies


def test_firecracker_user_data_prepares_the_devmapper_pool() -> None:
    message = email.message_from_string(firecracker_devmapper_userdata(data_gib=32))
    assert message.is_multipart()
    parts = {p.get_content_type(): p.get_payload() for p in message.get_payload()}
    assert set(parts) == {"application/node.eks.aws", "text/x-shellscript"}
    node_config = safe_load(parts["application/node.eks.aws"])
    assert node_config["kind"] == "NodeConfig"
    assert node_config["apiVersion"] == "node.eks.aws/v1alpha1"
    containerd = node_config["spec"]["containerd"]["config"]
    assert '[plugins."io.containerd.snapshotter.v1.devmapper"]' in containerd
    assert f'pool_name = "{FC_POOL}"' in containerd
    script = parts["text/x-shellscript"]
    assert script.startswith("#!/bin/bash")
    assert "truncate -s 32G" in script
    assert 'dmsetup create "$POOL"' in script
    assert f"POOL={FC_POOL}" in script
    assert "Before=containerd.service" in script
    assert [t for t, _ in firecracker_devmapper_parts()] == [
        "application/node.eks.aws",
        'text/x-shellscript; charset="us-ascii"',
    ]


def test_main_exports_the_runtime_classes_and_installs_after_the_core_nodes(dev: ProgramResult) -> None:
    assert dev.outputs["runtimeClasses"] == sorted(runtime_classes(dev))
    release = dev.named(RELEASE, "kata-runtime-deploy")
    assert release.inputs["version"] == default("kataDeployVersion")
    node_groups = {r.urn for r in dev.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert node_groups & set(release.dependencies)
