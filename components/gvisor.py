"""The gVisor tier: runsc and its containerd shim installed on a Karpenter node pool of its own.

gVisor needs no KVM, so its nodes can be cheaper general-purpose instances (Graviton included); the node user data
installs a pinned, checksum-verified release. Details: docs/cluster.md#gvisor-tier.
"""

from __future__ import annotations

from components import userdata
from components.labels import GVISOR_NODE_SELECTOR, GVISOR_TAINT

HANDLER = "runsc"  # the containerd runtime name and the RuntimeClass handler
RELEASES = "https://storage.googleapis.com/gvisor/releases/release"
BINARIES = ("runsc", "containerd-shim-runsc-v1")
NODE_CLASS = "gvisor"
NODE_POOL = "gvisor"
GRAVITON = "g"  # family suffix of AWS Graviton (arm64) families: m7g, c7g...

_INSTALL = """#!/bin/bash
# gVisor __RELEASE__: runsc and containerd-shim-runsc-v1, checked against the release's SHA-512 sums.
set -euo pipefail
ARCH=$(uname -m)
URL=__RELEASES__/__RELEASE__/${ARCH}
WORK=$(mktemp -d)
cd "$WORK"
for binary in __BINARIES__; do
  curl -fsSL --retry 5 -o "$binary" "$URL/$binary"
  curl -fsSL --retry 5 -o "$binary.sha512" "$URL/$binary.sha512"
  sha512sum -c "$binary.sha512"
done
install -m 0755 __BINARIES__ "${GVISOR_BIN_DIR:-/usr/local/bin}/"
cd / && rm -rf "$WORK"
"""

_CONTAINERD = """[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.__HANDLER__]
  runtime_type = "io.containerd.runsc.v1"
"""

_BOUNDARY = "//GVISOR//"


def install_script(release: str) -> str:
    binaries = " ".join(BINARIES)
    return _INSTALL.replace("__RELEASES__", RELEASES).replace("__RELEASE__", release).replace("__BINARIES__", binaries)


def node_config() -> str:
    return userdata.containerd_node_config(_CONTAINERD.replace("__HANDLER__", HANDLER))


def gvisor_userdata(release: str) -> str:
    """MIME multipart user data: the containerd runtime entry and the install script."""
    return userdata.multipart(
        [(userdata.NODECONFIG, node_config()), (userdata.SHELL, install_script(release))], _BOUNDARY
    )


def architectures(families: tuple[str, ...]) -> tuple[str, ...]:
    """``m7g`` -> arm64 (Graviton), anything else -> amd64."""
    arches = {"arm64" if family.removesuffix("-flex").endswith(GRAVITON) else "amd64" for family in families}
    return tuple(sorted(arches))


def runtime_class_spec() -> dict[str, object]:
    """The ``gvisor`` RuntimeClass: runsc, only on the gVisor pool."""
    toleration = {
        "key": GVISOR_TAINT["key"],
        "operator": "Equal",
        "value": GVISOR_TAINT["value"],
        "effect": GVISOR_TAINT["effect"],
    }
    return {"handler": HANDLER, "scheduling": {"nodeSelector": dict(GVISOR_NODE_SELECTOR), "tolerations": [toleration]}}
