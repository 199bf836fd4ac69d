"""Kata Containers on the Kata nodes: kata-deploy (Helm) plus the RuntimeClasses sandboxes use.

The RuntimeClasses are first-class resources (the chart's are off), so the policy pack sees them and their overhead
follows the configured Kata version. Details and the chart values checked upstream:
docs/cluster.md#kata-containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.aws import userdata
from components.config import KataConfig
from components.contracts.labels import (
    DEDICATED_TOLERATION_ANY,
    KATA_DEPLOY_INSTANCE_LABEL,
    KATA_NODE_SELECTOR,
    KATA_RUNTIME_LABEL,
    KATA_TOLERATION,
)
from components.contracts.namespaces import KATA_NAMESPACE
from components.runtime import gvisor

CHART = "oci://ghcr.io/kata-containers/kata-deploy-charts/kata-deploy"
NAMESPACE = KATA_NAMESPACE
# Per-pod VM sizing annotations the shims accept (components/k8s/podspec.py sets them when a tenant asks).
# Only sizing: annotations naming host paths (jailer, hypervisor, virtiofsd args) stay disallowed.
ALLOWED_HYPERVISOR_ANNOTATIONS = ["default_vcpus", "default_memory"]
FC_POOL = "kata-devpool"


def kata_deploy_values(cfg: KataConfig, dedicated_nodes: bool = False) -> dict[str, Any]:
    """Only what differs from the chart's defaults (the offline render checks that every key has an effect).
    ``dedicated_nodes``: some tenant has its own tainted Kata nodes, where kata-deploy must run too."""
    shims: dict[str, Any] = {"disableAll": True}
    for shim in cfg.shims:
        shims[shim] = {"enabled": True, "allowedHypervisorAnnotations": list(ALLOWED_HYPERVISOR_ANNOTATIONS)}
    if "fc" in shims and cfg.major < 4:
        # Firecracker has no shared filesystem: images reach the guest as block devices from containerd's
        # devmapper snapshotter, whose thin pool the node prepares (firecracker_devmapper_userdata()). The 4.x
        # chart sets it for fc by default.
        shims["fc"]["containerd"] = {"snapshotter": "devmapper"}
    values: dict[str, Any] = {
        "nodeSelector": dict(KATA_NODE_SELECTOR),
        "tolerations": [dict(KATA_TOLERATION), *([dict(DEDICATED_TOLERATION_ANY)] if dedicated_nodes else [])],
        "shims": shims,
        "defaultShim": {"amd64": cfg.classes.get(cfg.default_runtime_class, cfg.shims[0])},
        "runtimeClasses": {"enabled": False},
        "snapshotter": {"setup": []},  # no nydus: images are pulled by containerd on the node
        # The verification and post-delete RBAC cleanup Jobs: a pinned image instead of the chart's latest tag.
        "kubectlImage": chart_image(cfg.kubectl_image),
    }
    if cfg.monitor:
        # kata-monitor (DaemonSet, port KATA_MONITOR_PORT on the pod IP): per-sandbox metrics of the Go-runtime
        # shims; it does not mount runtime-rs' /run/kata, so it runs only when such a shim (kata-fc) is on.
        values["monitor"] = {"enabled": True}
    return values


def chart_image(image: str) -> dict[str, str]:
    """kata-deploy's ``{reference, tag}`` for ``image``; a digest-pinned ``repo:tag@sha256:...`` goes whole into
    ``reference`` (the chart's kubectlImage helper then ignores the tag)."""
    if "@" in image:
        return {"reference": image}
    repository, _, tag = image.rpartition(":")
    return {"reference": repository, "tag": tag}


def runtime_class_spec(cfg: KataConfig, runtime_class: str) -> dict[str, Any]:
    """``handler``, ``overhead`` and ``scheduling`` of one RuntimeClass."""
    if runtime_class == "gvisor":
        return gvisor.runtime_class_spec()  # runsc on the gVisor pool (components/runtime/gvisor.py)
    ready = {KATA_RUNTIME_LABEL: "true", **({KATA_DEPLOY_INSTANCE_LABEL: "true"} if cfg.major >= 4 else {})}
    return {
        "handler": f"kata-{cfg.classes[runtime_class]}",  # kata-deploy registers the handler kata-<shim>
        "overhead": {"podFixed": cfg.pod_overhead(runtime_class)},
        # Only nodes where kata-deploy finished (it sets these labels last), so never a node without /dev/kvm.
        "scheduling": {"nodeSelector": ready, "tolerations": [dict(KATA_TOLERATION)]},
    }


@dataclass(frozen=True)
class KataRuntimeArgs:
    config: KataConfig
    depends_on: tuple[pulumi.Resource, ...] = ()  # e.g. the core node group (depends_on is not inherited)
    dedicated_nodes: bool = False  # some tenant has dedicatedNodes: kata-deploy tolerates their taint


class KataRuntime(pulumi.ComponentResource):
    runtime_class_names: list[str]
    runtime_classes: list[k8s.node.v1.RuntimeClass]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KataRuntimeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("agent-platform:kata:KataRuntime", name, None, opts)
        cfg = args.config
        labels = {"app.kubernetes.io/part-of": "agent-platform"}
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            # kata-deploy is privileged by nature (hostPID, host mounts, containerd restarts).
            metadata={"name": NAMESPACE, "labels": {**labels, "pod-security.kubernetes.io/enforce": "privileged"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespace = namespace  # NetworkPolicies wait for it (components/network/network_policies.py)
        self.release = k8s.helm.v3.Release(
            f"{name}-deploy",
            name="kata-deploy",
            chart=CHART,
            version=cfg.version,
            namespace=NAMESPACE,
            values=kata_deploy_values(cfg, args.dedicated_nodes),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, *args.depends_on]),
        )
        self.runtime_classes = []
        for runtime_class in cfg.runtime_classes:
            spec = runtime_class_spec(cfg, runtime_class)
            self.runtime_classes.append(
                k8s.node.v1.RuntimeClass(
                    f"{name}-{runtime_class}",
                    metadata={"name": runtime_class, "labels": labels},
                    **spec,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        self.runtime_class_names = list(cfg.runtime_classes)
        self.register_outputs({"runtimeClasses": self.runtime_class_names, "chartVersion": cfg.version})


# ---------------------------------------------------------------------------------------------------
# Node preparation for the Firecracker shim, for the Kata nodes' user data (components/capacity/kata_node_group.py).

_DEVPOOL_SCRIPT = """#!/bin/bash
# Kata Firecracker (kata-fc) needs containerd's devmapper snapshotter: a device-mapper thin pool, here on
# sparse loop files, re-created at every boot before containerd starts (loop devices do not survive a
# reboot; the metadata file does, so existing snapshots stay usable).
set -euo pipefail
cat > /usr/local/sbin/__POOL__ <<'SCRIPT'
#!/bin/bash
set -euo pipefail
DIR=/var/lib/containerd/devmapper
POOL=__POOL__
dmsetup status "$POOL" >/dev/null 2>&1 && exit 0
mkdir -p "$DIR"
[ -f "$DIR/data" ] || truncate -s __DATA_GIB__G "$DIR/data"
[ -f "$DIR/meta" ] || truncate -s 2G "$DIR/meta"
DATA_DEV=$(losetup --find --show "$DIR/data")
META_DEV=$(losetup --find --show "$DIR/meta")
SECTORS=$(( $(blockdev --getsize64 "$DATA_DEV") / 512 ))
dmsetup create "$POOL" --table "0 $SECTORS thin-pool $META_DEV $DATA_DEV 128 32768 1 skip_block_zeroing"
SCRIPT
chmod 0755 /usr/local/sbin/__POOL__
cat > /etc/systemd/system/__POOL__.service <<'UNIT'
[Unit]
Description=Device-mapper thin pool for the Kata Firecracker shim (containerd devmapper snapshotter)
DefaultDependencies=no
After=local-fs.target
Before=containerd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/__POOL__

[Install]
WantedBy=multi-user.target containerd.service
UNIT
systemctl daemon-reload
systemctl enable --now __POOL__.service
"""

_CONTAINERD = """[plugins."io.containerd.snapshotter.v1.devmapper"]
  pool_name = "__POOL__"
  root_path = "/var/lib/containerd/devmapper/snapshotter"
  base_image_size = "10GB"
  discard_blocks = true
"""

_BOUNDARY = "//KATA-FC-DEVMAPPER//"


def firecracker_devmapper_parts(data_gib: int = 64) -> list[tuple[str, str]]:
    """The two AL2023 user-data parts, as ``(content type, body)``: a nodeadm NodeConfig that adds the
    devmapper snapshotter to containerd's config (nodeadm merges every NodeConfig part), and a shell
    script (cloud-init runs it before nodeadm starts containerd) that creates the thin pool."""
    script = _DEVPOOL_SCRIPT.replace("__POOL__", FC_POOL).replace("__DATA_GIB__", str(data_gib))
    return [
        (userdata.NODECONFIG, userdata.containerd_node_config(_CONTAINERD.replace("__POOL__", FC_POOL))),
        (userdata.SHELL, script),
    ]


def firecracker_devmapper_userdata(data_gib: int = 64) -> str:
    """The same parts as a complete MIME multipart document. Only needed when ``kataFirecracker`` is on."""
    return userdata.multipart(firecracker_devmapper_parts(data_gib), _BOUNDARY)
