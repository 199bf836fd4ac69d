"""Versions, values, schemas and namespaces: the pinned version is published, every values key changes the output,
every object is schema-valid and lives in a namespace the stack creates."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import jsonschema
import kubernetes_validate

from tools.render import CACHE_DIR, Rendered, catalog, ineffective_values
from tools.render_checks.model import BUILTIN_NAMESPACES, PROGRAM, Finding, Stack


def check_namespaces(stack: Stack) -> Iterator[Finding]:
    created = BUILTIN_NAMESPACES | {o.name for o in stack.objects if o.kind == "Namespace"}
    for obj in stack.objects:
        if obj.namespace and obj.namespace not in created:
            yield Finding(obj.origin, str(obj), f"namespace {obj.namespace} is created by nothing in this stack")


def check_api_services(stack: Stack) -> Iterator[Finding]:
    """One backend per aggregated API: the API server serves an APIService name from one Service only, so a second
    claimant (another install's ``v1beta1.external.metrics.k8s.io``, e.g. prometheus-adapter with external rules
    next to KEDA's metrics server) would take the API from the first: whichever applied last wins."""
    claims: dict[str, list[str]] = {}
    for obj in stack.objects:
        if obj.kind == "APIService":
            service = obj.body.get("spec", {}).get("service") or {}
            claims.setdefault(obj.name, []).append(
                f"{obj.origin} (Service {service.get('namespace', '?')}/{service.get('name', '?')})"
            )
    for name, claimants in claims.items():
        if len(claimants) > 1:
            yield Finding(
                claimants[1].split(" (")[0],
                f"APIService {name}",
                f"is claimed by {len(claimants)} installs: {'; '.join(claimants)}; only one can serve it: "
                "switch the other off",
            )


def check_schemas(stack: Stack, kube_version: str) -> Iterator[Finding]:
    """Built-in kinds of the installs against the Kubernetes schemas (kubernetes-validate reloads its schema
    files per call, about 35 ms: objects once found valid are remembered by content hash), custom resources
    against the CRDs the stack installs."""
    known = _valid_objects(kube_version)
    for obj in stack.objects:
        if obj.kind == "CustomResourceDefinition" and obj.origin != PROGRAM:
            continue  # upstream's generated CRDs: large, and validated by their own projects
        api_version = obj.body.get("apiVersion", "")
        group = api_version.split("/")[0] if "/" in api_version else ""
        custom = "." in group and not group.endswith(".k8s.io")
        try:
            if custom:
                crd = stack.crds.get((api_version, obj.kind))
                if crd is None:
                    yield Finding(
                        obj.origin, str(obj), f"no install in this stack provides the CRD of {api_version} {obj.kind}"
                    )
                    continue
                error = jsonschema.exceptions.best_match(crd["validator"].iter_errors(dict(obj.body)))
                if error is not None:
                    raise error
            elif obj.origin != PROGRAM:  # the program's own built-in objects: tests/test_manifests.py, every stack
                digest = hashlib.sha256(json.dumps(obj.body, sort_keys=True, default=str).encode()).hexdigest()
                if digest not in known:
                    kubernetes_validate.validate(dict(obj.body), f"{kube_version}.0", strict=True)
                    known.add(digest)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            where = "/".join(str(p) for p in getattr(error, "absolute_path", []) or getattr(error, "path", []) or [])
            yield Finding(obj.origin, str(obj), f"schema: {where or '(root)'}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            yield Finding(obj.origin, str(obj), f"{api_version} {obj.kind} does not exist in Kubernetes {kube_version}")
    _save_valid_objects(kube_version, known)


def _valid_cache(kube_version: str) -> Path:
    return CACHE_DIR / f"valid-objects-{kube_version}.json"


def _valid_objects(kube_version: str) -> set[str]:
    path = _valid_cache(kube_version)
    return set(json.loads(path.read_text())) if path.is_file() else set()


def _save_valid_objects(kube_version: str, known: set[str]) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = _valid_cache(kube_version).with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(sorted(known)))
    os.replace(partial, _valid_cache(kube_version))


def check_versions(rendered: Sequence[Rendered]) -> Iterator[Finding]:
    charts = catalog()["charts"]
    for item in rendered:
        install = item.install
        origin = f"{install.kind} {install.name}"
        entry = charts.get(install.chart)
        if entry is None:
            yield Finding(
                origin, install.chart, "no entry in ../shared/charts/catalog.json: cannot check what is published"
            )
            continue
        published = entry.get("known_versions") or []
        if install.version not in published:
            yield Finding(
                origin,
                f"version {install.version}",
                f"is not a published version of {install.chart} (newest published: {published[-1] if published else 'none'})",
            )
        elif item.folder is None:
            yield Finding(
                origin,
                f"version {install.version}",
                "is published but not vendored in ../shared: ask for it to be vendored",
            )
        if item.error:
            yield Finding(origin, "helm template", item.error)


def check_values(rendered: Sequence[Rendered], kube_version: str) -> Iterator[Finding]:
    for item in rendered:
        for path, known in ineffective_values(item, kube_version):
            why = "the chart does not know this key" if known is False else "it equals the chart default or is ignored"
            yield Finding(
                f"helm {item.install.name}",
                f"values.{path}",
                f"changes nothing in the rendered output ({why}); remove or fix it",
            )
