"""IMDS hop limit 1 on every node (issue 14): no pod reaches a node role's credentials, and the core workloads
that used to read the region (and the VPC id) from IMDS get them from the program instead. Checked on the
charts as Helm renders them (skipped where ../shared is absent)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import program_result
from tools.preview import kubernetes_version
from tools.program import ProgramResult
from tools.render import SHARED, installs, render

REGIONS = {"dev": "us-east-1", "staging": "us-west-2", "prod": "us-east-1"}
charts = pytest.mark.skipif(not (SHARED / "charts").is_dir(), reason=f"vendored charts not present at {SHARED}")


def hop_limits(result: ProgramResult) -> dict[str, int]:
    """Every launch template's and EC2NodeClass' IMDS PUT response hop limit, by resource name."""
    limits = {
        t.name: t.inputs["metadataOptions"]["httpPutResponseHopLimit"]
        for t in result.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    }
    for r in result.registrations:
        if r.inputs.get("kind") == "EC2NodeClass":
            limits[r.name] = r.inputs["spec"]["metadataOptions"]["httpPutResponseHopLimit"]
    return limits


@pytest.mark.parametrize("stack", list(REGIONS))
def test_every_node_has_imds_hop_limit_1_and_requires_tokens(stack: str) -> None:
    result = program_result(stack)
    limits = hop_limits(result)
    assert "cluster-core-lt" in limits, limits
    assert any("nodeclass" in n for n in limits), limits
    assert set(limits.values()) == {1}, limits
    for template in result.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert template.inputs["metadataOptions"]["httpTokens"] == "required"


def rendered_workload(result: ProgramResult, release: str, kind: str = "Deployment") -> dict[str, Any]:
    (install,) = [i for i in installs(result) if i.name == release]
    out = render(install, kubernetes_version(result))
    assert not out.error, out.error
    (workload,) = [o for o in out.objects if o["kind"] == kind]
    return workload


@charts
@pytest.mark.parametrize("stack", list(REGIONS))
def test_karpenter_gets_its_region_from_the_program(stack: str) -> None:
    """Karpenter's operator asks IMDS for the region only when the AWS SDK has none (AWS_REGION)."""
    deployment = rendered_workload(program_result(stack), "karpenter")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AWS_REGION"] == REGIONS[stack]
    assert env["CLUSTER_ENDPOINT"]
    assert env["CLUSTER_NAME"] == f"agents-{stack}"


@charts
@pytest.mark.parametrize("stack", list(REGIONS))
def test_lb_controller_gets_region_and_vpc_from_the_program(stack: str) -> None:
    result = program_result(stack)
    deployment = rendered_workload(result, "aws-load-balancer-controller")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert f"--aws-region={REGIONS[stack]}" in args
    assert f"--aws-vpc-id={result.outputs['vpcId']}" in args
