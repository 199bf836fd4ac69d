"""A tenant's lifecycle by config alone (docs/tenants.md): data survives every edit that is not a deliberate deletion.

Renames keep every resource's state (aliases, compared by URN as tools/registrations.py compares two runs) and the
LiteLLM team; suspended agents and tenants run no pods but keep volumes and keys; a decommissioned tenant's team and
key are blocked at the gateway; a tenant the stack holds data for cannot vanish from the config; protected stacks
leave namespaces and volumes behind when Pulumi deletes them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.config.reader import safe_load
from tests.configs import config_error, parse_config
from tests.conftest import program_result
from tools.program import ROOT, ProgramResult
from tools.registrations import alias_map, compare, snapshot

DEV = safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
TENANTS = DEV["agent-platform:tenants"]
SECRETS = DEV["agent-platform:tenantSecrets"]
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NAMESPACE = "kubernetes:core/v1:Namespace"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
WARM_POOL = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxWarmPool"


def tenants_with(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The dev tenants, each named one updated with its changes."""
    tenants = copy.deepcopy(TENANTS)
    for tenant in tenants:
        tenant.update(changes.get(tenant["name"], {}))
    return tenants


def renamed_dev() -> ProgramResult:
    """dev with acme (it has a volume) renamed acme-corp; its tenantSecrets move with it."""
    secrets = {("acme-corp" if k == "acme" else k): v for k, v in SECRETS.items()}
    tenants = tenants_with(acme={"name": "acme-corp", "formerNames": ["acme"]})
    return program_result("dev", {"agent-platform:tenants": tenants, "agent-platform:tenantSecrets": secrets})


def job_spec(result: ProgramResult, tenant: str, env: str) -> dict[str, Any]:
    (job,) = [j for j in result.of_type(JOB) if j.name == f"gateway-key-job-{tenant}"]
    container = job.inputs["spec"]["template"]["spec"]["containers"][0]
    return json.loads(next(e["value"] for e in container["env"] if e["name"] == env))


def test_a_rename_with_former_names_replaces_nothing() -> None:
    base, new = snapshot(program_result("dev")), snapshot(renamed_dev())
    problems = compare({"dev": base}, {"dev": new})
    assert not [p for p in problems if "is gone" in p or "is new" in p]
    moved = {u: old for old, u in alias_map(new["resources"]).items() if old in base["resources"]}
    assert len(moved) > 10
    # what pulumi-kubernetes replaces on (metadata name/namespace; a claim's spec) is the same: updated in place
    for urn, r in new["resources"].items():
        if r["type"] in (NAMESPACE, PVC) and urn in moved:
            before = base["resources"][moved[urn]]["inputs"]
            assert {**r["inputs"], "metadata": None} == {**before, "metadata": None}, urn
            for key in ("name", "namespace"):
                assert r["inputs"]["metadata"].get(key) == before["metadata"].get(key), urn
    kinds = {new["resources"][u]["type"] for u in moved}
    assert {NAMESPACE, PVC, "random:index/randomPassword:RandomPassword", DEPLOYMENT} <= kinds
    # (a Deployment's selector holds the tenant label: pulumi-kubernetes replaces it; its pod restarts on the volume)


def test_a_renamed_tenant_keeps_its_litellm_team_and_namespace() -> None:
    result = renamed_dev()
    team, key = job_spec(result, "acme-corp", "TEAM_SPEC"), job_spec(result, "acme-corp", "KEY_SPEC")
    assert team["team_id"] == key["team_id"] == "tenant-acme"  # spend and budget period carry on
    assert team["team_alias"] == "tenant-acme-corp"
    assert result.outputs["tenantNamespaces"]["acme-corp"] == "tenant-acme"


OFFICE_HOURS = {"start": "0 8 * * 1-5", "end": "0 19 * * 1-5", "timezone": "Europe/Berlin"}
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def lifecycle_dev() -> ProgramResult:
    """acme decommissioned; globex's agent (with a warm pool and a schedule) suspended."""
    agents = copy.deepcopy(TENANTS[1]["agents"])
    agents[0].update(state="suspended", schedule=OFFICE_HOURS)  # suspended wins over its schedule
    return program_result(
        "dev", {"agent-platform:tenants": tenants_with(acme={"state": "decommissioned"}, globex={"agents": agents})}
    )


def replicas(result: ProgramResult, type_: str) -> dict[str, int]:
    """Of the tenants' workloads (children of their namespaces)."""
    return {r.name: r.inputs["spec"]["replicas"] for r in result.of_type(type_) if NAMESPACE in r.parent}


def test_running_agents_have_their_pods() -> None:
    result = program_result("dev")
    running = {"acme-hermes": 1, "acme-kb-tools": 1, "globex-openclaw": 1, "globex-crm-tools": 1, "initech-hermes": 1}
    assert replicas(result, DEPLOYMENT) == running
    assert replicas(result, WARM_POOL) == {"globex-openclaw-pool": 2}
    for tenant in ("acme", "globex"):
        assert job_spec(result, tenant, "TEAM_SPEC")["blocked"] is False
        assert job_spec(result, tenant, "KEY_SPEC")["blocked"] is False


def test_suspended_and_decommissioned_run_no_pods_and_keep_their_volumes_and_secrets() -> None:
    result, base = lifecycle_dev(), program_result("dev")
    # acme (decommissioned) runs nothing, its MCP server included; only globex's OpenClaw is suspended
    expected = {"acme-hermes": 0, "acme-kb-tools": 0, "globex-openclaw": 0, "globex-crm-tools": 1, "initech-hermes": 1}
    assert replicas(result, DEPLOYMENT) == expected
    assert replicas(result, WARM_POOL) == {"globex-openclaw-pool": 0}
    assert not result.of_type(SCALED_OBJECT)  # a suspended agent's schedule does not wake it
    kept = (NAMESPACE, PVC, "kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap")
    for type_ in kept:  # every one the running stack has is still declared (KEDA's namespace comes in)
        assert {r.urn for r in base.of_type(type_)} <= {r.urn for r in result.of_type(type_)}, type_


def test_a_decommissioned_tenants_team_and_key_are_blocked_and_its_spend_kept() -> None:
    result = lifecycle_dev()
    team, key = job_spec(result, "acme", "TEAM_SPEC"), job_spec(result, "acme", "KEY_SPEC")
    assert team["blocked"] is True
    assert key["blocked"] is True
    assert team["team_id"] == "tenant-acme"  # blocked, not deleted: its spend history stays
    assert job_spec(result, "globex", "TEAM_SPEC")["blocked"] is False  # a suspended agent keeps a valid key


def test_a_decommissioned_tenants_egress_proxy_user_is_dropped() -> None:
    result, base = lifecycle_dev(), program_result("dev")
    for run, users in ((base, ["acme", "globex", "initech"]), (result, ["globex", "initech"])):
        htpasswd = run.named("kubernetes:core/v1:Secret", "egress-htpasswd").plain["stringData"]["htpasswd"]
        assert [line.split(":")[0] for line in htpasswd.splitlines()] == users
        conf = run.named("kubernetes:core/v1:ConfigMap", "egress-config").inputs["data"]["squid.conf"]
        assert ("proxy_auth acme" in conf) == ("acme" in users)
    assert result.named("kubernetes:core/v1:Secret", "acme-egress-proxy")  # the tenant's own Secret is kept


def test_a_protected_stack_leaves_tenant_namespaces_and_volumes_behind() -> None:
    prod, dev = program_result("prod"), program_result("dev")
    (storage_class,) = prod.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class.inputs["reclaimPolicy"] == "Retain"
    tenant_namespaces = [r for r in prod.of_type(NAMESPACE) if r.name.endswith("-ns") and "Tenant" in r.parent]
    assert len(tenant_namespaces) == 4
    assert all(r.retain_on_delete for r in (*tenant_namespaces, *prod.of_type(PVC)))
    assert dev.of_type("kubernetes:storage.k8s.io/v1:StorageClass")[0].inputs["reclaimPolicy"] == "Delete"
    assert not any(r.retain_on_delete for r in dev.registrations)


KNOWN = ["acme", "globex"]
AGENTS = [{"name": "a", "type": "hermes"}]


@pytest.mark.parametrize(
    ("tenants", "known", "key", "reason"),
    [
        # removed by mistake
        ([{"name": "globex", "agents": AGENTS}], KNOWN, "tenants", "tenant 'acme' is missing (it is in knownTenants)"),
        # renamed by mistake: the old name is missing
        (
            [{"name": "acme2", "agents": AGENTS}, {"name": "globex", "agents": AGENTS}],
            KNOWN,
            "tenants",
            "A rename keeps it with formerNames: [acme]",
        ),
        # a new tenant joins the record
        (
            [{"name": n, "agents": AGENTS} for n in ("acme", "globex", "hooli")],
            KNOWN,
            "tenants[2].name",
            "tenant 'hooli' is not in knownTenants",
        ),
        ([{"name": "acme", "agents": AGENTS}], ["acme", "acme"], "knownTenants", "duplicate tenant 'acme'"),
        (
            [{"name": "acme", "formerNames": ["acme"], "agents": AGENTS}],
            ["acme"],
            "tenants[0].formerNames",
            "duplicate name (a former name repeats) 'acme'",
        ),
        (
            [{"name": "a1", "formerNames": ["x"], "agents": AGENTS}, {"name": "x", "agents": AGENTS}],
            ["x", "a1"],
            "tenants",
            "duplicate tenant name or former name 'x'",
        ),
        ([{"name": "acme", "state": "deleted", "agents": AGENTS}], ["acme"], "tenants[0].state", "'deleted' is not"),
        (
            [{"name": "acme", "agents": [{**AGENTS[0], "state": "paused"}]}],
            ["acme"],
            "tenants[0].agents[0].state",
            "'paused' is not one of running, suspended",
        ),
    ],
)
def test_config_edits_that_would_drop_data_fail_naming_the_tenant(
    tenants: list[dict[str, Any]], known: list[str], key: str, reason: str
) -> None:
    message = config_error(tenants=tenants, knownTenants=known)
    assert message.startswith(f"agent-platform:{key}: "), message
    assert reason in message, message
    assert "\n" not in message


def test_deliberate_edits_pass() -> None:
    decommissioned = {"name": "acme", "state": "decommissioned", "agents": AGENTS}
    renamed = {"name": "acme-corp", "formerNames": ["acme"], "agents": AGENTS}
    for tenants, known in (
        ([decommissioned, {"name": "globex", "agents": AGENTS}], KNOWN),
        ([renamed, {"name": "globex", "agents": AGENTS}], KNOWN),  # the record may keep the old name
        ([renamed], ["acme-corp"]),  # or the new one
        ([{"name": "globex", "agents": AGENTS}], ["globex"]),  # deleted for good: out of both lists together
        ([{"name": "acme", "agents": AGENTS}], ["acme"]),  # re-added: a new tenant (its old team is unblocked)
    ):
        cfg = parse_config(tenants=tenants, knownTenants=known)
        assert [t.name for t in cfg.tenants] == [t["name"] for t in tenants]
    assert parse_config(tenants=[renamed]).tenants[0].namespace == "tenant-acme"  # the identity's
    assert parse_config(tenants=[{"name": "x", "agents": AGENTS}]).known_tenants is None  # not kept: not checked


def test_a_scheduled_agent_leaves_its_replicas_to_a_keda_cron_scaler(each_stack: ProgramResult) -> None:
    """staging's initech/hermes has office hours; Pulumi does not set its replicas, so it never fights KEDA."""
    scheduled = {r.name: r for r in each_stack.of_type(SCALED_OBJECT)}
    deployments = {r.name: r.inputs["spec"] for r in each_stack.of_type(DEPLOYMENT) if NAMESPACE in r.parent}
    if each_stack.stack != "staging":
        assert not scheduled
        assert not each_stack.of_type("agent-platform:capacity:Keda")  # KEDA only where a schedule needs it
        assert all(spec["replicas"] == 1 for spec in deployments.values())
        return
    (keda,) = each_stack.of_type("agent-platform:capacity:Keda")
    assert set(scheduled) == {"initech-hermes-schedule"}
    spec = scheduled["initech-hermes-schedule"].inputs["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hermes"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 1)
    (trigger,) = spec["triggers"]
    assert trigger == {"type": "cron", "metadata": {**OFFICE_HOURS, "desiredReplicas": "1"}}
    assert "replicas" not in deployments["initech-hermes"]
    assert deployments["initech-openclaw"]["replicas"] == 1
    release = each_stack.named("kubernetes:helm.sh/v3:Release", "keda-release")
    assert release.urn in scheduled["initech-hermes-schedule"].dependencies


@pytest.mark.parametrize(
    ("schedule", "key", "reason"),
    [
        ({"start": "0 8 * *", "end": "0 19 * * 1-5"}, "schedule.start", "a cron expression of 5 fields"),
        ({"start": "0 8 * * 1-5", "end": "0 8 * * 1-5"}, "schedule.end", "equals start"),
        ({**OFFICE_HOURS, "timezone": "Mars/Olympus"}, "schedule.timezone", "is not an IANA time zone"),
        ({"start": "0 8 * * 1-5"}, "schedule.end", "required"),
    ],
)
def test_a_bad_schedule_fails_naming_its_key(schedule: dict[str, str], key: str, reason: str) -> None:
    message = config_error(tenants=[{"name": "t", "agents": [{**AGENTS[0], "schedule": schedule}]}])
    assert message.startswith(f"agent-platform:tenants[0].agents[0].{key}: "), message
    assert reason in message, message
