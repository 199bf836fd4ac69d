"""Validate rendered Kubernetes objects: built-in kinds against the Kubernetes OpenAPI schema
(kubernetes-validate), custom resources against the CRDs in ../shared/schemas/crds/."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from components.config import project_schema
from tools.render import parse_objects

CRD_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas" / "crds"


KUBERNETES_VERSION = f"{project_schema()['kubernetesVersion']['default']}.0"  # the pinned default


def crd_sets() -> tuple[str, ...]:
    """The CRD folders of the pinned versions (Pulumi.yaml defaults); kube-prometheus-stack 88.5.3 ships
    prometheus-operator v0.93.1's CRDs, the keda chart its own."""
    schema = project_schema()
    karpenter, sandbox = schema["karpenterVersion"]["default"], schema["agentSandboxVersion"]["default"]
    keda = schema["kedaVersion"]["default"]
    return (f"karpenter-{karpenter}", f"agent-sandbox-{sandbox}", "prometheus-operator-v0.93.1", f"keda-{keda}")


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD shipped in shared/ (empty without it)."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    if not CRD_DIR.is_dir():
        return schemas
    for path in sorted(p for folder in crd_sets() for p in (CRD_DIR / folder).glob("*.yaml")):
        for doc in parse_objects(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Validate against the shipped CRD; skip the calling test when shared/ is absent (a clone elsewhere).

    Callers validate custom resources last, so the test's other assertions still run.
    """
    if not crd_schemas():
        pytest.skip(f"CRD schemas not present at {CRD_DIR}")
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        raise LookupError(f"no CRD schema for {obj['apiVersion']} {obj['kind']} in {CRD_DIR}")
    jsonschema.Draft7Validator(schema).validate(obj)  # no meta-check: upstream CRDs use patterns Draft 7 rejects


def is_custom_resource(obj: dict[str, Any]) -> bool:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return "." in group and not group.endswith(".k8s.io")


def validate_object(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` is not a valid Kubernetes object of its apiVersion/kind."""
    if is_custom_resource(obj):
        validate_custom_resource(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
