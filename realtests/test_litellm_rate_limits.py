"""Two real LiteLLM replicas enforce ONE rate limit through every Redis setting the program renders, with the
redis-py the gateway image ships (realtests/litellm-image-pins.txt); and the settings that do not are caught.

Each scenario runs the ``config.yaml`` of the ConfigMap the vendored litellm-helm chart renders from a stack's
values (chart defaults merged), only the cache's address moved to ``localhost`` and, for TLS, the CA to the lab's
test CA; the server is redis-server (Debian) with the ``valkey.conf`` the program renders (in-cluster) or with
ElastiCache's access strings as ACL users on a three-master TLS cluster (ElastiCache Serverless runs only in
cluster mode). Traffic: the dev tenant's team as its key Job creates it (``team_spec``, rpm limit on the team) and
a key in it (``key_spec``), 2*rpm+4 mock completions alternating between the replicas within one minute.
Figures land in build/litellm-offline/logs/rate-limits.json.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.gateway import cache as gc
from realtests import lab
from tests.conftest import program_result
from tests.localhost import CertificateAuthority
from tools.preview import kubernetes_version
from tools.render import installs, render

RESULTS: dict[str, Any] = {}
NAMESPACE = "litellm"

pytestmark = pytest.mark.skipif(not lab.SHARED.exists(), reason=f"{lab.SHARED} is absent (the LiteLLM lab setup)")


def rendered(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The LiteLLM proxy config the chart renders for ``stack`` and the cache Secret the program declares."""
    result = program_result(stack, overrides)
    (install,) = [i for i in installs(result) if i.name == "litellm"]
    (config_map,) = [
        o
        for o in render(install, kubernetes_version(result)).objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "litellm-config"
    ]
    secret = result.named("kubernetes:core/v1:Secret", "gateway-cache-secret").plain["stringData"]
    return {"proxy_config": yaml.safe_load(config_map["data"]["config.yaml"]), **secret}


@pytest.fixture(scope="module")
def team_and_key() -> tuple[dict[str, Any], dict[str, Any]]:
    """The /team/new and /key/generate bodies of the dev tenant acme's key Job, as rendered."""
    (job,) = [j for j in program_result("dev").of_type("kubernetes:batch/v1:Job") if j.name == "gateway-key-job-acme"]
    env = {e["name"]: e.get("value") for e in job.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    return json.loads(env["TEAM_SPEC"]), json.loads(env["KEY_SPEC"])


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    """The lab's stand-in for the CAs: the program's own (in-cluster) and Amazon's (ElastiCache)."""
    return CertificateAuthority(lab.LAB / "work" / "ca")


@pytest.fixture(scope="module")
def server_certificate(ca: CertificateAuthority) -> tuple[Path, Path]:
    """For the names the program's certificate carries, and localhost (where the lab's servers listen)."""
    return ca.issue("valkey", [*gc.service_dns_names(NAMESPACE), "localhost"])


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    out = lab.LAB / "logs" / "rate-limits.json"
    if out.parent.exists():
        out.write_text(json.dumps(RESULTS, indent=1))
        print(f"\nrate-limit figures ({out}): {json.dumps(RESULTS)}")


def localized(settings: dict[str, Any], port: int, ca: CertificateAuthority | None) -> dict[str, Any]:
    """The rendered settings pointed at the lab: the address and the CA file, nothing else."""
    settings = copy.deepcopy(settings)
    if "startup_nodes" in settings:
        settings["startup_nodes"] = [{"host": "localhost", "port": port}]
    else:
        settings.update(host="localhost", port=port)
    if "ssl_ca_certs" in settings and ca is not None:
        settings["ssl_ca_certs"] = str(ca.cert)
    return settings


def lab_config(stack: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(stack["proxy_config"])
    config["general_settings"]["coordination_redis"] = settings
    return config


def valkey_conf(conf: str, certificate: tuple[Path, Path], ca: CertificateAuthority) -> str:
    """The rendered valkey.conf with the TLS files of the pod's mount replaced by the lab's."""
    files = {"tls.crt": certificate[0], "tls.key": certificate[1], "ca.crt": ca.cert}
    for name, path in files.items():
        conf = conf.replace(f"{gc.VALKEY_TLS_DIR}/{name}", str(path))
    return conf


def elasticache_conf(password: str, certificate: tuple[Path, Path], ca: CertificateAuthority) -> str:
    """An ElastiCache Serverless stand-in: TLS only, the program's access strings as ACL users (the default user
    as the program declares it, switched off)."""
    return "\n".join(
        ["port 0", "tls-port 6379", f"tls-cert-file {certificate[0]}", f"tls-key-file {certificate[1]}"]
        + [f"tls-ca-cert-file {ca.cert}", "tls-auth-clients no", 'save ""', "appendonly no"]
        + [f"user default {gc.ELASTICACHE_DEFAULT_ACCESS} >unused-{password}"]
        + [f"user {gc.CACHE_USER} {gc.ELASTICACHE_ACCESS} >{password}", ""]
    )


def record(name: str, outcome: dict[str, Any], server: lab.Redis | lab.RedisCluster | None = None) -> dict[str, Any]:
    RESULTS[name] = {**outcome["figures"], "redis_failures": len(outcome["failures"])}
    if server is not None:
        keys = server.stored_keys()
        team = outcome["team_id"]
        outcome["counters"] = [k for k in keys if f"team:{team}" in k]
        outcome["spend"] = [k for k in keys if k == f"spend:team:{team}"]
        outcome["denied"] = server.denied()
        RESULTS[name].update(keys=len(keys), acl_denied=len(outcome["denied"]))
    return outcome


def on_plain_valkey(name: str, stack: dict[str, Any], settings: dict[str, Any], team_and_key: tuple) -> dict[str, Any]:
    """LiteLLM with ``settings`` against one redis-server running ``stack``'s rendered (plain) valkey.conf."""
    redis = lab.Redis(stack["valkey.conf"], lab.LAB / "work" / f"valkey-{name}")
    try:
        config = lab_config(stack, localized(settings, redis.port, ca=None))
        env = {gc.CACHE_PASSWORD_ENV: stack["password"]}
        return record(name, lab.shared_limit(name, config, env, *team_and_key), redis)
    finally:
        redis.stop()


def assert_one_limit(outcome: dict[str, Any], expected_denials: frozenset[str] = frozenset()) -> None:
    ok, rpm = outcome["figures"]["ok"], outcome["figures"]["rpm_limit"]
    assert rpm - 2 <= ok <= rpm, f"{ok} of {outcome['figures']['requests']} passed with the team's rpm {rpm}"
    assert outcome["failures"] == [], outcome["failures"][:5]
    assert set(outcome["denied"]) <= expected_denials, outcome["denied"]  # the user holds what LiteLLM needs
    assert outcome["counters"], "no rate-limit counter of the team reached the server"
    assert outcome["spend"], "no spend counter of the team reached the server"


# --------------------------------------------------------------------------------------------
# What the lab runs


def test_the_lab_runs_the_gateway_image_s_redis_py(postgres: None) -> None:
    versions = lab.venv_versions(["litellm", "redis"])
    RESULTS["versions"] = versions
    image = program_result("dev").named("kubernetes:helm.sh/v3:Release", "gateway-litellm").inputs["values"]["image"]
    assert image["tag"] == f"v{versions['litellm']}"  # the wheel of the image's release
    assert versions["redis"] == lab.image_pins()["redis"] == "5.3.1"


def test_every_rendered_setting_passes_tls_keywords_only_over_tls() -> None:
    """What the lab below shows failing: ssl_* keywords on a plain connection. No stack or variant renders it."""
    for stack, overrides in (("dev", None), ("dev", {"agent-platform:litellmCacheTls": False}), ("prod", None)):
        settings = rendered(stack, overrides)["proxy_config"]["general_settings"]["coordination_redis"]
        assert gc.plain_connection_tls_keywords(settings) == [], (stack, overrides, settings)


# --------------------------------------------------------------------------------------------
# Every setting the program renders: one limit, every counter written, nothing the ACL refuses


def test_in_cluster_valkey_over_tls_shares_one_limit(
    postgres: None, ca: CertificateAuthority, server_certificate: tuple[Path, Path], team_and_key: tuple
) -> None:
    """The default (dev, staging): TLS with the program's CA, hostname checked, as the ACL user litellm."""
    dev = rendered("dev")
    settings = dev["proxy_config"]["general_settings"]["coordination_redis"]
    assert settings["ssl"] is True
    assert settings["ssl_ca_certs"] == f"{gc.CA_DIR}/ca.crt"
    conf = valkey_conf(dev["valkey.conf"], server_certificate, ca)
    redis = lab.Redis(conf, lab.LAB / "work" / "valkey-tls", ca=ca.cert)
    try:
        config = lab_config(dev, localized(settings, redis.port, ca))
        outcome = record(
            "in-cluster-tls",
            lab.shared_limit("tls", config, {gc.CACHE_PASSWORD_ENV: dev["password"]}, *team_and_key),
            redis,
        )
    finally:
        redis.stop()
    assert_one_limit(outcome)


def test_in_cluster_valkey_without_tls_shares_one_limit(postgres: None, team_and_key: tuple) -> None:
    """litellmCacheTls: false."""
    plain = rendered("dev", {"agent-platform:litellmCacheTls": False})
    settings = plain["proxy_config"]["general_settings"]["coordination_redis"]
    assert "ssl" not in settings
    assert_one_limit(on_plain_valkey("in-cluster-plain", plain, settings, team_and_key))


@pytest.fixture(scope="module")
def elasticache(
    postgres: None, ca: CertificateAuthority, server_certificate: tuple[Path, Path]
) -> Iterator[tuple[dict[str, Any], lab.RedisCluster]]:
    prod = rendered("prod")
    cluster = lab.RedisCluster(
        elasticache_conf(prod["password"], server_certificate, ca), lab.LAB / "work" / "ec", ca.cert
    )
    try:
        yield prod, cluster
    finally:
        cluster.stop()


def test_elasticache_serverless_as_a_cluster_shares_one_limit(
    elasticache: tuple[dict[str, Any], lab.RedisCluster], ca: CertificateAuthority, team_and_key: tuple
) -> None:
    """prod: TLS (Amazon's CA, from the system store: SSL_CERT_FILE stands in), startup_nodes -> LiteLLM's
    cluster client, the RBAC user with ElastiCache's access string."""
    prod, cluster = elasticache
    settings = prod["proxy_config"]["general_settings"]["coordination_redis"]
    assert settings["startup_nodes"][0]["host"].endswith(".cache.amazonaws.com")
    assert settings["ssl"] is True
    assert "ssl_ca_certs" not in settings
    config = lab_config(prod, localized(settings, cluster.nodes[0].port, ca))
    env = {gc.CACHE_PASSWORD_ENV: prod["password"], "SSL_CERT_FILE": str(ca.cert)}
    outcome = record("elasticache-cluster", lab.shared_limit("cluster", config, env, *team_and_key), cluster)
    # INFO (@dangerous, not granted on ElastiCache): LiteLLM's start-up version probe, whose refusal it ignores
    assert_one_limit(outcome, frozenset({f"{gc.CACHE_USER}: command info"}))


# --------------------------------------------------------------------------------------------
# Settings that do not work, kept so that a setting that produces them is recognised


def test_a_plain_client_on_the_cluster_counts_per_replica(
    elasticache: tuple[dict[str, Any], lab.RedisCluster], ca: CertificateAuthority, team_and_key: tuple
) -> None:
    """What prod rendered before (host/port on a cluster-mode server): the counters of a request hash to several
    slots, LiteLLM's plain client sends them to the one node it knows and gets MOVED or CROSSSLOT for every slot
    that node does not own; the proxy serves on, with warnings in its log. Whether a given team's limit still holds
    depends on where its hash tag falls, so the measure is the failed calls, not the count."""
    prod, cluster = elasticache
    settings = dict(prod["proxy_config"]["general_settings"]["coordination_redis"])
    (node,) = settings.pop("startup_nodes")
    config = lab_config(prod, localized({**node, **settings}, cluster.nodes[0].port, ca))
    env = {gc.CACHE_PASSWORD_ENV: prod["password"], "SSL_CERT_FILE": str(ca.cert)}
    outcome = record("elasticache-plain-client", lab.shared_limit("plainclient", config, env, *team_and_key), cluster)
    assert [line for line in outcome["failures"] if "MOVED" in line or "CROSSSLOT" in line]


def test_ssl_keywords_on_a_plain_connection_break_the_counters(postgres: None, team_and_key: tuple) -> None:
    """BerriAI/litellm#34614 with the image's redis-py 5.3.1: ``ssl: false`` plus hostname checking makes every
    counter write fail (TypeError in redis-py), the proxy stays healthy and each replica counts alone."""
    plain = rendered("dev", {"agent-platform:litellmCacheTls": False})
    settings = plain["proxy_config"]["general_settings"]["coordination_redis"]
    broken = {**settings, "ssl": False, "ssl_check_hostname": True, "ssl_cert_reqs": "required"}
    assert gc.plain_connection_tls_keywords(broken) == ["ssl_cert_reqs", "ssl_check_hostname"]
    outcome = on_plain_valkey("ssl-keywords-on-plain", plain, broken, team_and_key)
    ok, rpm = outcome["figures"]["ok"], outcome["figures"]["rpm_limit"]
    assert ok > rpm + rpm // 2, f"{ok} passed: the limit was shared after all"
    assert [line for line in outcome["failures"] if "unexpected keyword argument 'ssl_" in line]
    assert outcome["counters"] == []  # no counter reached the server


def test_without_the_cache_each_replica_counts_alone(postgres: None, team_and_key: tuple) -> None:
    """The reason for the cache: no coordination_redis lets about twice the limit through two replicas."""
    dev = rendered("dev")
    config = copy.deepcopy(dev["proxy_config"])
    del config["general_settings"]["coordination_redis"]
    outcome = record("without-cache", lab.shared_limit("nocache", config, {}, *team_and_key))
    rpm = outcome["figures"]["rpm_limit"]
    assert outcome["figures"]["ok"] > rpm + rpm // 2
