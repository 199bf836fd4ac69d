"""The exported stack outputs match docs/outputs.md, and a consumer project can read them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import program_result
from tools.program import MASK, ROOT, run_program

CONTRACT = ROOT / "docs" / "outputs.md"
CONSUMER = ROOT / "examples" / "consumer"


def contract() -> tuple[str, dict[str, tuple[str, bool]]]:
    text = CONTRACT.read_text()
    version = re.search(r"^outputsVersion: \*\*(\d+\.\d+)\*\*$", text, re.M)
    assert version, "docs/outputs.md must state outputsVersion"
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+?) \| (yes|no) \|", text, re.M)
    return version.group(1), {name: (kind, secret == "yes") for name, kind, secret in rows}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_exported_names_match_the_contract(stack: str) -> None:
    version, names = contract()
    result = program_result(stack)
    assert set(result.outputs) == set(names), "update docs/outputs.md and outputsVersion"
    assert result.outputs["outputsVersion"] == version
    assert {n for n, (_, secret) in names.items() if secret} == set(result.secret_outputs)


def test_output_types_match_the_contract(dev) -> None:  # noqa: ANN001
    _, names = contract()
    python_types = {"string": str, "list of strings": list, "map of string to string": dict, "object": dict}
    for name, (kind, secret) in names.items():
        value = dev.outputs[name]
        if secret:
            assert value == MASK
        else:
            assert isinstance(value, python_types[kind]), f"{name}: {value!r} is not a {kind}"
    assert all(isinstance(v, str) for v in dev.outputs["privateSubnetIds"] + dev.outputs["runtimeClasses"])
    assert dev.outputs["litellmEndpoint"].startswith("http://internal-")


def test_consumer_example_reads_the_outputs_through_a_stack_reference(dev) -> None:  # noqa: ANN001
    reference = {"outputs": dict(dev.outputs), "secretOutputNames": sorted(dev.secret_outputs)}
    result = run_program("dev", root=CONSUMER, stack_references={"my-org/agent-platform/dev": reference})
    config_map = result.named("kubernetes:core/v1:ConfigMap", "gateway-settings").plain
    assert config_map["metadata"]["namespace"] == dev.outputs["tenantNamespaces"]["acme"]
    assert config_map["data"]["LITELLM_BASE_URL"] == dev.outputs["litellmEndpoint"]
    provider = result.of_type("pulumi:providers:kubernetes")[0]
    assert provider.inputs["kubeconfig"] == MASK  # the secret stays secret across the reference
    assert result.outputs["platformOutputsVersion"] == dev.outputs["outputsVersion"]


def test_consumer_example_refuses_an_incompatible_contract(dev) -> None:  # noqa: ANN001
    import pulumi

    outputs = {**dev.outputs, "outputsVersion": "2.0"}
    reference = {"outputs": outputs, "secretOutputNames": sorted(dev.secret_outputs)}
    with pytest.raises(pulumi.RunError, match="2.0 is not compatible with 1.x"):
        run_program("dev", root=CONSUMER, stack_references={"my-org/agent-platform/dev": reference})


def test_contract_file_lists_each_name_once() -> None:
    rows = re.findall(r"^\| `(\w+)` \|", Path(CONTRACT).read_text(), re.M)
    assert len(rows) == len(set(rows)) >= 15
