"""Analyze and AnalyzeStack of pulumi-policy 1.21, with the per-request work done once.

Installed by sdk_speedups on the SDK version they were written against (see ``SDK_VERSION``).
They follow ``_PolicyAnalyzerServicer.Analyze``/``AnalyzeStack`` statement by statement
(same policies, order, enforcement levels, diagnostics, not-applicable entries, awaitable
validators) except that:

* Analyze decodes the properties and builds the resource options and provider once per
  request instead of once per policy (the SDK speedups already share these objects); it
  skips a policy whose declared resource types (``common.applies_to``) exclude the
  resource, as its validator would return at once, and configures the runtime settings
  (which only policies can see) just before the first policy runs;
* AnalyzeStack builds the stack's PolicyResources once and hands every stack policy its
  own list of the same (read-only) PolicyResource objects, instead of a new set per policy;
* the runtime settings read the PULUMI_* environment once (the CLI sets it when it starts
  the pack); a fresh ``pulumi.runtime.Settings`` is still configured on every call, since
  every gRPC call runs in a fresh ``contextvars`` context.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from inspect import isawaitable
from types import ModuleType
from typing import Any

SDK_VERSION = "1.21."  # the pulumi-policy versions these handlers mirror


def build(sdk: ModuleType) -> dict[str, Callable[..., Any]]:
    """The replacement methods of ``sdk._PolicyAnalyzerServicer``, by name."""
    proto, level = sdk.proto, sdk.EnforcementLevel
    resource_policy, stack_policy = sdk.ResourceValidationPolicy, sdk.StackValidationPolicy
    unknown_value_error, not_applicable_error = sdk.UnknownValueError, sdk._NotApplicableError
    runtime = sdk.pulumi.runtime

    def decode(properties: Any) -> Any:
        """The SDK's decoding chain (lazy with the SDK speedups)."""
        return sdk.unknown_checking_proxy(sdk.deserialize_properties(sdk.json_format.MessageToDict(properties)))

    def run_validation(self: Any, policy: Any, args: Any, report_violation: Any, response: Any) -> None:
        try:
            result = policy.validate(args, report_violation)
            if result is not None and isawaitable(result):
                loop = asyncio.new_event_loop()
                task = asyncio.Task(result, loop=loop)
                loop.run_until_complete(task)
                loop.close()
        except unknown_value_error as e:
            name, version = (
                self._PolicyAnalyzerServicer__policy_pack_name,
                self._PolicyAnalyzerServicer__policy_pack_version,
            )
            response.diagnostics.append(
                proto.AnalyzeDiagnostic(
                    policyName=policy.name,
                    policyPackName=name,
                    policyPackVersion=version,
                    message=f"can't run policy '{policy.name}' from policy pack '{name}@v{version}' during preview: {e.message}",
                    urn="",
                    description=policy.description,
                    enforcementLevel=self._map_enforcement_level(level.ADVISORY),
                )
            )
        except not_applicable_error as e:
            response.not_applicable.append(proto.PolicyNotApplicable(policy_name=policy.name, reason=e.reason or ""))

    def analyze(self: Any, request: Any, _context: Any) -> Any:
        response = proto.AnalyzeResponse()
        resource_type = request.type
        shared: tuple[Any, ...] | None = None  # type, props, urn, name, options, provider
        for policy in self._PolicyAnalyzerServicer__policies:
            enforcement_level = self._get_enforcement_level(policy)
            if enforcement_level == level.DISABLED or not isinstance(policy, resource_policy):
                continue
            if not policy.has_validation():
                reason = "Policy does not implement validate"
                response.not_applicable.append(proto.PolicyNotApplicable(policy_name=policy.name, reason=reason))
                continue
            applies = getattr(policy, "applies_to", None)  # see common.applies_to
            if applies is not None and not applies(resource_type):
                continue  # its validator would return at once
            if enforcement_level == level.REMEDIATE:
                enforcement_level = level.MANDATORY
            report_violation = self._create_report_violation(
                response, policy.name, policy.description, enforcement_level, policy.severity
            )
            if shared is None:
                # The settings live in this call's contextvars context: only a policy sees them.
                self._configure_runtime_settings()
                options, provider = self._get_resource_options(request), self._get_provider_resource(request)
                shared = (resource_type, decode(request.properties), request.urn, request.name, options, provider)
            config = self._get_policy_config(policy.name)
            args = sdk.ResourceValidationArgs(*shared, config, self._PolicyAnalyzerServicer__stack_tags)
            run_validation(self, policy, args, report_violation, response)
        return response

    def stack_resources(self: Any, request: Any) -> list[Any]:
        intermediates = []
        for r in request.resources:
            options, provider = self._get_resource_options(r), self._get_provider_resource(r)
            resource = sdk.PolicyResource(r.type, decode(r.properties), r.urn, r.name, options, provider, None, [], {})
            property_dependencies = {k: list(v.urns) for k, v in r.propertyDependencies.items()}
            intermediates.append((resource, r.parent, list(r.dependencies), property_dependencies))
        by_urn = {resource.urn: resource for resource, _, _, _ in intermediates}
        for resource, parent, dependencies, property_dependencies in intermediates:
            if parent is not None and parent in by_urn:
                resource.parent = by_urn[parent]
            resource.dependencies.extend(by_urn[d] for d in dependencies if d in by_urn)
            for k, urns in property_dependencies.items():
                resource.property_dependencies[k] = [by_urn[d] for d in urns if d in by_urn]
        return [resource for resource, _, _, _ in intermediates]

    def analyze_stack(self: Any, request: Any, _context: Any) -> Any:
        self._configure_runtime_settings()
        response = proto.AnalyzeResponse()
        resources: list[Any] | None = None
        for policy in self._PolicyAnalyzerServicer__policies:
            enforcement_level = self._get_enforcement_level(policy)
            if enforcement_level == level.DISABLED or not isinstance(policy, stack_policy):
                continue
            if enforcement_level == level.REMEDIATE:
                enforcement_level = level.MANDATORY
            report_violation = self._create_report_violation(
                response, policy.name, policy.description, enforcement_level, policy.severity
            )
            if resources is None:
                resources = stack_resources(self, request)
            config = self._get_policy_config(policy.name)
            args = sdk.StackValidationArgs(list(resources), config, self._PolicyAnalyzerServicer__stack_tags)
            run_validation(self, policy, args, report_violation, response)
        return response

    environment: list[tuple[tuple[tuple[str, Any], ...], dict[str, Any] | None]] = []

    def configure_runtime_settings(self: Any) -> None:
        if not environment:
            config = tuple(runtime.get_config_env().items())
            settings: dict[str, Any] | None = None
            if all(key in os.environ for key in ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN")):
                settings = {
                    "project": os.environ["PULUMI_PROJECT"],
                    "stack": os.environ["PULUMI_STACK"],
                    "dry_run": os.environ["PULUMI_DRY_RUN"] == "true",
                }
                if "organization" in sdk.signature(runtime.Settings).parameters:
                    settings["organization"] = os.environ.get("PULUMI_ORGANIZATION", "organization")
            environment.append((config, settings))
        config, settings = environment[0]
        for key, value in config:
            runtime.set_config(key, value)
        if settings is not None:
            runtime.configure(runtime.Settings(**settings))

    return {
        "Analyze": analyze,
        "AnalyzeStack": analyze_stack,
        "_configure_runtime_settings": configure_runtime_settings,
    }
