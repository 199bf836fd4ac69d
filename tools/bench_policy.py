"""Policy pack throughput through the analyzer gRPC protocol: ``python -m tools.bench_policy --help``.

Sends a generated mixed stack (tools/bench_stack.py) to the pack the way the CLI does and prints resources per
second. Method: policies/README.md#performance; figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tools.analyzer import AnalyzerResource, EncodedPreview, PolicyPackProcess, Violation, encode_preview
from tools.bench_stack import STACK, generate
from tools.policy_fixtures import PACK_DIR, PROJECT


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc); -1 when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


BASELINE_PACK = """\
from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy

PolicyPack(
    name="empty-baseline",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[StackValidationPolicy(name="noop", description="Does nothing.", validate=lambda args, report: None)],
)
"""


def measure(
    pack_dir: Path,
    resources: list[AnalyzerResource],
    encoded: EncodedPreview | None,
    workers: int,
    repeat: int,
) -> tuple[list[float], list[Violation]]:
    """Run the preview flow ``repeat`` times against one pack process; resources/s of each run.

    With ``encoded``, the requests were serialized before the clock starts; without, each
    run encodes them too (client CPU a Python CLI would spend).
    """
    started = time.perf_counter()
    rates: list[float] = []
    first: list[Violation] | None = None
    with PolicyPackProcess(pack_dir, project=PROJECT, stack=STACK) as pack:
        pack.configure()
        print(
            f"{pack.info.name}: start + configure {time.perf_counter() - started:.2f} s, "
            f"{len(pack.info.policies)} policies"
        )
        for run in range(1, repeat + 1):
            timings: dict[str, float] = {}
            server_cpu, client_cpu = process_cpu(pack.pid), time.process_time()
            t0 = time.perf_counter()
            violations = pack.analyze_preview(encoded or resources, workers=workers, timings=timings)
            total = time.perf_counter() - t0
            server_cpu = process_cpu(pack.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            if first is None:
                first = violations
            elif violations != first:
                raise RuntimeError(f"run {run} reported different violations than run 1")
            rates.append(len(resources) / total)
            encoding = f"encode {timings['encode']:.2f} s, " if encoded is None else ""
            print(
                f"  run {run}: {encoding}Analyze x{len(resources)} {timings['analyze']:.2f} s "
                f"({len(resources) / timings['analyze']:,.0f}/s), AnalyzeStack {timings['analyze_stack']:.2f} s, "
                f"total {total:.2f} s -> {rates[-1]:,.0f} resources/s"
            )
            if server_cpu >= 0:
                per = 1e6 / len(resources)
                print(
                    f"         CPU per resource: pack {server_cpu * per:.0f} us, client {client_cpu * per:.0f} us "
                    f"(load average {os.getloadavg()[0]:.1f})"
                )
    return rates, first or []


def profile(resources: list[AnalyzerResource], top: int = 25) -> None:
    """cProfile the unmodified SDK's own Analyzer servicer in-process (no gRPC transport): where the time goes.

    The servicer (pulumi_policy.policy._PolicyAnalyzerServicer, what PolicyPack serves over gRPC) is only
    instantiated and called here; nothing of the SDK is replaced. Prints microseconds per resource for
    Analyze (every resource) and AnalyzeStack (once), then the functions with the most cumulative time.
    """
    import cProfile
    import pstats

    from google.protobuf import json_format
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy
    from pulumi_policy.deserialize import deserialize_properties

    # The servicer PolicyPack serves over gRPC; profiling it in-process needs the class itself.
    from pulumi_policy.policy import _PolicyAnalyzerServicer  # noqa: PLC2701
    from pulumi_policy.proxy import unknown_checking_proxy

    sys.path.insert(0, str(PACK_DIR))
    from agent_policies import POLICY_PACK_NAME, all_policies

    os.environ.update(PULUMI_PROJECT=PROJECT, PULUMI_STACK=STACK, PULUMI_DRY_RUN="true")
    policies = all_policies()
    servicer = _PolicyAnalyzerServicer(POLICY_PACK_NAME, "0.1.0", policies, EnforcementLevel.MANDATORY)
    configure = analyzer_pb2.ConfigureAnalyzerRequest()
    for policy in policies:
        config = configure.policyConfig[policy.name]
        config.enforcementLevel = analyzer_pb2.ADVISORY if policy.name == "kata-clh-no-init-containers" else 1
        schema = policy.config_schema.properties if policy.config_schema else {}
        config.properties.update({key: spec["default"] for key, spec in schema.items() if "default" in spec})
    servicer.Configure(configure, None)
    encoded = encode_preview(resources)
    analyze = [analyzer_pb2.AnalyzeRequest.FromString(r) for r in encoded.analyze]
    stack = analyzer_pb2.AnalyzeStackRequest.FromString(encoded.stack)
    count = len(resources)

    def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        for request in analyze:
            servicer.Analyze(request, None)
        t1 = time.perf_counter()
        servicer.AnalyzeStack(stack, None)
        return 1e6 * (t1 - t0) / count, 1e6 * (time.perf_counter() - t1) / count

    run()  # warm caches
    analyze_us, stack_us = run()
    # The SDK's per-policy decoding of one resource's properties (and its provider's), timed alone.
    t0 = time.perf_counter()
    for request in analyze:
        unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(request.properties)))
        if request.HasField("provider"):
            unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(request.provider.properties)))
    decode_us = 1e6 * (time.perf_counter() - t0) / count
    # The pack's own validators on already decoded properties.
    calls = []
    for request in analyze:
        props = unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(request.properties)))
        for policy in policies:
            if isinstance(policy, ResourceValidationPolicy):
                config = json_format.MessageToDict(configure.policyConfig[policy.name].properties)
                args = ResourceValidationArgs(request.type, props, request.urn, request.name, None, None, config)
                calls.append((policy, args))
    t0 = time.perf_counter()
    for policy, args in calls:
        policy.validate(args, lambda *_: None)  # violations are not collected here
    validators_us = 1e6 * (time.perf_counter() - t0) / count
    resource_policies = sum(isinstance(p, ResourceValidationPolicy) for p in policies)
    stack_policies = len(policies) - resource_policies
    print(
        f"{count} resources, {resource_policies} resource and {stack_policies} stack policies, in-process "
        f"(no gRPC): Analyze {analyze_us:,.0f} us/resource, AnalyzeStack {stack_us:,.0f} us/resource; "
        f"decoding one resource's properties and provider once (MessageToDict + deserialize_properties + "
        f"unknown_checking_proxy) {decode_us:,.0f} us, done {resource_policies}x in Analyze and "
        f"{stack_policies}x in AnalyzeStack; the pack's validators {validators_us:,.0f} us/resource"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def summary(rates: list[float]) -> str:
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    return f"median {statistics.median(rates):,.0f} resources/s (runs: {runs})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="Analyze calls in flight")
    parser.add_argument("--repeat", type=int, default=5, help="runs against the same pack process")
    parser.add_argument("--pack", type=Path, default=PACK_DIR)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also measure an empty pack (one no-op stack policy): the gRPC + SDK floor",
    )
    parser.add_argument(
        "--encode-in-clock",
        action="store_true",
        help="serialize the requests inside each timed run (what a Python CLI would add)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: cProfile the SDK's own servicer in-process (no gRPC) and print where the time goes",
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile(generate(args.count))
        return 0
    if os.getloadavg()[0] > 1.5:
        print(f"warning: load average {os.getloadavg()[0]:.1f}: something else is running, figures will be low")

    resources = generate(args.count)
    kinds = collections.Counter(r.type.rsplit(":", 1)[-1] for r in resources)
    print(f"{len(resources)} resources: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    encoded: EncodedPreview | None = None
    if not args.encode_in_clock:
        t0 = time.perf_counter()
        encoded = encode_preview(resources)
        size = (sum(map(len, encoded.analyze)) + len(encoded.stack)) / 1e6
        print(
            f"client: {len(encoded.analyze):,} AnalyzeRequests + 1 AnalyzeStackRequest ({size:.1f} MB) serialized in "
            f"{time.perf_counter() - t0:.2f} s before the clock starts (the CLI's work, in Go), then sent as bytes"
        )
    gc.freeze()  # the generated stack lives until the end: keep it out of GC passes
    print(f"{args.workers} Analyze calls in flight, then AnalyzeStack once; pulumi-policy unmodified")

    rates, violations = measure(args.pack, resources, encoded, args.workers, args.repeat)
    per_policy = collections.Counter((v.policy, v.enforcement_level) for v in violations)
    print("  violations: " + ", ".join(f"{p} [{lvl}] {n}" for (p, lvl), n in sorted(per_policy.items())))
    if args.baseline:
        with tempfile.TemporaryDirectory() as empty:
            (Path(empty) / "__main__.py").write_text(BASELINE_PACK)
            baseline, _ = measure(Path(empty), resources, encoded, args.workers, args.repeat)
        print(f"empty pack: {summary(baseline)}")
    median = statistics.median(rates)
    print(
        f"throughput: {summary(rates)} = {1e6 / median:,.0f} us of wall time per resource "
        "(Analyze each resource + AnalyzeStack once; the target is make bench-preview's)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
