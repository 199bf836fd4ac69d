"""Tenants in their own stacks (docs/shards.md): the platform's tenantContract, a shard built from it, and the dev
stack split into a platform and two shards with the same resources as the single stack (by URN mapping), nothing
replaced, and the platform's per-tenant pieces adopted by the shards after `pulumi state move`."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pulumi
import pytest

from components.config import ConfigError
from components.config.reader import safe_load, safe_load_all
from components.config.shards import NOT_SHARED, SHARD_PROJECT, merge_shard_entries, shard_config, shard_stacks
from components.egress.squid import (
    ProxyTenant,
    htpasswd_line,
    shard_htpasswd_lines,
    shard_proxy_tenants,
)
from components.tenants.gateway_access import (
    check_mcp_registration,
    flat_servers,
    shard_mcp_entries,
    shard_servers,
    shard_tokens,
)
from components.tenants.shard import CONTRACT_KEYS, CONTRACT_VERSION, check_contract
from tests.conftest import program_result
from tools.analyzer import run_pack
from tools.engine import analyzer_resources
from tools.program import MASK, PLACEHOLDER, ROOT, ProgramResult, load_stack, run_program
from tools.split import SHARDS, platform_outputs, references
from tools.split import shard_stacks as shard_files

PROJECT = "agent-platform"
DEV_SHARDS = {"dev-a": ["acme"], "dev-b": ["globex"]}
QUALIFIED = [f"organization/{SHARD_PROJECT}/{stack}" for stack in DEV_SHARDS]
DEV = safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
# The single stack the split example is cut from: dev itself, its MCP servers included.
DEV_TENANTS = DEV["agent-platform:tenants"]
# Each moved tenant's MCP server (agent): the shard mints its token, the platform's gateway registers it.
SERVERS = {"acme": "kb-tools", "globex": "crm-tools"}
# Fargate tenants stay in the platform (their profile, role and security group are the platform's).
KEPT = [t for t in DEV_TENANTS if t.get("isolation") == "fargate"]
MOVED_TENANTS = [n for names in DEV_SHARDS.values() for n in names]
# The dev platform as it is once its other tenants are in shards: the same stack, its Fargate tenant only.
SPLIT = {
    "agent-platform:tenants": KEPT,
    "agent-platform:knownTenants": [t["name"] for t in KEPT],
    "agent-platform:tenantShards": QUALIFIED,
}
# What the platform declared per tenant beside the Tenant component, and the shard's resource that adopts each after
# `pulumi state move` (its alias names the platform resource at the shard's root, where the move puts it).
MOVED = {
    "random:index/randomPassword:RandomPassword::gateway-key-{t}": "TenantKeys",
    "kubernetes:batch/v1:Job::gateway-key-job-{t}": "TenantKeys",
    "random:index/randomPassword:RandomPassword::egress-{t}-password": "TenantProxyUsers",
    "random:index/randomPassword:RandomPassword::gateway-mcp-token-{t}-{a}": "McpTokens",
}
# Platform objects whose content lists every tenant it serves itself: fewer entries once tenants moved (masked values).
SERVED = {
    "agent-platform:agents:TenantKeys$kubernetes:core/v1:Secret::gateway-key-secret",
    "agent-platform:egress:EgressProxy$kubernetes:core/v1:Secret::egress-htpasswd",
}


def contract_of(result: ProgramResult) -> dict[str, Any]:
    return result.outputs["tenantContract"]


@pytest.fixture(scope="module")
def base() -> ProgramResult:
    """The single stack the split is cut from (dev)."""
    return program_result("dev")


@pytest.fixture(scope="module")
def split() -> tuple[ProgramResult, dict[str, ProgramResult]]:
    """The dev platform with its tenants in shards, and the two shards read against its outputs."""
    platform = program_result("dev", SPLIT)
    refs = {"organization/agent-platform/dev-shards": platform_outputs(platform)}
    shards = {stack: run_program(stack, root=SHARDS, stack_references=refs) for stack in DEV_SHARDS}
    return platform, shards


def tail(urn: str, stack: str, project: str) -> str:
    prefix = f"urn:pulumi:{stack}::{project}::"
    assert urn.startswith(prefix), urn
    return urn[len(prefix) :]


def dev_tenant(result: ProgramResult, urn: str) -> str:
    """The tenant (Tenant component name) a resource of the tenant tree belongs to."""
    by_urn = {r.urn: r for r in result.registrations}
    while by_urn[urn].type != "agent-platform:agents:Tenant":
        urn = by_urn[urn].parent
    return by_urn[urn].name


def tenant_tree(result: ProgramResult) -> set[str]:
    """URNs of the Tenant components and everything under them."""
    by_urn = {r.urn: r for r in result.registrations}

    def under_tenant(urn: str) -> bool:
        while urn in by_urn:
            if by_urn[urn].type == "agent-platform:agents:Tenant":
                return True
            urn = by_urn[urn].parent
        return False

    return {r.urn for r in result.registrations if under_tenant(r.urn)}


# ---------------------------------------------------------------------------------------------------
# The contract


def test_the_contract_has_its_keys_and_version(dev: ProgramResult) -> None:
    contract = contract_of(dev)
    assert sorted(contract) == sorted(CONTRACT_KEYS)
    assert contract["version"] == CONTRACT_VERSION
    assert dev.outputs["outputsVersion"] == "1.1"
    assert "tenantContract" not in dev.secret_outputs
    assert contract["tenants"] == ["acme", "globex", "initech"]
    assert contract["gatewayUrl"] == dev.outputs["litellmEndpoint"]


def test_the_contract_is_documented() -> None:
    text = (ROOT / "docs" / "outputs.md").read_text().split("## tenantContract", 1)[1]
    assert re.search(rf"^tenantContract version: \*\*{re.escape(CONTRACT_VERSION)}\*\*$", text, re.M)
    assert re.findall(r"^\| `(\w+)` \| [^|]+ \|$", text, re.M) == list(CONTRACT_KEYS)


def test_the_contract_settings_are_strings_without_tenants_or_secrets(dev: ProgramResult) -> None:
    settings = contract_of(dev)["settings"]
    assert not set(settings) & set(NOT_SHARED)
    assert all(isinstance(value, str) for value in settings.values())  # numbers would come back as floats


def test_a_shard_parses_the_platform_settings_as_the_platform_does(dev: ProgramResult) -> None:
    """Round trip: the dev tenants parsed against the contract give the dev stack's configuration, tenants and all,
    so a tenant renders the same in a shard as in the single stack."""
    platform = load_stack("dev")
    tenants = [t for t in DEV_TENANTS if t["name"] in MOVED_TENANTS]
    secrets = {"acme": {"hermes": {"TELEGRAM_BOT_TOKEN": "x"}}, "globex": {"openclaw": {"SLACK_BOT_TOKEN": "x"}}}
    secrets["globex"]["openclaw"]["SLACK_APP_TOKEN"] = "x"
    shard = shard_config(contract_of(dev), tenants, secrets, ["agent-platform:tenantSecrets"])
    for section in ("network", "cluster", "karpenter", "kata", "gateway", "images", "egress"):
        assert getattr(shard, section) == getattr(platform, section), section
    assert shard.tenants == tuple(t for t in platform.tenants if t.name in MOVED_TENANTS)


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        (None, "exports no tenantContract"),
        ({"version": "2.0"}, "not compatible with 1.x"),
        ({"version": "1.3"}, "lacks platformStack"),
    ],
)
def test_a_shard_refuses_a_missing_or_incompatible_contract(contract: Any, message: str) -> None:
    with pytest.raises(pulumi.RunError, match=message):
        check_contract(contract)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda t: t.update(dedicatedNodes=True), "tenants[0].dedicatedNodes"),
        (lambda t: t.update(egress={"cidrs": ["198.51.100.0/24"]}), "tenants[0].egress.cidrs"),
        (lambda t: t.update(isolation="fargate"), "tenants[0].isolation"),
    ],
)
def test_a_shard_refuses_what_only_the_platform_serves(dev: ProgramResult, change: Any, key: str) -> None:
    tenant: dict[str, Any] = {"name": "t1", "agents": [{"name": "a", "type": "openclaw"}]}
    change(tenant)
    with pytest.raises(ConfigError, match=rf"^agent-platform:{key.replace('[', '.').replace(']', '.')}"):
        shard_config(contract_of(dev), [tenant], {})


def test_shard_secrets_must_be_secret(dev: ProgramResult) -> None:
    with pytest.raises(ConfigError, match="tenantSecrets: must be a secret"):
        shard_config(contract_of(dev), [], {"acme": {"hermes": {"X": "plain"}}}, secret_keys=[])


def test_one_owner_per_tenant() -> None:
    entries = {"s1": {"a": {"domains": []}}, "s2": {"b": {"domains": ["x.example"]}}, "s3": None}
    assert merge_shard_entries(entries, ["c"]) == {"a": {"domains": []}, "b": {"domains": ["x.example"]}}
    with pytest.raises(pulumi.RunError, match="tenant 'a' is in shard s2 and in shard s1"):
        merge_shard_entries({"s1": {"a": 1}, "s2": {"a": 2}}, [])
    with pytest.raises(pulumi.RunError, match="tenant 'c' is in shard s1 and in the platform stack"):
        merge_shard_entries({"s1": {"c": 1}}, ["c"])


@pytest.mark.parametrize(
    ("allowlists", "users", "message"),
    [
        ({"a": {"domains": ["x.example\nhttp_access allow all"]}}, "", "is not a host name"),
        ({"a": {"domains": ["*"]}}, "", "would allow every domain"),
        ({"a": {"domains": ["10.0.0.1"]}}, "", "is an IP address"),
        ({"a b": {"domains": []}}, "", "'a b' is not a tenant name"),
        ({"A": {"domains": []}}, "", "'A' is not a tenant name"),
        ({"a": {"domains": "x.example"}}, "", "has no list of domains"),
        ("[]", "", "is not a map of tenants"),
        ("{", "", "is not JSON"),
        ({}, "a:plaintext\n", "a line that is not user:$1$salt$hash ('a')"),
        ({}, "A:$1$abcdefgh$" + "x" * 22 + "\n", "'A' is not a tenant name"),
        ({}, "a:$1$abcdefgh$" + "x" * 22 + "\nauth_param basic program /bin/sh\n", "not user:$1$salt$hash"),
        ({"a": {"domains": []}}, "b:$1$abcdefgh$" + "x" * 22 + "\n", "users that are not its tenants: b"),
        ({}, "a:$1$abcdefgh$" + "x" * 22 + "\n", "users that are not its tenants: a"),
    ],
)
def test_the_platform_serves_only_well_formed_shard_entries(allowlists: Any, users: str, message: str) -> None:
    """A shard writes data, never Squid configuration: a domain, tenant name or htpasswd line that is not one is
    refused with the shard's name (docs/shards.md#ownership)."""
    text = allowlists if isinstance(allowlists, str) else json.dumps(allowlists)

    def serve() -> None:
        shard_proxy_tenants({"org/tenant-shards/s1": text}, [])
        shard_htpasswd_lines({"org/tenant-shards/s1": users}, [], {"org/tenant-shards/s1": text})

    with pytest.raises(pulumi.RunError, match=re.escape(message)) as refused:
        serve()
    assert "org/tenant-shards/s1" in str(refused.value)


def test_well_formed_shard_entries_are_served() -> None:
    line = htpasswd_line("a", "pw")
    texts = {"s1": json.dumps({"a": {"domains": ["*.Example.com.", "x.example"], "cidrs": ["10.0.0.0/8"]}}), "s2": None}
    assert shard_proxy_tenants(texts, ["c"]) == [ProxyTenant("a", ("*.example.com", "x.example"))]  # no CIDRs
    assert shard_htpasswd_lines({"s1": f"{line}\n", "s2": None}, ["c"], texts) == {"a": line}
    with pytest.raises(pulumi.RunError, match="tenant 'c' is in shard s1 and in the platform stack"):
        shard_htpasswd_lines({"s1": htpasswd_line("c", "pw")}, ["c"], {"s1": json.dumps({"c": {"domains": []}})})


def test_a_shard_cannot_add_a_credential_for_another_shards_tenant() -> None:
    """Shard s2 serves tenant b; s1 exports a line for b (its own password) and no allowlist for it: refused, or
    s1's password would open b's allowlist."""
    allowlists = {"s1": json.dumps({"a": {"domains": []}}), "s2": json.dumps({"b": {"domains": ["x.example"]}})}
    users = {"s1": htpasswd_line("a", "pw") + "\n" + htpasswd_line("b", "s1s"), "s2": None}
    assert [t.name for t in shard_proxy_tenants(allowlists, [])] == ["a", "b"]
    with pytest.raises(pulumi.RunError, match="shard s1: egressProxyUsers has users that are not its tenants: b"):
        shard_htpasswd_lines(users, [], allowlists)


def genuine_mcp_entry() -> tuple[str, str, dict[str, Any]]:
    """(tenant, server, entry) of dev's first MCP server, as its shard exports it."""
    tenant, servers = sorted(shard_mcp_entries(load_stack("dev").tenants).items())[0]
    name, entry = sorted(servers.items())[0]
    return tenant, name, entry


MCP_EDITS = {  # what a hostile or broken shard might export in place of the genuine entry
    "stdio command": lambda e: e | {"transport": "stdio", "command": "/bin/sh", "args": ["-c", "id"]},
    "extra key": lambda e: e | {"headers": {"x": "y"}},
    "open to all keys": lambda e: e | {"allow_all_keys": True},
    "public": lambda e: e | {"available_on_public_internet": True},
    "other token": lambda e: e | {"auth_value": "os.environ/LITELLM_MASTER_KEY"},
    "platform service": lambda e: e | {"url": "http://litellm.litellm.svc.cluster.local:4000/mcp"},
    "platform namespace": lambda e: e | {"url": re.sub(r"^(http://[^.]+)\.[^.]+\.", r"\1.kube-system.", e["url"])},
    "outside url": lambda e: e | {"url": "http://169.254.169.254:80/latest"},
    "another agent's service": lambda e: e | {"url": e["url"].replace("http://", "http://other", 1)},
    "another tenant": lambda e: e | {"description": "globex/" + e["description"].split("/")[1]},
    "port": lambda e: e | {"url": re.sub(r":[0-9]+/", ":80/", e["url"])},
    "tools": lambda e: e | {"allowed_tools": ["a b"]},
    "not a map": lambda e: e["url"],
}


@pytest.mark.parametrize("edit", MCP_EDITS.values(), ids=MCP_EDITS.keys())
def test_the_platform_registers_only_mcp_servers_a_shard_declares(edit: Any) -> None:
    """A shard exports data: an MCP registration is accepted only when it is what the platform itself writes for a
    server of that tenant (never a stdio command, another URL, another token, a server open to all keys)."""
    tenant, name, entry = genuine_mcp_entry()
    assert shard_servers("s1", json.dumps({tenant: {name: entry}})) == {tenant: {name: entry}}
    with pytest.raises(pulumi.RunError, match=f"shard s1: mcpServers.{tenant}.{name} "):
        shard_servers("s1", json.dumps({tenant: {name: edit(copy.deepcopy(entry))}}))


def test_a_shard_sends_tokens_only_for_its_own_servers() -> None:
    tenant, name, entry = genuine_mcp_entry()
    servers = {tenant: {name: entry}}
    assert shard_tokens("s1", json.dumps({tenant: {name: "t"}}), servers) == {tenant: {name: "t"}}
    for tokens in ({tenant: {"other_server": "t"}}, {"globex": {name: "t"}}, {tenant: {name: 1}}, {tenant: "t"}):
        with pytest.raises(pulumi.RunError, match="shard s1: mcpTokens"):
            shard_tokens("s1", json.dumps(tokens), servers)


def test_tenant_shards_are_qualified_stack_names() -> None:
    assert shard_stacks(QUALIFIED) == tuple(QUALIFIED)
    with pytest.raises(ConfigError, match=r"tenantShards\[0\]: 'dev-a' is not"):
        shard_stacks(["dev-a"])
    with pytest.raises(ConfigError, match="tenantShards"):
        shard_stacks([QUALIFIED[0], QUALIFIED[0]])


# ---------------------------------------------------------------------------------------------------
# The split dev stack


def test_the_repository_split_is_the_dev_stack_split() -> None:
    """Pulumi.dev-shards.yaml is dev's platform settings with its Fargate tenant and the shard list; the shard files
    hold dev's other tenants."""
    dev = DEV
    split = safe_load((ROOT / "Pulumi.dev-shards.yaml").read_text())["config"]
    assert split.pop("agent-platform:tenantShards") == QUALIFIED
    assert split.pop("agent-platform:tenants") == KEPT
    assert split.pop("agent-platform:knownTenants") == [t["name"] for t in KEPT]
    owned = ("agent-platform:tenants", "agent-platform:tenantSecrets", "agent-platform:knownTenants")
    assert split == {k: v for k, v in dev.items() if k not in owned}
    assert {t["name"] for t in KEPT} | set(MOVED_TENANTS) == {t["name"] for t in DEV_TENANTS}
    assert shard_files() == sorted(DEV_SHARDS)
    by_name = {t["name"]: t for t in DEV_TENANTS}
    for stack, names in DEV_SHARDS.items():
        shard = safe_load((SHARDS / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert shard["agent-platform:tenants"] == [by_name[n] for n in names]
        assert shard["agent-platform:tenantSecrets"] == {n: dev["agent-platform:tenantSecrets"][n] for n in names}
        assert shard[f"{SHARD_PROJECT}:platformStack"] == "organization/agent-platform/dev-shards"
        assert shard["agent-platform:knownTenants"] == names


def test_split_has_the_single_stack_resources_by_urn_mapping(base: ProgramResult, split: Any) -> None:
    """Every resource of the single stack is in the platform (same URN) or in a shard (the URN with the shard's
    stack and project), with the same inputs: nothing is replaced. Only the key Jobs' plumbing differs."""
    platform, shards = split
    single = {tail(r.urn, "dev", PROJECT): r for r in base.registrations}
    kept = {tail(r.urn, "dev", PROJECT): r for r in platform.registrations}
    moved: dict[str, Any] = {}
    for stack, result in shards.items():
        moved.update({tail(r.urn, stack, SHARD_PROJECT): r for r in result.registrations})
    tenants = {tail(u, "dev", PROJECT) for u in tenant_tree(base) if dev_tenant(base, u) in MOVED_TENANTS}
    per_tenant = {
        u for u in single if any(u.endswith(m.format(t=n, a=SERVERS[n])) for m in MOVED for n in MOVED_TENANTS)
    }
    assert len(per_tenant) == 8
    assert set(kept) == set(single) - tenants - per_tenant
    for urn in set(kept) - SERVED:
        assert kept[urn].inputs == single[urn].inputs, urn
    assert tenants <= set(moved)
    for urn in tenants:
        assert moved[urn].inputs == single[urn].inputs, urn
        assert moved[urn].type == single[urn].type
    namespaces = [u for u in tenants if moved[u].type == "kubernetes:core/v1:Namespace"]
    volumes = [u for u in tenants if moved[u].type == "kubernetes:core/v1:PersistentVolumeClaim"]
    assert len(namespaces) == 2
    assert len(volumes) == 1


def test_moved_resources_keep_their_provider(base: ProgramResult, split: Any) -> None:
    """`pulumi state move` copies the platform's provider to the shard's root under its name; the shard's provider
    is that one (same name, same inputs), so no moved resource sees a provider change."""
    (provider,) = (r for r in base.registrations if r.type == "pulumi:providers:kubernetes")
    for stack, result in split[1].items():
        (own,) = (r for r in result.registrations if r.type == "pulumi:providers:kubernetes")
        # The mock monitor qualifies a root resource's type with the Stack's; the engine does not.
        assert tail(own.urn, stack, SHARD_PROJECT).removeprefix("pulumi:pulumi:Stack$") == (
            f"pulumi:providers:kubernetes::{provider.name}"
        )
        assert own.inputs == provider.inputs
        tree = tenant_tree(result)
        tenants = [r for r in result.registrations if r.urn in tree and r.type.startswith("kubernetes:")]
        assert tenants
        assert {r.provider for r in tenants} == {own.urn}


def test_the_platform_per_tenant_pieces_are_adopted_by_alias(split: Any) -> None:
    """Each key, key Job and proxy password the platform held is moved (root of the shard) and adopted by the
    shard's resource through an alias: the key and the proxy password keep their values, nothing re-registers."""
    for stack, result in split[1].items():
        for tenant in DEV_SHARDS[stack]:
            for pattern, component in MOVED.items():
                type_, name = pattern.format(t=tenant, a=SERVERS[tenant]).split("::")
                (resource,) = (
                    r
                    for r in result.registrations
                    if r.type == type_ and f"agent-platform:agents:{component}$" in r.urn
                )
                assert resource.name in (
                    f"{stack}-{tenant}",
                    f"{stack}-job-{tenant}",
                    f"{stack}-mcp-token-{tenant}-{SERVERS[tenant]}",
                )
                # noParent: the URN of a root resource in this stack and project, where the move puts it.
                assert {"spec": {"name": name, "noParent": True}} in resource.aliases


def test_the_proxy_serves_the_shard_tenants(base: ProgramResult, split: Any) -> None:
    """The platform's squid.conf with the tenants in shards is the single stack's (same users, same allowlists)."""

    def squid_conf(result: ProgramResult) -> str:
        (config,) = (r for r in result.of_type("kubernetes:core/v1:ConfigMap") if r.name == "egress-config")
        return config.inputs["data"]["squid.conf"]

    assert squid_conf(split[0]) == squid_conf(base)


def test_offline_references_answer_each_side() -> None:
    platform_side = references(ROOT, "dev-shards")
    assert sorted(platform_side) == QUALIFIED
    acme = platform_side[QUALIFIED[0]]
    assert acme["secretOutputNames"] == ["egressProxyUsers", "mcpTokens"]
    assert list(json.loads(acme["outputs"]["mcpServers"])) == ["acme"]
    assert acme["outputs"]["egressProxyUsers"].startswith("acme:$1$")
    assert list(json.loads(acme["outputs"]["egressAllowlists"])) == ["acme"]


def test_the_pack_judges_shard_resources_with_the_contract_facts(split: Any) -> None:
    """A shard's Deployment that points DNS into the service CIDR named by the contract is refused by the pack."""
    result = copy.deepcopy(split[1]["dev-a"])
    (deployment,) = (d for d in result.of_type("kubernetes:apps/v1:Deployment") if d.name == "acme-hermes")
    pod = deployment.properties["spec"]["template"]["spec"]
    pod["dnsConfig"]["nameservers"] = ["172.20.0.10"]
    config = {"kata-dns": {"serviceCidrs": [split[0].outputs["tenantContract"]["settings"]["serviceCidr"]]}}
    violations = run_pack(ROOT / "policies", analyzer_resources(result), config)
    assert [v.urn for v in violations if v.enforcement_level == "mandatory"] == [deployment.urn]


# The Stack spec's JSON field names in pulumi/pulumi-kubernetes-operator operator/api/pulumi/shared/stack_types.go
# (commit 02c1d93946961afb109a26672cd26d3b0e89d774): StackSpec with the inlined GitSource, PrerequisiteRef,
# RequirementSpec, ResourceRef/SecretSelector.
OPERATOR_FIELDS = {
    "spec": {
        *("accessTokenSecret", "envs", "envRefs", "envSecrets", "backend", "stack", "config", "secrets", "secretsRef"),
        *("secretsProvider", "fluxSource", "programRef", "targets", "targetDependents", "prerequisites"),
        *("continueResyncOnCommitMatch", "refresh", "expectNoRefreshChanges", "destroyOnFinalize"),
        *("retryOnUpdateConflict", "useLocalStackOnly", "resyncFrequencySeconds", "serviceAccountName"),
        *("workspaceTemplate", "workspaceReclaimPolicy", "projectRepo", "gitAuthSecret", "gitAuth", "repoDir"),
        *("commit", "branch", "shallow"),
    },
    "prerequisite": {"name", "requirement"},
    "requirement": {"succeededWithinDuration"},
    "ref": {"type", "filesystem", "env", "secret", "literal"},
    "secret": {"namespace", "name", "key"},
}


def test_the_operator_stacks_are_current_and_use_upstream_fields() -> None:
    from tools.operator_stacks import OUT, render

    assert OUT.read_text() == render(), "run: python -m tools.operator_stacks"
    objects = safe_load_all(OUT.read_text())
    names = {o["metadata"]["name"] for o in objects}
    assert [o["spec"]["stack"] for o in objects] == [
        "organization/agent-platform/dev-shards",
        *(f"organization/{SHARD_PROJECT}/{s}" for s in DEV_SHARDS),
    ]
    for o in objects:
        assert (o["apiVersion"], o["kind"]) == ("pulumi.com/v1", "Stack")
        spec = o["spec"]
        assert set(spec) <= OPERATOR_FIELDS["spec"]
        for ref in spec["envRefs"].values():
            assert set(ref) <= OPERATOR_FIELDS["ref"]
            assert set(ref[ref["type"].lower()]) <= OPERATOR_FIELDS["secret"]
        for prerequisite in spec.get("prerequisites", []):
            assert set(prerequisite) <= OPERATOR_FIELDS["prerequisite"]
            assert set(prerequisite["requirement"]) <= OPERATOR_FIELDS["requirement"]
            assert prerequisite["name"] in names
        assert (spec["repoDir"] == "tenants") == (SHARD_PROJECT in spec["stack"])


@pytest.mark.parametrize(
    ("changed", "stacks"),
    [
        (["docs/shards.md", "README.md"], []),
        (["tenants/Pulumi.dev-a.yaml"], ["dev-shards", "tenants/dev-a"]),
        (["Pulumi.dev-shards.yaml"], ["dev-shards", "tenants/dev-a", "tenants/dev-b"]),
        (["Pulumi.prod.yaml", "docs/cloud.md"], ["prod"]),
        (["Pulumi.staging.yaml", "Pulumi.prod.yaml"], ["prod", "staging"]),
        (["tenants/Pulumi.new.yaml"], "every"),  # a shard not yet in the tree: its platform is unknown
        (["components/tenants/tenant.py"], "every"),
        (["Pulumi.yaml"], "every"),
        (["tenants/__main__.py"], "every"),
    ],
)
def test_ci_previews_only_the_stacks_a_change_touches(changed: list[str], stacks: Any) -> None:
    from tools.affected import affected, every_stack

    assert every_stack() == ["dev", "dev-shards", "prod", "staging", "tenants/dev-a", "tenants/dev-b"]
    assert affected(changed) == (every_stack() if stacks == "every" else stacks)


# ---------------------------------------------------------------------------------------------------
# MCP servers of shard tenants


def grants(result: ProgramResult) -> dict[str, dict[str, list[str]]]:
    """Each key Job's tenant -> the MCP servers its team and its key are granted (what the Job writes to LiteLLM)."""
    found = {}
    for job in result.of_type("kubernetes:batch/v1:Job"):
        if "agent-platform:agents:TenantKeys" not in job.urn:
            continue
        env = {e["name"]: e.get("value") for e in job.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
        team, key = json.loads(env["TEAM_SPEC"]), json.loads(env["KEY_SPEC"])
        found[team["metadata"]["tenant"]] = {
            "team": team["object_permission"]["mcp_servers"],
            "key": key["object_permission"]["mcp_servers"],
        }
    return found


def test_the_platform_registers_shard_servers_as_its_own(base: ProgramResult, split: Any) -> None:
    """The platform's LiteLLM registers both shards' servers closed (never open to all keys, never public), with
    their tokens read from the Secret only; each server is granted to its own tenant's team and key alone, so
    another tenant's key (globex's for acme's server, acme's for globex's) cannot reach it."""
    platform, shards = split
    (release,) = (r for r in platform.registrations if r.name == "gateway-litellm")
    servers = release.inputs["values"]["proxy_config"]["mcp_servers"]
    assert sorted(servers) == ["acme_kb_tools", "globex_crm_tools"]
    for name, entry in servers.items():
        assert entry["allow_all_keys"] is False
        assert entry["available_on_public_internet"] is False
        assert entry["auth_value"] == f"os.environ/MCP_TOKEN_{name.upper()}"
    env = {e["name"]: e for e in release.inputs["values"]["extraEnvVars"]}
    for name in servers:
        ref = env[f"MCP_TOKEN_{name.upper()}"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "litellm-mcp-tokens", "key": name}
    expected = {"acme": ["acme_kb_tools"], "globex": ["globex_crm_tools"]}
    by_shard = {**grants(shards["dev-a"]), **grants(shards["dev-b"])}
    assert by_shard == {t: {"team": s, "key": s} for t, s in expected.items()}
    assert {t: g for t, g in grants(base).items() if t in expected} == by_shard  # as in the single stack
    assert "acme_kb_tools" not in by_shard["globex"]["key"]
    assert "globex_crm_tools" not in by_shard["acme"]["team"]


def test_shard_mcp_tokens_stay_secret(split: Any) -> None:
    """A shard exports its servers' tokens only as a secret output; no token value is in any input or plain output
    on either side (the mocked RandomPassword result is rrrr..., the platform's offline token the placeholder)."""
    platform, shards = split
    for result in (platform, *shards.values()):
        text = json.dumps([r.inputs for r in result.registrations]) + json.dumps(result.outputs)
        assert "rrrrrrrrrrrrrrrr" not in text
        assert PLACEHOLDER not in text
    (tokens,) = (r for r in platform.registrations if r.name == "gateway-mcp-tokens")
    assert tokens.inputs["stringData"] == {"acme_kb_tools": MASK, "globex_crm_tools": MASK}
    for stack, result in shards.items():
        assert "mcpTokens" in result.secret_outputs
        assert "mcpServers" not in result.secret_outputs
        assert list(json.loads(result.outputs["mcpServers"])) == DEV_SHARDS[stack]


def test_a_shard_with_servers_needs_a_platform_that_registers_them() -> None:
    contract = {"version": "1.0", **{k: None for k in CONTRACT_KEYS if k not in ("version", "mcpServers")}}
    assert check_contract(contract) == contract  # a 1.0 platform still serves shards without servers
    check_mcp_registration(contract, {})
    with pytest.raises(pulumi.RunError, match=r"tenantContract 1.0 does not register shards' MCP servers \(a_b\)"):
        check_mcp_registration(contract, {"a_b": {}})
    check_mcp_registration({**contract, "mcpServers": True}, {"a_b": {}})


def test_two_servers_of_one_litellm_name_are_refused() -> None:
    assert flat_servers({"a": 1}, {"t": {"b": 2}}) == {"a": 1, "b": 2}
    with pytest.raises(pulumi.RunError, match="MCP server 'a_b_c' of tenant 'a' is registered twice"):
        flat_servers({"a_b_c": 1}, {"a": {"a_b_c": 2}})
