"""Scale benchmark: ``python -m tools.bench_preview`` (``make bench-preview``).

Offline preview of the dev stack (program under the mock engine plus the policy pack through
gRPC) with 10, 100 and 500 generated tenants. Each size runs in its own process so wall time and
peak memory (largest RSS among the process and its children, the policy pack included) are its own.
Target: 500 tenants in under 60 s on a 2-core machine, time growing no worse than linearly.

``--split``: the same tenants in shard stacks (docs/shards.md): the platform stack with 0, 500 and 5,000 tenants
moved to shards (their egress entries read through stack references), one shard of 250 and of 500 tenants, and
5,000 tenants as 10 shards of 500, two processes at a time. A shard's figure excludes the platform run its process
makes first for its stack reference (the CLI reads the platform's outputs instead); its peak memory includes it.
Figures measured with it are kept in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
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
SPLIT_PLATFORM = ((0, 0), (500, 2), (5000, 10))  # tenants moved to shards, shard stacks
SHARD_SIZES = (250, 500)
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
    started = time.monotonic()
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
    started = time.monotonic()
    report = preview("dev-a", out, overrides=overrides, root=SHARDS, stack_references=refs)
    return _row(report, count, started)


def _row(report: Any, tenants: int, started: float) -> dict[str, Any]:
    return {
        "tenants": tenants,
        "resources": len(report.result.registrations),
        "mandatory": sum(v.enforcement_level == "mandatory" for v in report.violations),
        "render_findings": len(report.findings),
        "seconds": round(time.monotonic() - started, 2),
    }


def run_one(count: int, out: Path) -> dict[str, Any]:
    from tools.preview import preview

    started = time.monotonic()
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
        return split_benchmark()

    rows = [measure(n) for n in args.sizes]
    print(f"{'tenants':>8} {'resources':>10} {'wall s':>8} {'preview s':>10} {'peak MiB':>9} {'mandatory':>10}")
    for r in rows:
        print(
            f"{r['tenants']:>8} {r['resources']:>10} {r['wall_seconds']:>8} {r['seconds']:>10} "
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


def split_benchmark() -> int:
    """The platform's preview with 0, 500 and 5,000 tenants in shards; shards of 250 and 500; 10 x 500, 2 at a time."""
    rows = [(f"platform, {n} tenants in {k} shards", measure(n, "--platform", str(k))) for n, k in SPLIT_PLATFORM]
    rows += [(f"one shard of {n}", measure(n, "--shard", "0")) for n in SHARD_SIZES]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        fleet = list(pool.map(lambda i: measure(500, "--shard", str(i * 500)), range(10)))
    fleet_wall = round(time.monotonic() - started, 1)
    rows += [(f"fleet shard {i} of 500", row) for i, row in enumerate(fleet)]
    print(f"{'run':<36} {'resources':>10} {'wall s':>8} {'preview s':>10} {'peak MiB':>9} {'mandatory':>10}")
    for name, r in rows:
        print(
            f"{name:<36} {r['resources']:>10} {r['wall_seconds']:>8} {r['seconds']:>10} {r['peak_rss_mib']:>9} "
            f"{r['mandatory']:>10}"
        )
    platform = [r["seconds"] for name, r in rows if name.startswith("platform")]
    largest_shard = max(r["seconds"] for name, r in rows if name == "one shard of 500")
    peak = max(r["peak_rss_mib"] for _, r in rows)
    print(
        f"platform preview {min(platform)}-{max(platform)} s with 0-5000 tenants in shards; one 500-tenant shard "
        f"{largest_shard} s (target < {SHARD_TARGET_SECONDS:.0f} s); 5000 tenants as 10 shards, 2 at a time: "
        f"{fleet_wall} s wall (target < {FLEET_TARGET_SECONDS:.0f} s); peak {peak} MiB per process (target < 1024)"
    )
    ok = largest_shard < SHARD_TARGET_SECONDS and fleet_wall < FLEET_TARGET_SECONDS and peak < 1024
    return 0 if ok and all(r["mandatory"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
