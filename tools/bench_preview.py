"""Scale benchmark: ``python -m tools.bench_preview`` (``make bench-preview``).

Offline preview of the dev stack (program under the mock engine plus the policy pack through
gRPC) with 10, 100 and 500 generated tenants. Each size runs in its own process so wall time and
peak memory (largest RSS among the process and its children, the policy pack included) are its own.
Target: 500 tenants in under 60 s on a 2-core machine, time growing no worse than linearly.

``--split`` (``make bench-preview ARGS=--split``): issue 26's figures, tenants in shard stacks (docs/shards.md): the
platform stack with 10 and with 5,000 tenants in shards (their egress entries read through stack references), one
shard of 500 tenants, and 5,000 tenants as 10 shards of 500, two processes at a time (``--no-fleet`` leaves that run
out). A shard's "preview" excludes the platform run its process makes first for its stack reference (the CLI reads
the platform's outputs instead); its wall time, CPU time and peak memory include it. CPU time (user + system, the
process and its policy pack) is the figure to compare on a shared machine. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tools.program import ROOT, load_stack
from tools.split import shard_exports

SIZES = (10, 100, 500)
TARGET_SECONDS = 60.0
SPLIT_PLATFORM = ((10, 1), (5000, 10))  # tenants in shards, shard stacks
SHARD_SIZES = (500,)
FLEET = (10, 500, 2)  # shards, tenants each, previewed at a time
SHARD_TARGET_SECONDS, FLEET_TARGET_SECONDS = 45.0, 480.0


def generated_tenants(count: int) -> list[dict[str, Any]]:
    """``count`` tenants alternating Hermes and OpenClaw agents, every fifth with a warm pool."""
    tenants = []
    for i in range(count):
        agent: dict[str, Any] = {"name": "agent", "type": "hermes" if i % 2 == 0 else "openclaw"}
        if i % 5 == 4:
            agent["warmPool"] = 1
        tenants.append({"name": f"t{i:04d}", "agents": [agent], "litellm": {"models": ["claude-sonnet"]}})
    return tenants


def shard_reference(tenants: list[dict[str, Any]]) -> dict[str, Any]:
    """What a shard of ``tenants`` exports for the platform, built as the shard program builds it."""
    names = [t["name"] for t in tenants]
    return shard_exports(
        load_stack("dev", {"agent-platform:tenants": tenants, "agent-platform:knownTenants": names}).tenants
    )


def run_platform(moved: int, shards: int, out: Path) -> dict[str, Any]:
    """The dev platform with no tenants of its own and ``moved`` tenants in ``shards`` shard stacks."""
    from tools.preview import preview

    tenants = generated_tenants(moved)
    size = max(1, -(-moved // max(shards, 1)))
    names = [f"organization/tenant-shards/bench-{i}" for i in range(shards)]
    refs = {name: shard_reference(tenants[i * size : (i + 1) * size]) for i, name in enumerate(names)}
    overrides = {"agent-platform:tenants": [], "agent-platform:knownTenants": [], "agent-platform:tenantShards": names}
    started = time.monotonic(), _cpu()
    report = preview("dev", out, overrides=overrides, stack_references=refs)
    return _row(report, moved, started)


def run_shard(count: int, offset: int, out: Path) -> dict[str, Any]:
    """The shard dev-a holding ``count`` generated tenants (names from ``offset``), against the dev-shards platform."""
    from tools.preview import preview
    from tools.split import SHARDS, references

    refs = references(SHARDS, "dev-a")  # the platform run, before the clock starts
    tenants = generated_tenants(count + offset)[offset:]
    names = [t["name"] for t in tenants]
    overrides = {
        "agent-platform:tenants": tenants,
        "agent-platform:tenantSecrets": {},
        "agent-platform:knownTenants": names,
    }
    started = time.monotonic(), _cpu()
    report = preview("dev-a", out, overrides=overrides, root=SHARDS, stack_references=refs)
    return _row(report, count, started)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the policy pack)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _row(report: Any, tenants: int, started: tuple[float, float]) -> dict[str, Any]:
    """The preview's own figures: wall ("seconds") and CPU ("preview_cpu_seconds") from ``started``."""
    return {
        "tenants": tenants,
        "resources": len(report.result.registrations),
        "mandatory": sum(v.enforcement_level == "mandatory" for v in report.violations),
        "render_findings": len(report.findings),
        "seconds": round(time.monotonic() - started[0], 2),
        "preview_cpu_seconds": round(_cpu() - started[1], 2),
    }


def run_one(count: int, out: Path) -> dict[str, Any]:
    from tools.preview import preview

    started = time.monotonic(), _cpu()
    tenants = generated_tenants(count)
    overrides = {"agent-platform:tenants": tenants, "agent-platform:knownTenants": [t["name"] for t in tenants]}
    report = preview("dev", out, overrides=overrides)
    return _row(report, count, started)


def measure(count: int, *mode: str) -> dict[str, Any]:
    """One preview in its own process: ``--one N`` (single stack), ``--platform N SHARDS``, ``--shard N OFFSET``."""
    with tempfile.TemporaryDirectory() as tmp:
        flag, *extra = mode or ("--one",)
        cmd = [sys.executable, "-m", "tools.bench_preview", flag, str(count), *extra, "--out", tmp]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"preview with {count} tenants failed (exit {proc.returncode})")
    row = json.loads(stdout.strip().splitlines()[-1])
    row["wall_seconds"] = round(wall, 2)
    row["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)  # the process and its children (the pack)
    row["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)  # Linux reports KiB
    print(f"  {' '.join(cmd[3:-2])}: {json.dumps(row)}", file=sys.stderr, flush=True)  # progress, one line each
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--platform", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--split", action="store_true", help="platform and shard previews (docs/shards.md)")
    parser.add_argument("--no-fleet", action="store_true", help="with --split: without the 10 shards two at a time")
    args, rest = parser.parse_known_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.out)))
        return 0
    if args.platform is not None:
        print(json.dumps(run_platform(args.platform, int(rest[0]), args.out)))
        return 0
    if args.shard is not None:
        print(json.dumps(run_shard(args.shard, int(rest[0]), args.out)))
        return 0
    if args.split:
        return split_benchmark(fleet=not args.no_fleet)

    rows = [measure(n) for n in args.sizes]
    print(
        f"{'tenants':>8} {'resources':>10} {'wall s':>8} {'preview s':>10} {'cpu s':>8} {'preview cpu':>11} "
        f"{'peak MiB':>9} {'mandatory':>10}"
    )
    for r in rows:
        print(
            f"{r['tenants']:>8} {r['resources']:>10} {r['wall_seconds']:>8} {r['seconds']:>10} {r['cpu_seconds']:>8} "
            f"{r['preview_cpu_seconds']:>11} "
            f"{r['peak_rss_mib']:>9} {r['mandatory']:>10}"
        )
    ok = True
    if len(rows) >= 3:
        # Marginal cost per tenant: the large step must not cost more per tenant than the small one
        # (20 % tolerance for noise); start-up cost is excluded by taking differences.
        small = (rows[1]["wall_seconds"] - rows[0]["wall_seconds"]) / (rows[1]["tenants"] - rows[0]["tenants"])
        large = (rows[2]["wall_seconds"] - rows[1]["wall_seconds"]) / (rows[2]["tenants"] - rows[1]["tenants"])
        linear = large <= small * 1.2 + 0.002
        ok &= linear
        print(
            f"marginal s/tenant: {small:.4f} ({rows[0]['tenants']}->{rows[1]['tenants']}), "
            f"{large:.4f} ({rows[1]['tenants']}->{rows[2]['tenants']}): {'linear' if linear else 'SUPERLINEAR'}"
        )
    largest = rows[-1]
    within = largest["wall_seconds"] < TARGET_SECONDS
    ok &= within and all(r["mandatory"] == 0 for r in rows)
    print(
        f"{largest['tenants']} tenants in {largest['wall_seconds']} s (target < {TARGET_SECONDS:.0f} s): "
        f"{'ok' if within else 'TOO SLOW'}"
    )
    return 0 if ok else 1


def split_benchmark(fleet: bool = True) -> int:
    """The platform's preview with 10 and 5,000 tenants in shards; one shard of 500; 10 x 500, two at a time."""
    rows = [(f"platform, {n} tenants in {k} shards", measure(n, "--platform", str(k))) for n, k in SPLIT_PLATFORM]
    rows += [(f"one shard of {n}", measure(n, "--shard", "0")) for n in SHARD_SIZES]
    fleet_wall = None
    if fleet:
        shards, size, at_once = FLEET
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            runs = list(pool.map(lambda i: measure(size, "--shard", str(i * size)), range(shards)))
        fleet_wall = round(time.monotonic() - started, 1)
        rows += [(f"fleet shard {i} of {size}", row) for i, row in enumerate(runs)]
    print(
        f"{'run':<36} {'resources':>10} {'wall s':>8} {'preview s':>10} {'cpu s':>8} {'preview cpu':>11} "
        f"{'peak MiB':>9} {'mandatory':>10}"
    )
    for name, r in rows:
        print(
            f"{name:<36} {r['resources']:>10} {r['wall_seconds']:>8} {r['seconds']:>10} {r['cpu_seconds']:>8} "
            f"{r['preview_cpu_seconds']:>11} "
            f"{r['peak_rss_mib']:>9} {r['mandatory']:>10}"
        )
    platform = [r["seconds"] for name, r in rows if name.startswith("platform")]
    largest_shard = max(r["seconds"] for name, r in rows if name.startswith("one shard"))
    peak = max(r["peak_rss_mib"] for _, r in rows)
    fleet_line = (
        f"{FLEET[0] * FLEET[1]} tenants as {FLEET[0]} shards, {FLEET[2]} at a time: {fleet_wall} s wall "
        f"(target < {FLEET_TARGET_SECONDS:.0f} s); "
        if fleet_wall is not None
        else ""
    )
    print(
        f"platform preview {min(platform)}-{max(platform)} s with {SPLIT_PLATFORM[0][0]}-{SPLIT_PLATFORM[-1][0]} "
        f"tenants in shards; one {SHARD_SIZES[-1]}-tenant shard {largest_shard} s (target < "
        f"{SHARD_TARGET_SECONDS:.0f} s); {fleet_line}peak {peak} MiB per process (target < 1024)"
    )
    ok = largest_shard < SHARD_TARGET_SECONDS and peak < 1024
    ok &= fleet_wall is None or fleet_wall < FLEET_TARGET_SECONDS
    return 0 if ok and all(r["mandatory"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
