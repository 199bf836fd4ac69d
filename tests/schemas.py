"""Validate rendered Kubernetes objects: built-in kinds against the Kubernetes OpenAPI schema
(kubernetes-validate), custom resources against the CRDs in ../shared/schemas/crds/."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes_validate import utils as kubernetes_validate
from referencing import Registry, Resource

from components.config import project_schema
from components.config.reader import safe_load
from components.config.versions import CATALOG_FILE, VERSION_KEYS
from tools.render import cached_objects
from tools.render_checks.model import EKS_CRD_SETS

CRD_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas" / "crds"


KUBERNETES_VERSION = f"{project_schema()['kubernetesVersion']['default']}.0"  # the pinned default


def _chart_app_version(key: str) -> str | None:
    """The appVersion of the vendored chart the Pulumi.yaml default of ``key`` renders (None when not vendored)."""
    if not CATALOG_FILE.is_file():
        return None
    entry = json.loads(CATALOG_FILE.read_text())["charts"].get(VERSION_KEYS[key][0]) or {}
    vendored = (entry.get("vendored") or {}).get(str(project_schema()[key]["default"]))
    chart = CATALOG_FILE.parent / vendored["dir"] / "Chart.yaml" if vendored else None
    return safe_load(chart.read_text()).get("appVersion") if chart and chart.is_file() else None


def crd_sets() -> dict[str, str]:
    """Install -> the CRD folder of its pinned version (Pulumi.yaml defaults); kube-prometheus-stack ships the CRDs
    of its prometheus-operator (the vendored chart's appVersion)."""
    schema = project_schema()
    operator = _chart_app_version("kubePrometheusStackVersion")
    return {
        "karpenter": f"karpenter-{schema['karpenterVersion']['default']}",
        "agent-sandbox": f"agent-sandbox-{schema['agentSandboxVersion']['default']}",
        "keda": f"keda-{schema['kedaVersion']['default']}",  # the keda chart ships its own CRDs
        "kube-prometheus-stack": f"prometheus-operator-{operator or 'unknown (chart not vendored)'}",
        **{f"eks ({folder})": folder for folder in EKS_CRD_SETS},  # CRDs EKS itself provides (security groups for pods)
    }


def missing_crd_sets() -> list[str]:
    """The CRD folders of pinned versions that ../shared lacks (reported once, by tests/test_manifests.py)."""
    return [folder for folder in crd_sets().values() if not (CRD_DIR / folder).is_dir()] if CRD_DIR.is_dir() else []


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD shipped in shared/ (empty without it)."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    if not CRD_DIR.is_dir():
        return schemas
    for path in sorted(p for folder in crd_sets().values() for p in (CRD_DIR / folder).glob("*.yaml")):
        for doc in cached_objects(path.read_text()):  # parsed once, then JSON from the render cache
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Validate against the shipped CRD; skip the calling test when shared/ is absent (a clone elsewhere), or when
    the CRDs of a pinned version are missing (one cause, reported once: tests/test_manifests.py).

    Callers validate custom resources last, so the test's other assertions still run.
    """
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD schemas not present at {CRD_DIR}")
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        missing = missing_crd_sets()
        if missing:
            pytest.skip(f"no CRD schema for {obj['kind']}: {', '.join(missing)} not in {CRD_DIR}")
        raise LookupError(f"no CRD schema for {obj['apiVersion']} {obj['kind']} in {CRD_DIR}")
    jsonschema.Draft7Validator(schema).validate(obj)  # no meta-check: upstream CRDs use patterns Draft 7 rejects


def is_custom_resource(obj: dict[str, Any]) -> bool:
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return "." in group and not group.endswith(".k8s.io")


@cache
def _definitions(folder: str) -> Resource[Any]:
    return Resource.from_contents(
        kubernetes_validate.schema_contents(f"{folder}/_definitions.json", KUBERNETES_VERSION)
    )


@cache
def kubernetes_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """The validator ``kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)`` builds (its schema files,
    registry and draft), made once per kind: the library re-reads its definitions file (1.5 MB of JSON) per call."""
    wanted = kubernetes_validate.major_minor(KUBERNETES_VERSION)
    version = [v for v in kubernetes_validate.all_versions() if kubernetes_validate.major_minor(v) <= wanted][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # rbac.authorization.k8s.io/v1 -> rbac-v1
    schema = kubernetes_validate.schema_contents(f"{folder}/{kind.lower()}-{group}.json", KUBERNETES_VERSION)
    registry = _definitions(folder) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_object(obj: dict[str, Any]) -> None:
    """Raise if ``obj`` is not a valid Kubernetes object of its apiVersion/kind."""
    if is_custom_resource(obj):
        validate_custom_resource(obj)
    else:
        kubernetes_validator(obj["apiVersion"], obj["kind"]).validate(obj)
