"""bedrockModels[].contextWindow / maxOutputTokens reach LiteLLM's model_info and both agents' configs."""

from __future__ import annotations

import json

from components.config.reader import safe_load
from components.tenants.agent_types.base import AgentFiles
from components.tenants.agent_types.hermes import hermes_files
from components.tenants.agent_types.openclaw import openclaw_files
from tests.configs import MODELS, parse_config
from tools.program import ProgramResult

LIMITED = [{**MODELS[0], "contextWindow": 200000, "maxOutputTokens": 64000}]


def test_limits_are_parsed_and_optional() -> None:
    (model,) = parse_config(bedrockModels=LIMITED).gateway.models
    assert (model.context_window, model.max_output_tokens) == (200000, 64000)
    (plain,) = parse_config().gateway.models
    assert (plain.context_window, plain.max_output_tokens) == (None, None)


def test_litellm_model_info_carries_the_limits(dev: ProgramResult) -> None:
    release = dev.named("kubernetes:helm.sh/v3:Release", "gateway-litellm")
    models = {m["model_name"]: m for m in release.inputs["values"]["proxy_config"]["model_list"]}
    assert models["claude-sonnet"]["model_info"] == {
        "max_input_tokens": 200000,
        "max_output_tokens": 64000,
        "max_tokens": 64000,
    }
    assert models["nova-pro"]["model_info"]["max_input_tokens"] == 300000


def files(models: tuple[str, ...], limits: dict) -> AgentFiles:
    return AgentFiles(tenant="acme", agent="a", litellm_url="http://nlb:4000", models=models, limits=limits)


def test_hermes_gets_the_default_models_context_length() -> None:
    f = files(("claude", "nova"), {"claude": (200000, 64000), "nova": (300000, 10000)})
    model = safe_load(hermes_files(f)["config.yaml"])["model"]
    assert model["default"] == "claude"
    assert model["context_length"] == 200000
    assert "max_tokens" not in model  # Hermes: output limits are provider-owned, not configuration
    bare = safe_load(hermes_files(files(("claude",), {}))["config.yaml"])["model"]
    assert "context_length" not in bare


def test_openclaw_gets_every_models_window_and_output_limit() -> None:
    f = files(("claude", "nova"), {"claude": (200000, 64000), "nova": (300000, None)})
    provider = json.loads(openclaw_files(f)["openclaw.json"])["models"]["providers"]["litellm"]
    assert provider["models"] == [
        {"id": "claude", "name": "claude", "contextWindow": 200000, "maxTokens": 64000},
        {"id": "nova", "name": "nova", "contextWindow": 300000},
    ]


def test_the_stacks_agents_carry_their_models_limits(dev: ProgramResult) -> None:
    maps = [c for c in dev.of_type("kubernetes:core/v1:ConfigMap") if c.name.endswith("-config")]
    seen = 0
    for config_map in maps:
        data = config_map.inputs["data"]
        if "config.yaml" in data:
            assert safe_load(data["config.yaml"])["model"]["context_length"] in (200000, 300000)
            seen += 1
        if "openclaw.json" in data:
            for model in json.loads(data["openclaw.json"])["models"]["providers"]["litellm"]["models"]:
                assert model["contextWindow"]
                assert model["maxTokens"]
            seen += 1
    assert seen >= 2
