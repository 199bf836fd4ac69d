"""Write the tables docs derive from declarations: ``python -m tools.docs_tables`` after adding a tenant key.

docs/cluster.md#tenant-keys lists every tenant key as ``TENANT_KEY_SETS`` declares it (type, default, meaning), so a
key is described once, in its declaration; tests/test_config_keys.py fails while the file differs from what this
writes.
"""

from __future__ import annotations

from pathlib import Path

from components.config.tenants import TENANT_KEY_SETS

CLUSTER_DOCS = Path(__file__).resolve().parent.parent / "docs" / "cluster.md"
SECTION = "### Tenant keys"
ROW = "| `tenants[]"  # how each generated row starts


def tenant_key_rows() -> list[str]:
    return [
        f"| `{where}.{key.name}` | {key.kind} | {key.default_doc} | {key.doc} |"
        for where, keys in TENANT_KEY_SETS
        for key in keys
    ]


def with_tenant_keys(text: str) -> str:
    """``text`` (docs/cluster.md) with the rows of its tenant-keys table replaced by the declarations'."""
    head, section = text.split(SECTION, 1)
    lines = section.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith(ROW))
    last = max(i for i, line in enumerate(lines) if line.startswith(ROW))
    rows = [f"{row}\n" for row in tenant_key_rows()]
    return head + SECTION + "".join(lines[:first] + rows + lines[last + 1 :])


def main() -> None:
    text = CLUSTER_DOCS.read_text()
    updated = with_tenant_keys(text)
    CLUSTER_DOCS.write_text(updated)
    print(f"{CLUSTER_DOCS.relative_to(CLUSTER_DOCS.parent.parent)}: {'updated' if updated != text else 'up to date'}")


if __name__ == "__main__":
    main()
