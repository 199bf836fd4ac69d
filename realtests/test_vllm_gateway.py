"""The real vLLM server behind the real LiteLLM 1.93 gateway (on PostgreSQL): a team granted the model gets real
completions and pays the route's per-token prices (key, team, spend log, LiteLLM's Prometheus spend per team); a
team without it is refused; a team over its budget is refused; the KEDA triggers select series the real servers
export.

What ships (vllm_lab.shipped): the program's run of the dev stack with examples/self-hosted-model.yaml (its model
sized for the tiny one): the rendered proxy_config with its ``hosted_vllm`` route, whose ``api_base`` alone moves to
the lab's server (as the other labs move the cache's host), the Deployment's ``vllm serve`` flags (realtests/conftest.py)
and the ScaledObject's queries.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from realtests import lab, vllm_lab
from tests.localhost import free_port

COMPLETIONS = 3
GRANTED, DENIED, BUDGETED = "tenant-vllm-granted", "tenant-vllm-denied", "tenant-vllm-budget"

pytestmark = pytest.mark.skipif(not lab.SHARED.exists(), reason=f"{lab.SHARED} is absent (the LiteLLM lab setup)")


@pytest.fixture(scope="module")
def shipped() -> vllm_lab.Shipped:
    return vllm_lab.shipped()


@pytest.fixture(scope="module")
def route(shipped: vllm_lab.Shipped, vllm_server: vllm_lab.Server) -> dict[str, Any]:
    """The rendered model_list entry under test, pointed at the lab's vLLM server."""
    return vllm_lab.lab_route(shipped.route, vllm_server.url)


@pytest.fixture(scope="module")
def gateway(shipped: vllm_lab.Shipped, route: dict[str, Any], lab_locked: None, postgres: None) -> Iterator[lab.Proxy]:
    config = copy.deepcopy(shipped.proxy_config)
    config["general_settings"] = {"master_key": "os.environ/PROXY_MASTER_KEY"}  # the chart's default; no cache
    config["model_list"] = [route if m["model_name"] == route["model_name"] else m for m in config["model_list"]]
    lab.psql(
        'delete from "LiteLLM_VerificationToken"; delete from "LiteLLM_TeamTable"; delete from "LiteLLM_SpendLogs";'
    )
    proxy = lab.Proxy(config, free_port())
    try:
        proxy.wait_ready()
        yield proxy
    finally:
        proxy.stop()


def team_key(proxy: lab.Proxy, team: str, models: list[str], **limits: Any) -> str:
    """A team as the tenant key Job makes it (its models are its grants) and a key under it."""
    code, body = lab.call(proxy.url, "/team/new", {"team_id": team, "team_alias": team, "models": models, **limits})
    assert code == 200, body
    code, body = lab.call(proxy.url, "/key/generate", {"team_id": team, "key_alias": team})
    assert code == 200, body
    return body["key"]


def chat(proxy: lab.Proxy, key: str, model: str, content: str) -> tuple[int, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 12}
    return lab.call(proxy.url, "/v1/chat/completions", body, key=key)


def vllm_successes(server: vllm_lab.Server) -> float:
    text = vllm_lab.get(f"{server.url}/metrics")
    return vllm_lab.metric_value(text, "vllm:request_success_total", model_name=vllm_lab.SERVED_NAME)


def eventually(probe: Callable[[], Any], deadline_s: float = 90) -> Any:
    """``probe()`` once it is truthy (LiteLLM writes spend to PostgreSQL in batches); fails at the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if value := probe():
            return value
        time.sleep(1)
    raise TimeoutError(f"nothing after {deadline_s:.0f} s")


@pytest.fixture(scope="module")
def granted(
    gateway: lab.Proxy, route: dict[str, Any], vllm_server: vllm_lab.Server, vllm_figures: dict[str, Any]
) -> dict[str, Any]:
    """COMPLETIONS completions through the gateway with a key of a team granted the model."""
    key = team_key(gateway, GRANTED, [route["model_name"]])
    before = vllm_successes(vllm_server)
    responses, seconds = [], []
    for i in range(COMPLETIONS):
        start = time.monotonic()
        code, response = chat(gateway, key, route["model_name"], f"hello through the gateway {i}")
        seconds.append(time.monotonic() - start)
        assert code == 200, response
        responses.append(response)
    vllm_figures["completion_via_litellm_s"] = {
        "first": round(seconds[0], 3),
        "median_rest": round(statistics.median(seconds[1:]), 3),
    }
    return {"key": key, "responses": responses, "served": vllm_successes(vllm_server) - before}


def expected_cost(route: dict[str, Any], responses: list[dict[str, Any]]) -> float:
    params = route["litellm_params"]
    return sum(
        r["usage"]["prompt_tokens"] * params["input_cost_per_token"]
        + r["usage"]["completion_tokens"] * params["output_cost_per_token"]
        for r in responses
    )


def test_the_route_is_a_priced_hosted_vllm_model(route: dict[str, Any], shipped: vllm_lab.Shipped) -> None:
    params = route["litellm_params"]
    assert params["model"].startswith("hosted_vllm/")
    assert shipped.route["litellm_params"]["api_base"].endswith(".svc.cluster.local:8000/v1")  # the model's Service
    assert {k: v for k, v in params.items() if k != "api_base"} == {
        k: v for k, v in shipped.route["litellm_params"].items() if k != "api_base"
    }
    assert params["input_cost_per_token"] > 0
    assert params["output_cost_per_token"] > 0
    assert params["input_cost_per_token"] != params["output_cost_per_token"]  # a swap would be seen


def test_the_keda_triggers_select_series_the_servers_export(
    gateway: lab.Proxy, granted: dict[str, Any], shipped: vllm_lab.Shipped, vllm_server: vllm_lab.Server
) -> None:
    """The queue trigger selects vLLM's waiting-requests gauge by its model_name label (``namespace`` is the scrape
    target's label Prometheus adds); the wake trigger (minReplicas 0) selects LiteLLM's request counter by the
    requested model, which counts the completions just made."""
    queue, wake = shipped.triggers
    name, labels = vllm_lab.query_selector(queue["metadata"]["query"])
    labels.pop("namespace")
    assert len(vllm_lab.samples(vllm_lab.get(f"{vllm_server.url}/metrics"), name, **labels)) == 1, (name, labels)
    name, labels = vllm_lab.query_selector(wake["metadata"]["query"])
    metrics = vllm_lab.get(f"{gateway.url}/metrics", key=lab.MASTER_KEY)
    assert sum(vllm_lab.samples(metrics, name, **labels)) >= COMPLETIONS, [
        m for m in metrics.splitlines() if m.startswith(name)
    ]


def test_a_granted_key_gets_completions_from_vllm(granted: dict[str, Any], route: dict[str, Any]) -> None:
    assert granted["served"] == COMPLETIONS  # vLLM itself served each one: no mock, no fallback
    for response in granted["responses"]:
        assert response["model"] in {route["model_name"], route["litellm_params"]["model"]}
        assert response["usage"]["completion_tokens"] > 0


def test_the_granted_key_lists_the_model(gateway: lab.Proxy, granted: dict[str, Any], route: dict[str, Any]) -> None:
    code, models = lab.call(gateway.url, "/v1/models", key=granted["key"])
    assert code == 200, models
    assert [m["id"] for m in models["data"]] == [route["model_name"]]


def test_spend_is_recorded_at_the_route_s_prices(
    gateway: lab.Proxy, granted: dict[str, Any], route: dict[str, Any]
) -> None:
    cost = expected_cost(route, granted["responses"])

    def key_spend() -> float:
        code, info = lab.call(gateway.url, f"/key/info?key={granted['key']}")
        assert code == 200, info
        return info["info"]["spend"]

    assert eventually(key_spend) == pytest.approx(cost, rel=1e-6)
    team_spend = eventually(
        lambda: float(lab.psql(f"""select spend from "LiteLLM_TeamTable" where team_id='{GRANTED}'"""))
    )
    assert team_spend == pytest.approx(cost, rel=1e-6)
    logs = lab.psql(f"""select count(*), sum(spend) from "LiteLLM_SpendLogs" where team_id='{GRANTED}'""")
    count, total = logs.split("|")
    assert int(count) == COMPLETIONS
    assert float(total) == pytest.approx(cost, rel=1e-6)
    metrics = vllm_lab.get(f"{gateway.url}/metrics", key=lab.MASTER_KEY)  # require_auth_for_metrics_endpoint
    per_team = vllm_lab.metric_value(metrics, "litellm_spend_metric_total", team=GRANTED)  # the team's only model
    assert per_team == pytest.approx(cost, rel=1e-6), [m for m in metrics.splitlines() if "spend_metric" in m]


def test_a_key_without_the_model_is_refused(
    gateway: lab.Proxy, route: dict[str, Any], vllm_server: vllm_lab.Server
) -> None:
    other = next(m["model_name"] for m in gateway_models(gateway) if m["model_name"] != route["model_name"])
    key = team_key(gateway, DENIED, [other])
    before = vllm_successes(vllm_server)
    code, body = chat(gateway, key, route["model_name"], "may I?")
    assert code == 403, body
    assert body["error"]["type"] == "team_model_access_denied", body
    code, models = lab.call(gateway.url, "/v1/models", key=key)
    assert code == 200, models
    assert route["model_name"] not in [m["id"] for m in models["data"]]
    assert vllm_successes(vllm_server) == before


def test_a_team_over_its_budget_is_refused(gateway: lab.Proxy, route: dict[str, Any]) -> None:
    """Priced routes make budgets apply: one completion spends past a tiny team budget, the next is refused."""
    key = team_key(gateway, BUDGETED, [route["model_name"]], max_budget=1e-9)
    code, body = chat(gateway, key, route["model_name"], "first")
    assert code == 200, body

    def refused() -> tuple[int, Any] | None:
        code, body = chat(gateway, key, route["model_name"], "again")
        return (code, body) if code != 200 else None

    code, body = eventually(refused, deadline_s=30)
    assert code == 429, body
    assert body["error"]["type"] == "budget_exceeded", body


def gateway_models(proxy: lab.Proxy) -> list[dict[str, Any]]:
    code, body = lab.call(proxy.url, "/model/info")
    assert code == 200, body
    return body["data"]
