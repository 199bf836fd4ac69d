"""The gVisor tier: runsc and its containerd shim installed on a Karpenter node pool of its own.

gVisor needs no KVM, so its nodes can be cheaper general-purpose instances (Graviton included). Releases after
20260817.0 publish only a tarball per architecture (runsc, containerd-shim-runsc-v1 and the gvisor-bin/ sidecars
runsc starts the Sentry from); the node user data installs the pinned release's tarball after checking it against the
SHA-512 the program pins per architecture (config gvisorSha512Amd64/Arm64), never against a checksum downloaded
from the same place. Details: docs/cluster.md#gvisor-tier.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.aws import userdata
from components.contracts.labels import GVISOR_NODE_SELECTOR, GVISOR_TAINT

HANDLER = "runsc"  # the containerd runtime name and the RuntimeClass handler
RELEASES = "https://storage.googleapis.com/gvisor/releases/release"
TARBALL = "gvisor.tar.zstd"  # <release>/<uname -m>/gvisor.tar.zstd (and .tar.bz2)
BINARIES = ("runsc", "containerd-shim-runsc-v1")
SIDECARS = "gvisor-bin"  # runsc refuses to start a sandbox without gvisor-bin/gvisor_sentry beside it
LAST_LOOSE_RELEASE = "20260817.0"  # the last release with per-file downloads
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}  # Kubernetes architecture -> the release folder (uname -m)
NODE_CLASS = "gvisor"
NODE_POOL = "gvisor"
GRAVITON = "g"  # family suffix of AWS Graviton (arm64) families: m7g, c7g...

_INSTALL = """#!/bin/bash
# gVisor __RELEASE__: the release tarball (runsc, containerd-shim-runsc-v1, gvisor-bin/), checked against the
# SHA-512 the program pins for this architecture before anything is unpacked or installed.
set -euo pipefail
case "$(uname -m)" in
__CASES__
  *) echo "gVisor __RELEASE__: no pinned SHA-512 for $(uname -m)" >&2; exit 1 ;;
esac
DEST=${GVISOR_BIN_DIR:-/usr/local/bin}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
curl -fsSL --retry 5 -o "$WORK/__TARBALL__" "__RELEASES__/__RELEASE__/$ARCH/__TARBALL__"
echo "$SHA512  $WORK/__TARBALL__" | sha512sum -c -
command -v zstd > /dev/null || dnf install -y -q zstd
mkdir "$WORK/release"
tar --zstd -xf "$WORK/__TARBALL__" -C "$WORK/release" --no-same-owner --no-same-permissions
for file in __BINARIES__ __SIDECARS__/gvisor_sentry; do
  [ -f "$WORK/release/$file" ] || { echo "gVisor __RELEASE__: $file is not in the tarball" >&2; exit 1; }
done
install -m 0755 -t "$DEST" $(printf "$WORK/release/%s " __BINARIES__)
rm -rf "$DEST/__SIDECARS__"
install -d -m 0755 "$DEST/__SIDECARS__"
install -m 0755 -t "$DEST/__SIDECARS__" "$WORK/release/__SIDECARS__"/*
"""

_CONTAINERD = """[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.__HANDLER__]
  runtime_type = "io.containerd.runsc.v1"
"""

_BOUNDARY = "//GVISOR//"


def install_script(release: str, sha512: Mapping[str, str]) -> str:
    """The node's install script; ``sha512``: Kubernetes architecture -> the pinned SHA-512 of its tarball."""
    cases = "\n".join(f"  {UNAME[arch]}) ARCH={UNAME[arch]} SHA512={digest} ;;" for arch, digest in sha512.items())
    replacements = {
        "__CASES__": cases,
        "__RELEASES__": RELEASES,
        "__RELEASE__": release,
        "__TARBALL__": TARBALL,
        "__BINARIES__": " ".join(BINARIES),
        "__SIDECARS__": SIDECARS,
    }
    script = _INSTALL
    for token, value in replacements.items():
        script = script.replace(token, value)
    return script


def node_config() -> str:
    return userdata.containerd_node_config(_CONTAINERD.replace("__HANDLER__", HANDLER))


def gvisor_userdata(release: str, sha512: Mapping[str, str]) -> str:
    """MIME multipart user data: the containerd runtime entry and the install script."""
    return userdata.multipart(
        [(userdata.NODECONFIG, node_config()), (userdata.SHELL, install_script(release, sha512))], _BOUNDARY
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
