"""What makes a workload or a Namespace a sandbox, shared by the sandbox policies and the egress rule.

A workload is a sandbox by its pod template label, a configured namespace or a configured kind
(``workloads.is_sandbox``); a Namespace of the stack is a sandbox namespace by its label.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pulumi_policy import PolicyResource, ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .common import SANDBOX_LABEL, Unknowns, config_strings, dig, get, is_true
from .workloads import PodTemplate, is_sandbox, k8s_group_kind, workload_template


def sandbox_template(args: ResourceValidationArgs) -> PodTemplate | None:
    """The pod template when the resource is a sandbox workload (resource-level detection)."""
    template = workload_template(args)
    if template is None:
        return None
    config = args.get_config()
    namespaces = config_strings(config, "sandboxNamespaces", ())
    kinds = config_strings(config, "sandboxKinds", ())
    return template if is_sandbox(template, namespaces, kinds, args.provider) else None


def sandbox_namespace_resources(resources: Iterable[PolicyResource], unknowns: Unknowns) -> Iterator[PolicyResource]:
    """The Namespaces of the stack labelled as sandbox namespaces; an unknown label is recorded and skipped."""
    for resource in resources:
        if k8s_group_kind(resource.resource_type) != ("core", "Namespace"):
            continue
        try:
            if not is_true(get(dig(resource.props, "metadata", "labels"), SANDBOX_LABEL)):
                continue
        except UnknownValueError as error:
            unknowns.record(error)
            continue
        yield resource
