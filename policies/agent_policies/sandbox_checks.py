"""The sandbox pod-spec checks, listed once (pod_checks.py).

Each is a resource policy of the pack and a rule of ``agent_policies.RULES`` with the admission policy
``agent-platform-sandbox`` as its counterpart; the stack policy ``sandbox-namespace-runtime-class`` runs all of them.
Tested against this list: the admission policy's validation groups (components/admission/sandbox_admission.py
``SANDBOX_VALIDATIONS``), the stack policy (tests/policies/test_sandbox_namespaces.py), the parity corpus
(tests/test_admission.py), the README's rules and configuration tables and example-config.json
(tests/policies/test_pack.py). How to add one: policies/README.md#adding-a-rule.
"""

from __future__ import annotations

from .host_access import HOST_ACCESS
from .pod_checks import PodSpecCheck
from .runtime_class import RUNTIME_CLASS

SANDBOX_CHECKS: tuple[PodSpecCheck, ...] = (RUNTIME_CLASS, HOST_ACCESS)
