"""Scale benchmark: ``python -m tools.bench_preview`` (``make bench-preview``).

Offline preview of the dev stack (program under the mock engine plus the policy pack through
gRPC) with 10, 100 and 500 generated tenants. Each size runs in its own process so wall time and
peak memory (largest RSS among the process and its children, the policy pack included) are its own.
Target: 500 tenants in under 60 s on a 2-core machine, time growing no worse than linearly.
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
from pathlib import Path
from typing import Any

from tools.program import ROOT

SIZES = (10, 100, 500)
TARGET_SECONDS = 60.0


def generated_tenants(count: int) -> list[dict[str, Any]]:
    """``count`` tenants alternating Hermes and OpenClaw agents, every fifth with a warm pool."""
    tenants = []
    for i in range(count):
        agent: dict[str, Any] = {"name": "agent", "type": "hermes" if i % 2 == 0 else "openclaw"}
        if i % 5 == 4:
            agent["warmPool"] = 1
        tenants.append({"name": f"t{i:04d}", "agents": [agent], "litellm": {"models": ["claude-sonnet"]}})
    return tenants


def run_one(count: int, out: Path) -> dict[str, Any]:
    from tools.preview import preview

    started = time.monotonic()
    tenants = generated_tenants(count)
    overrides = {"agent-platform:tenants": tenants, "agent-platform:knownTenants": [t["name"] for t in tenants]}
    report = preview("dev", out, overrides=overrides)
    return {
        "tenants": count,
        "resources": len(report.result.registrations),
        "mandatory": sum(v.enforcement_level == "mandatory" for v in report.violations),
        "render_findings": len(report.findings),
        "seconds": round(time.monotonic() - started, 2),
    }


def measure(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tools.bench_preview", "--one", str(count), "--out", tmp]
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
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.out)))
        return 0

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


if __name__ == "__main__":
    sys.exit(main())
