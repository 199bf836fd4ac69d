"""A check of a sandbox pod spec, declared once and run by both of the pack's ways of finding sandboxes.

Each check becomes a resource policy of its own (workloads the resource itself marks as a sandbox: its label, a
configured namespace or kind) and is run by the stack policy ``sandbox-namespace-runtime-class`` on workloads only
the stack can tell are sandboxes (sandbox_namespaces.py iterates ``sandbox_checks.SANDBOX_CHECKS``). The settings
that say what is a sandbox (``SANDBOX_SCOPE``) are the same keys in every such policy's schema.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .common import SANDBOX_LABEL, Unknowns, applies_to, schema, string_list_property
from .workloads import PodTemplate, is_workload, sandbox_template

Report = Callable[[str], None]

# What makes a workload a sandbox beyond its label: one declaration for every policy that judges sandboxes.
SANDBOX_SCOPE: dict[str, dict[str, Any]] = {
    "sandboxNamespaces": string_list_property(
        f"Namespaces whose workloads are sandboxes even without the {SANDBOX_LABEL} label.", ()
    ),
    "sandboxKinds": string_list_property(
        "Workload kinds (e.g. Sandbox, SandboxTemplate) that are always treated as sandboxes.", ()
    ),
}


@dataclass(frozen=True)
class PodSpecCheck:
    """One rule on sandbox pod specs: ``run(template, config, report, unknowns)`` reports each violation (a patch is
    judged on the fields it sets) and records unknowns; ``config`` holds the schema of the keys it reads."""

    rule: str
    description: str
    run: Callable[[PodTemplate, Mapping[str, Any], Report, Unknowns], None]
    config: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @functools.cached_property
    def policy(self) -> ResourceValidationPolicy:
        """Its resource policy, built once: sandboxes the resource itself marks."""

        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            template = sandbox_template(args)
            if template is None:
                return
            unknowns = Unknowns()
            self.run(template, args.get_config(), report_violation, unknowns)
            unknowns.finish()

        policy = ResourceValidationPolicy(
            name=self.rule,
            description=self.description,
            validate=validate,
            config_schema=schema({**self.config, **SANDBOX_SCOPE}),
        )
        applies_to(policy, is_workload)
        return policy
