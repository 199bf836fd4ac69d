"""The tenant key Job's own script against the real LiteLLM: team, key under it, rotation with a grace period.

The Job is the rendered ``litellm-key-acme-*`` Job (the dev stack with the MCP lab's servers), run against the session's LiteLLM (conftest.py); its
container command runs under busybox sh as uid 100 with a private tmpfs /tmp (as in the curl image), secret refs
replaced by lab keys.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from realtests import lab, mcp_lab
from tests.conftest import program_result

KEY_A = "sk-acmeAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KEY_B = "sk-acmeBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
KEY_C = "sk-acmeCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"


@pytest.fixture(scope="module")
def job(gateway: mcp_lab.Gateway) -> dict[str, Any]:
    return gateway.jobs["acme"]


@pytest.fixture(scope="module")
def proxy(gateway: mcp_lab.Gateway) -> lab.Proxy:
    """The session's LiteLLM (the dev stack's proxy_config; conftest.py), its keys and teams deleted first."""
    reset()
    return gateway.proxy


@pytest.fixture(scope="module")
def decommissioned_job(gateway: mcp_lab.Gateway) -> dict[str, Any]:
    """acme's Job once the stack (the dev stack with the lab's MCP servers) sets ``state: decommissioned`` on it."""
    tenants = mcp_lab.lab_tenants(gateway.tool_servers)
    for tenant in tenants:
        tenant["state"] = "decommissioned" if tenant["name"] == "acme" else tenant.get("state", "active")
    return mcp_lab.key_job_containers(program_result("dev", {"agent-platform:tenants": tenants}))["acme"]


def reset() -> None:
    lab.psql('delete from "LiteLLM_VerificationToken"; delete from "LiteLLM_TeamTable";')


def run(job: dict[str, Any], proxy: lab.Proxy, key: str, master: str = lab.MASTER_KEY) -> tuple[int, str]:
    secrets = {("litellm-masterkey", "masterkey"): master, ("litellm-tenant-keys", "acme"): key}
    return lab.run_job_container(job, secrets, proxy.url)


def key_info(proxy: lab.Proxy, key: str) -> dict[str, Any]:
    code, body = lab.call(proxy.url, f"/key/info?key={key}")
    assert code == 200, body
    return body["info"]


def models_status(proxy: lab.Proxy, key: str) -> int:
    return lab.call(proxy.url, "/v1/models", key=key)[0]


def test_first_run_creates_the_team_and_the_key_under_it(job: dict[str, Any], proxy: lab.Proxy) -> None:
    rc, out = run(job, proxy, KEY_A)
    assert rc == 0, out
    assert "team tenant-acme created" in out
    assert "key tenant-acme created" in out
    assert KEY_A not in out
    assert lab.MASTER_KEY not in out
    team_spec = json.loads({e["name"]: e.get("value") for e in job["env"]}["TEAM_SPEC"])
    code, team = lab.call(proxy.url, "/team/info?team_id=tenant-acme")
    assert code == 200, team
    info = team["team_info"]
    for field in ("max_budget", "rpm_limit", "tpm_limit", "models"):
        assert info[field] == team_spec[field], field
    key = key_info(proxy, KEY_A)
    assert key["team_id"] == "tenant-acme"
    assert key["key_alias"] == "tenant-acme"
    assert key["rpm_limit"] is None
    assert key["max_budget"] is None
    assert models_status(proxy, KEY_A) == 200


def test_rerun_updates_without_a_new_key(job: dict[str, Any], proxy: lab.Proxy) -> None:
    before = lab.psql("""select token from "LiteLLM_VerificationToken" where key_alias='tenant-acme'""")
    rc, out = run(job, proxy, KEY_A)
    assert rc == 0, out
    assert "team tenant-acme updated" in out
    assert "key tenant-acme updated" in out
    assert lab.psql("""select count(*) || ':' || min(token) from "LiteLLM_VerificationToken" """) == f"1:{before}"


def test_rotation_keeps_the_old_key_for_the_grace_period_and_the_spend_on_the_team(
    job: dict[str, Any], proxy: lab.Proxy
) -> None:
    lab.psql("""update "LiteLLM_TeamTable" set spend = 12.5 where team_id = 'tenant-acme'""")  # spent so far
    rc, out = run(job, proxy, KEY_B)
    assert rc == 0, out
    assert "previous key of tenant-acme expires in 2h" in out
    assert "key tenant-acme created" in out
    assert models_status(proxy, KEY_A) == 200
    assert models_status(proxy, KEY_B) == 200
    old, new = key_info(proxy, KEY_A), key_info(proxy, KEY_B)
    assert old["key_alias"] == "tenant-acme-retired"
    assert new["key_alias"] == "tenant-acme"
    assert old["team_id"] == new["team_id"] == "tenant-acme"
    expires = datetime.fromisoformat(old["expires"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert new["expires"] is None
    code, team = lab.call(proxy.url, "/team/info?team_id=tenant-acme")
    assert team["team_info"]["spend"] == 12.5  # the budget did not restart with the new key


def test_next_rotation_deletes_the_retired_key(job: dict[str, Any], proxy: lab.Proxy) -> None:
    rc, out = run(job, proxy, KEY_C)
    assert rc == 0, out
    assert "key tenant-acme-retired deleted" in out
    assert models_status(proxy, KEY_A) == 401
    assert key_info(proxy, KEY_B)["key_alias"] == "tenant-acme-retired"
    aliases = lab.psql("""select string_agg(key_alias, ',' order by key_alias) from "LiteLLM_VerificationToken" """)
    assert aliases == "tenant-acme,tenant-acme-retired"


def test_a_wrong_master_key_fails_the_job_loudly(job: dict[str, Any], proxy: lab.Proxy) -> None:
    rc, out = run(job, proxy, KEY_C, master="sk-wrong")
    assert rc == 1, out
    assert "returned HTTP 401" in out, out


def test_upgrade_moves_a_per_key_limit_key_into_its_team(job: dict[str, Any], proxy: lab.Proxy) -> None:
    """A key the previous Job registered (limits on the key, no team) ends up under the team, its own limits gone."""
    reset()
    old_style = {"key": KEY_A, "key_alias": "tenant-acme", "models": ["claude-sonnet"], "max_budget": 50.0}
    code, body = lab.call(proxy.url, "/key/generate", {**old_style, "rpm_limit": 60, "budget_duration": "30d"})
    assert code == 200, body
    rc, out = run(job, proxy, KEY_A)
    assert rc == 0, out
    assert "team tenant-acme created" in out
    assert "key tenant-acme updated" in out
    key = key_info(proxy, KEY_A)
    assert key["team_id"] == "tenant-acme"
    assert (key["rpm_limit"], key["max_budget"], key["budget_duration"]) == (None, None, None)


def test_decommission_refuses_every_key_of_the_tenant_and_keeps_its_spend(
    job: dict[str, Any], decommissioned_job: dict[str, Any], proxy: lab.Proxy
) -> None:
    """Blocked team and key: the current key and a rotated-out key still in its grace period both get 401."""
    reset()
    for key in (KEY_A, KEY_B):  # KEY_A is retired (2 h grace) when KEY_B arrives
        rc, out = run(job, proxy, key)
        assert rc == 0, out
    lab.psql("""update "LiteLLM_TeamTable" set spend = 7.5 where team_id = 'tenant-acme'""")
    assert (models_status(proxy, KEY_A), models_status(proxy, KEY_B)) == (200, 200)
    rc, out = run(decommissioned_job, proxy, KEY_B)
    assert rc == 0, out
    assert "team tenant-acme updated" in out
    assert "key tenant-acme updated" in out
    for key in (KEY_A, KEY_B):
        code, body = lab.call(proxy.url, "/v1/models", key=key)
        assert code == 401, body
        assert "blocked" in json.dumps(body), body
    code, team = lab.call(proxy.url, "/team/info?team_id=tenant-acme")
    assert code == 200, team
    assert team["team_info"]["blocked"] is True
    assert team["team_info"]["spend"] == 7.5  # kept: the team is blocked, not deleted
    assert key_info(proxy, KEY_B)["blocked"] is True


def test_reactivating_a_decommissioned_tenant_unblocks_it(job: dict[str, Any], proxy: lab.Proxy) -> None:
    rc, out = run(job, proxy, KEY_B)
    assert rc == 0, out
    assert models_status(proxy, KEY_B) == 200
    code, team = lab.call(proxy.url, "/team/info?team_id=tenant-acme")
    assert (team["team_info"]["blocked"], team["team_info"]["spend"]) == (False, 7.5)
