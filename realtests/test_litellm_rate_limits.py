"""Two real LiteLLM replicas enforce ONE rate limit when they share the project's cache (and two without it).

The proxy config is the ``config.yaml`` of the ConfigMap the vendored litellm-helm chart renders from the dev
stack's values (chart defaults merged: ``general_settings.master_key`` and the project's
``general_settings.coordination_redis``), only the cache's address moved to 127.0.0.1; the cache is redis-server
running the rendered ``valkey.conf`` (password included). Each scenario uses a fresh key with ``rpm_limit``
RPM, sends 2*RPM+4 mock completions alternating between the two replicas within one minute, and counts the 200s.
Figures land in build/litellm-offline/logs/rate-limits.json.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from components import gateway_cache as gc
from realtests import lab
from tests.conftest import program_result
from tools.preview import kubernetes_version
from tools.render import render_all

RPM = 60  # the issue measured 120 of 124 through two replicas without a cache
REQUESTS = 2 * RPM + 4
RESULTS: dict[str, Any] = {}

pytestmark = pytest.mark.skipif(not lab.SHARED.exists(), reason=f"{lab.SHARED} is absent (the LiteLLM lab setup)")


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    dev = program_result("dev")
    (litellm,) = [r for r in render_all(dev, kubernetes_version(dev)) if r.install.name == "litellm"]
    (config_map,) = [
        o for o in litellm.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "litellm-config"
    ]
    proxy_config = yaml.safe_load(config_map["data"]["config.yaml"])
    valkey_conf = dev.named("kubernetes:core/v1:Secret", "gateway-cache-secret").plain["stringData"]["valkey.conf"]
    password = dev.named("kubernetes:core/v1:Secret", "gateway-cache-secret").plain["stringData"]["password"]
    return {"proxy_config": proxy_config, "valkey_conf": valkey_conf, "password": password}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    out = lab.LAB / "logs" / "rate-limits.json"
    out.write_text(json.dumps(RESULTS, indent=1))
    print(f"\nrate-limit figures ({out}): {json.dumps(RESULTS)}")


def run_scenario(name: str, config: dict[str, Any], env: dict[str, str]) -> int:
    """Start two replicas, create a fresh key with rpm_limit RPM, burst, stop; the number of 200s."""
    proxies = [lab.Proxy(config, 4100, env), lab.Proxy(config, 4101, env)]
    try:
        for proxy in proxies:
            proxy.wait_ready()
        spec = {
            "key_alias": f"rate-{name}",
            "models": [config["model_list"][0]["model_name"]],
            "rpm_limit": RPM,
            "metadata": {"allow_client_mock_response": True},
        }
        code, body = lab.call(proxies[0].url, "/key/generate", spec)
        assert code == 200, body
        codes, seconds = lab.burst([p.url for p in proxies], body["key"], spec["models"][0], REQUESTS)
        assert seconds < 50, f"the burst took {seconds:.0f} s: it must fit in one rate-limit window"
        assert set(codes) <= {200, 429}, codes
        RESULTS[name] = {
            "rpm_limit": RPM,
            "requests": REQUESTS,
            "ok": codes[200],
            "429": codes[429],
            "seconds": round(seconds, 1),
        }
        return codes[200]
    finally:
        for proxy in proxies:
            proxy.stop()


def test_the_rendered_config_points_litellm_at_the_cache(rendered: dict[str, Any]) -> None:
    cache = rendered["proxy_config"]["general_settings"]["coordination_redis"]
    assert cache["host"] == "litellm-valkey.litellm.svc.cluster.local"
    assert int(cache["port"]) == 6379
    assert cache["password"] == "os.environ/LITELLM_CACHE_PASSWORD"
    assert rendered["proxy_config"]["general_settings"]["master_key"] == "os.environ/PROXY_MASTER_KEY"


def test_two_replicas_with_the_cache_enforce_one_limit(rendered: dict[str, Any], postgres: None) -> None:
    config = copy.deepcopy(rendered["proxy_config"])
    config["general_settings"]["coordination_redis"].update(host="127.0.0.1", port=lab.REDIS_PORT)
    redis = lab.Redis(rendered["valkey_conf"], lab.LAB / "work" / "redis")
    try:
        ok = run_scenario("with-cache", config, {"LITELLM_CACHE_PASSWORD": rendered["password"]})
    finally:
        redis.stop()
    assert RPM - 2 <= ok <= RPM, f"{ok} of {REQUESTS} passed with rpm_limit {RPM} on two replicas sharing the cache"
    logs = "".join((lab.LAB / "logs" / f"litellm-{port}.log").read_text() for port in (4100, 4101))
    assert "circuit breaker OPENED" not in logs  # every counter went through the cache


def test_without_the_cache_each_replica_counts_alone(rendered: dict[str, Any], postgres: None) -> None:
    """The finding: today's config (no coordination_redis) lets about twice the limit through two replicas."""
    config = copy.deepcopy(rendered["proxy_config"])
    del config["general_settings"]["coordination_redis"]
    ok = run_scenario("without-cache", config, {})
    assert ok > RPM + RPM // 2, f"{ok} of {REQUESTS} passed without a cache"


def test_router_settings_redis_alone_does_not_share_key_limits(rendered: dict[str, Any], postgres: None) -> None:
    """LiteLLM 1.93: router_settings.redis_* reaches the router only; key limits need coordination_redis."""
    config = copy.deepcopy(rendered["proxy_config"])
    del config["general_settings"]["coordination_redis"]
    config["router_settings"] = {
        "redis_host": "127.0.0.1",
        "redis_port": lab.REDIS_PORT,
        "redis_password": "os.environ/LITELLM_CACHE_PASSWORD",
    }
    redis = lab.Redis(rendered["valkey_conf"], lab.LAB / "work" / "redis")
    try:
        ok = run_scenario("router-settings-only", config, {"LITELLM_CACHE_PASSWORD": rendered["password"]})
    finally:
        redis.stop()
    assert ok > RPM + RPM // 2, f"{ok} of {REQUESTS} passed with router_settings.redis_* only"


def test_the_elasticache_user_s_permissions_are_enough_for_litellm(rendered: dict[str, Any], postgres: None) -> None:
    """Prod's RBAC user (ELASTICACHE_ACCESS, no admin or dangerous commands) as a Redis ACL user: one limit, and
    no command of LiteLLM's refused."""
    password = rendered["password"]
    conf = rendered["valkey_conf"] + f"user {gc.ELASTICACHE_USER} {gc.ELASTICACHE_ACCESS} >{password}\n"
    config = copy.deepcopy(rendered["proxy_config"])
    config["general_settings"]["coordination_redis"].update(
        host="127.0.0.1", port=lab.REDIS_PORT, username=gc.ELASTICACHE_USER
    )
    redis = lab.Redis(conf, lab.LAB / "work" / "redis")
    try:
        ok = run_scenario("elasticache-acl-user", config, {"LITELLM_CACHE_PASSWORD": password})
    finally:
        redis.stop()
    assert RPM - 2 <= ok <= RPM, f"{ok} of {REQUESTS} passed as the ACL user"
    logs = "".join((lab.LAB / "logs" / f"litellm-{port}.log").read_text() for port in (4100, 4101))
    assert "NOPERM" not in logs
    assert "circuit breaker OPENED" not in logs
