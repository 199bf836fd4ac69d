"""Drive a Pulumi policy pack over the analyzer gRPC protocol, the way the Pulumi CLI does, without the CLI.

Nothing of the policies is imported: everything goes through the wire protocol, so what it reports is what
``pulumi preview --policy-pack`` would report.
"""

from tools.analyzer.config import load_config_file, reconcile_config
from tools.analyzer.process import AnalyzerClient, PolicyPackError, PolicyPackProcess, PreviewSession, run_pack
from tools.analyzer.wire import (
    ENFORCEMENT_LEVELS,
    SECRET_SIG,
    SIG_KEY,
    UNKNOWN,
    AnalyzerResource,
    EncodedPreview,
    Violation,
    encode_preview,
    secret,
    stack_request,
)

__all__ = [
    "ENFORCEMENT_LEVELS",
    "SECRET_SIG",
    "SIG_KEY",
    "UNKNOWN",
    "AnalyzerClient",
    "AnalyzerResource",
    "EncodedPreview",
    "PolicyPackError",
    "PolicyPackProcess",
    "PreviewSession",
    "Violation",
    "encode_preview",
    "load_config_file",
    "reconcile_config",
    "run_pack",
    "secret",
    "stack_request",
]
