"""A tenant's identity across renames: aliases that keep its resources' state when its name changes.

Resources are named after the tenant (``<tenant>-ns``, ``<tenant>-<agent>-data``...), so a rename changes their
URNs; each gets an alias per former name, under its parent's former URN, and the engine updates them in place
instead of deleting and re-creating them. Details: docs/tenants.md#rename-a-tenant.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.config import TenantConfig


def former_aliases(prefix: str, tenant: TenantConfig, suffix: str = "") -> list[pulumi.Input[str] | pulumi.Alias]:
    """Aliases of a resource named ``<prefix><tenant><suffix>`` (same parent), one per former name of the tenant."""
    return [pulumi.Alias(name=f"{prefix}{old}{suffix}") for old in tenant.former_names]


def _renamed(name: str, new: str, old: str) -> str | None:
    """``name`` with the prefix ``new`` swapped for ``old``; None when it is not one of ``new``'s names."""
    if name == new or name.startswith(f"{new}-"):
        return old + name[len(new) :]
    return None


def renamed(new: str, former: Sequence[str]) -> pulumi.ResourceOptions:
    """Options for a component named ``new`` that was named each of ``former`` before: a transformation (inherited
    by every resource under it) gives each resource named ``<new>...`` the alias ``<old>...`` under its parent's
    former URN (the type chain is the same; only the names' prefix changes)."""
    if not former:
        return pulumi.ResourceOptions()

    def parent_urn(parent: pulumi.Resource, old: str) -> pulumi.Output[str]:
        def swap(urn: str) -> str:
            head, _, name = urn.rpartition("::")
            return f"{head}::{_renamed(name, new, old) or name}"

        return parent.urn.apply(swap)

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if _renamed(args.name, new, new) is None:
            return None
        parent = args.opts.parent
        aliases = [
            pulumi.Alias(name=_renamed(args.name, new, old))
            if parent is None
            else pulumi.Alias(name=_renamed(args.name, new, old), parent=parent_urn(parent, old))
            for old in former
        ]
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(aliases=aliases))
        return pulumi.ResourceTransformationResult(args.props, opts)

    return pulumi.ResourceOptions(transformations=[transform])
