"""Every image the program sets is pinned to a tag (or digest) with evidence of publication, the same everywhere.

Places: the image config keys (Pulumi.yaml defaults and each stack's overrides), the program's own Kubernetes
objects (what build/<stack>/manifests holds), and the images the rendered charts run because the program set them
in their values. The evidence is ../shared/images/catalog.json (tags and, where seen, digests); a tag it does not
list is unverified. Tags that the publisher rebuilds (../shared/design.md section 6) are pinned by digest where the
catalog records one. Skipped, with the reason, without ../shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from components.config import decode_raw, project_schema
from tests.configs import default
from tests.conftest import program_result, rendered_installs
from tools.program import stack_config
from tools.render import SHARED
from tools.render_checks import normalize_image
from tools.render_checks.pods import value_strings

CATALOG = SHARED / "images" / "catalog.json"
GVISOR = "gvisor release (binary, storage.googleapis.com/gvisor/releases/release/<ver>)"
# design.md section 6 (December 2026): these publishers rebuild their tags weekly.
REBUILT = frozenset({"docker.io/nginxinc/nginx-unprivileged", "docker.io/alpine/k8s", "docker.io/ubuntu/squid"})
STACKS = ("dev", "prod")  # staging sets no image key: its images are dev's

pytestmark = pytest.mark.skipif(not CATALOG.is_file(), reason=f"{CATALOG} is absent (the image catalog)")


@cache
def catalog() -> dict[str, Any]:
    return json.loads(CATALOG.read_text())["images"]


def parts(image: str) -> tuple[str, str, str]:
    """``repo:tag@sha256:d`` -> (repository with registry, tag, digest); missing parts are ""."""
    full = normalize_image(image)
    name, _, digest = full.partition("@")
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    return repository, tag, digest


def containers(value: Any) -> Iterator[dict[str, Any]]:
    """Every container of every pod spec or template inside ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("containers", "initContainers") and isinstance(item, list):
                yield from (c for c in item if isinstance(c, dict) and "image" in c)
            else:
                yield from containers(item)
    elif isinstance(value, list):
        for item in value:
            yield from containers(item)


def image_keys() -> list[str]:
    return sorted(key for key in project_schema() if key.endswith("Image"))


def pins(stack: str) -> list[tuple[str, str]]:
    """(where, image) for every image ``stack`` sets."""
    config, _ = stack_config(stack)
    found = [(f"config agent-platform:{k}", decode_raw(k, config[f"agent-platform:{k}"])) for k in image_keys()]
    found = [(where, image) for where, image in found if image]  # an unset optional key (vllmImage) pins nothing
    result = program_result(stack)
    for r in result.registrations:
        if r.type.startswith("kubernetes:") and r.type != "kubernetes:helm.sh/v3:Release":
            found += [(f"{r.type} {r.name}", c["image"]) for c in containers(r.inputs)]
    for rendered in rendered_installs(stack):
        explicit = set(value_strings(rendered.install.values))
        for obj in rendered.objects:
            for c in containers(obj):
                repository = c["image"].partition("@")[0].rpartition(":")[0]
                if c["image"] in explicit or repository in explicit:
                    found.append(
                        (f"{rendered.install.label} values -> {obj['kind']} {obj['metadata']['name']}", c["image"])
                    )
    return found


@pytest.fixture(scope="module", params=STACKS)
def stack_pins(request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    if not (SHARED / "charts").is_dir():
        pytest.skip(f"{SHARED / 'charts'} is absent (the charts to render)")
    tenants = tenant_images(request.param)
    return [(where, image) for where, image in pins(request.param) if image not in tenants]


@pytest.mark.parametrize("stack", STACKS)
def test_tenant_images_pin_a_tag_and_a_digest(stack: str) -> None:
    problems = {image: tenant_problem(image) for image in tenant_images(stack) if tenant_problem(image)}
    assert not problems, problems
    assert tenant_problem("example.com/acme/tools:1.0") is not None


def tenant_images(stack: str) -> set[str]:
    """The stack's tenants' own images (MCP servers, ``agents[].mcp.image``): in the tenant's registry, which no
    catalog lists; the check for them is a tag and a digest (``tenant_problem``)."""
    config, _ = stack_config(stack)
    tenants = decode_raw("tenants", config.get("agent-platform:tenants", [])) or []
    return {a["mcp"]["image"] for t in tenants for a in t.get("agents", []) if isinstance(a.get("mcp"), dict)}


def tenant_problem(image: str) -> str | None:
    _, tag, digest = parts(image)
    return None if tag and digest else "a tenant's image pins a tag and a digest (repo:tag@sha256:...)"


def problem(image: str) -> str | None:
    repository, tag, digest = parts(image)
    entry = catalog().get(repository)
    if entry is None:
        return f"{repository} is not in the image catalog: ask for it with evidence of its published tags"
    if not tag:
        return "pins no tag: name the release next to the digest (repo:tag@sha256:...)"
    if tag not in entry.get("published", []):
        return f"tag {tag} has no evidence of publication (catalog: {', '.join(entry.get('published', []))})"
    recorded = entry.get("digests", {}).get(tag)
    if digest and digest != recorded:
        return f"digest {digest} is not the one recorded for {tag} ({recorded or 'none recorded'})"
    if repository in REBUILT and recorded and not digest:
        return f"{repository} rebuilds its tags: pin {tag}@{recorded}"
    return None


def test_every_image_is_pinned_and_published(stack_pins: list[tuple[str, str]]) -> None:
    problems = {f"{where}: {image}": problem(image) for where, image in stack_pins if problem(image)}
    assert not problems, json.dumps(problems, indent=1)


def test_no_two_places_pin_one_image_differently(stack_pins: list[tuple[str, str]]) -> None:
    by_repository: dict[str, dict[str, list[str]]] = {}
    for where, image in stack_pins:
        repository, tag, digest = parts(image)
        by_repository.setdefault(repository, {}).setdefault(f"{tag}@{digest}", []).append(where)
    different = {repo: pinned for repo, pinned in by_repository.items() if len(pinned) > 1}
    assert not different, json.dumps(different, indent=1)


def test_the_gvisor_release_is_published_with_the_tarball_layout() -> None:
    entry = catalog()[GVISOR]
    assert default("gvisorRelease") in entry["published"]
    assert "20260817.0 is the last release with loose" in entry["notes"]
    assert default("gvisorRelease") > "20260817.0"  # tarball layout (components/runtime/gvisor.py)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("docker.io/alpine/k8s:1.35.0", "rebuilds its tags"),
        ("docker.io/valkey/valkey:8.1.11", "no evidence of publication"),
        ("docker.io/valkey/valkey:8.1.10-alpine@sha256:" + "0" * 64, "is not the one recorded"),
        ("quay.io/example/unknown:1.0", "not in the image catalog"),
        ("docker.io/curlimages/curl:8.23.0", None),
    ],
)
def test_the_check_tells_each_kind_of_bad_pin(image: str, expected: str | None) -> None:
    found = problem(image)
    assert (found is None) if expected is None else (found is not None and expected in found), found
