"""The pack as a whole: its rule list and metadata, the unmodified SDK, and every rule through the real
analyzer gRPC protocol (tools.analyzer.PolicyPackProcess, one process for the session: conftest.py)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from agent_policies import POLICIES, POLICY_PACK_NAME, RULES, SANDBOX_CHECKS
from agent_policies.pod_checks import SANDBOX_SCOPE
from agent_policies.runtime_class import sandbox_runtime_class
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from components.config.reader import safe_load
from tests.policies.builders import (
    AWS_LB,
    CROSS_ZONE,
    LB_ATTRIBUTES,
    LB_TYPE,
    NAMESPACE,
    ec2_node_class,
    launch_template,
    lb_service,
    namespace_resource,
    node_pool,
    node_stack,
    policy_levels,
    workload_resource,
)
from tests.policy_cases import KINDS, PACK_DIR, PATCH_KINDS, UNKNOWN, VPC_DNS, k8s, kata_spec, resource, secret, urn
from tests.tokens import LAUNCH_TEMPLATE, NODE_CLASS, NODE_GROUP, NODE_POOL, SERVICE
from tools.analyzer import PolicyPackError, PolicyPackProcess
from tools.program import ROOT

# --- the pack ---------------------------------------------------------------------------------


def test_pack_lists_every_rule_once() -> None:
    names = [p.name for p in POLICIES]
    assert names == list(dict.fromkeys(rule.policy.name for rule in RULES))
    assert all(check.policy in POLICIES for check in SANDBOX_CHECKS)
    for policy in POLICIES:
        assert policy.config_schema is not None, policy.name
        for key, spec in policy.config_schema.properties.items():
            assert "default" in spec, (policy.name, key)
            assert "description" in spec, (policy.name, key)


def _readme_rules() -> dict[str, str]:
    """Rule -> level column of the README's rules table."""
    readme = (PACK_DIR / "README.md").read_text()
    table = readme.split("| Rule (policy) | Level | Checks |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    return {row[0].split("`")[1]: row[1] for row in rows}


def test_one_rule_list() -> None:
    """The pack's policies, the README's table and the stack/level columns derive from agent_policies.RULES."""
    assert [rule.name for rule in RULES][: len(POLICIES)] == [p.name for p in POLICIES]
    assert len({rule.name for rule in RULES}) == len(RULES)
    table = _readme_rules()
    assert list(table) == [rule.name for rule in RULES]
    for rule in RULES:
        stack = isinstance(rule.policy, StackValidationPolicy)
        assert ("stack" in table[rule.name]) is stack, rule.name
        level = rule.policy.enforcement_level.value if rule.policy.enforcement_level else "mandatory"
        assert level in table[rule.name], rule.name
        if rule.name != rule.policy.name:
            assert f"reported as `{rule.policy.name}`" in (PACK_DIR / "README.md").read_text(), rule.name


def sandbox_scope_is_consistent(config: dict[str, Any]) -> bool:
    """The sandbox scope is set alike on every policy that judges sandboxes, or on none (the SDK gives a policy only its
    own config): a scope on some checks only would judge one pod by two scopes. The stack policy runs the checks with
    the settings their own policies have."""
    entry = {rule: v if isinstance(v := config.get(rule), dict) else {} for rule in [c.rule for c in SANDBOX_CHECKS]}
    stack = config.get("sandbox-namespace-runtime-class")
    stack = stack if isinstance(stack, dict) else {}
    scopes = [{key: e.get(key) for key in SANDBOX_SCOPE} for e in entry.values()]
    scopes.append({"sandboxNamespaces": stack.get("sandboxNamespaces"), "sandboxKinds": scopes[0]["sandboxKinds"]})
    same_checks = all(
        {key: stack.get(key) for key in c.config} == {key: entry[c.rule].get(key) for key in c.config}
        for c in SANDBOX_CHECKS
    )
    return all(scope == scopes[0] for scope in scopes) and same_checks


@pytest.mark.parametrize(
    ("edit", "consistent"),
    [
        ({}, True),
        (
            {rule: {"sandboxNamespaces": ["shared"]} for rule in ("sandbox-runtime-class", "sandbox-no-host-access")},
            False,
        ),
        ({"sandbox-runtime-class": {"allowedRuntimeClasses": ["kata-qemu"]}}, False),
    ],
)
def test_a_scope_on_some_sandbox_policies_only_is_refused(edit: dict[str, Any], consistent: bool) -> None:
    example = json.loads((PACK_DIR / "example-config.json").read_text())
    complete = {
        **example,
        **{c.rule: {**example.get(c.rule, {}), "sandboxNamespaces": ["shared"]} for c in SANDBOX_CHECKS},
    }
    complete["sandbox-namespace-runtime-class"] = {
        **example["sandbox-namespace-runtime-class"],
        "sandboxNamespaces": ["shared"],
    }
    assert sandbox_scope_is_consistent(complete)  # set everywhere alike
    assert sandbox_scope_is_consistent({**example, **edit}) is consistent


def test_example_config_fits_every_stack() -> None:
    """CI previews and deploys every stack with example-config.json: the kata-dns service CIDR is each stack's."""

    example = json.loads((PACK_DIR / "example-config.json").read_text())
    assert sandbox_scope_is_consistent(example)
    default = safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["agent-platform:serviceCidr"]["default"]
    for stack in ("dev", "staging", "prod"):
        config = safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert example["kata-dns"]["serviceCidrs"] == [config.get("agent-platform:serviceCidr", default)], stack


def test_main_only_builds_the_pack() -> None:
    source = (PACK_DIR / "__main__.py").read_text()
    assert "PolicyPack(" in source
    assert "def " not in source
    manifest = (PACK_DIR / "PulumiPolicy.yaml").read_text()
    assert "name: python" in manifest
    assert "virtualenv: venv" in manifest
    assert "version: 0.1.0" in manifest


def test_readme_documents_every_policy_and_key() -> None:
    readme = (PACK_DIR / "README.md").read_text()
    for policy in POLICIES:
        assert f"`{policy.name}`" in readme, policy.name
        for key in policy.config_schema.properties:
            assert f"`{key}`" in readme, (policy.name, key)
    assert (PACK_DIR / "pyproject.toml").exists()
    assert (PACK_DIR / "uv.lock").exists()


class _Untouchable(dict):  # type: ignore[type-arg]
    """Properties that fail the test when a validator reads them."""

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError(f"read {key!r}")

    def get(self, key: Any, default: Any = None) -> Any:  # noqa: ARG002 - dict.get's signature
        raise AssertionError(f"read {key!r}")


def test_validators_ignore_other_resource_types_without_reading_them() -> None:
    """Each resource policy declares its types (``common.applies_to``); its validator returns at once,
    without reading the properties, for every other type (the SDK calls it for every resource)."""
    from pulumi_policy import ResourceValidationArgs

    from tests.policy_cases import Outcome, _options

    types = {k.resource_type for k in KINDS} | {k.resource_type for k in PATCH_KINDS}
    types |= {"aws:s3/bucketV2:BucketV2", "aws:iam/role:Role", "aws:ec2/securityGroup:SecurityGroup"}
    types |= {SERVICE, NAMESPACE, LAUNCH_TEMPLATE, NODE_GROUP, AWS_LB, NODE_POOL, NODE_CLASS}
    types |= {"aws:alb/loadBalancer:LoadBalancer", "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:PodTemplate"}
    types |= {"kubernetes:core/v1:ReplicationController", "kubernetes:extensions/v1beta1:Deployment", "x:y:Z"}
    types |= {"kubernetes:core/v1:ConfigMapPatch", "kubernetes:core/v1:ServicePatch", "pulumi:providers:kubernetes"}
    types |= {"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:yaml/v2:ConfigFile"}
    declared = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
    assert all(callable(getattr(p, "applies_to", None)) for p in declared)
    for policy in declared:
        skipped = sorted(t for t in types if not policy.applies_to(t))
        assert skipped, policy.name
        assert len(skipped) < len(types), policy.name
        outcome = Outcome()
        for resource_type in skipped:
            args = ResourceValidationArgs(resource_type, _Untouchable(), "urn", "n", _options(), None, {})
            policy.validate(args, outcome.report)
        assert outcome.messages == [], policy.name


# --- through the analyzer gRPC protocol -------------------------------------------------------


def test_grpc_info(pack: PolicyPackProcess) -> None:
    assert pack.info.name == POLICY_PACK_NAME
    assert [p.name for p in pack.info.policies] == [p.name for p in POLICIES]
    assert pack.plugin_version()


BAD_SPEC = kata_spec(
    runtimeClassName=None,
    dnsPolicy="ClusterFirst",
    hostPID=True,
)


def test_grpc_resource_rules_violating_and_compliant(pack: PolicyPackProcess) -> None:
    deployment = KINDS[1]
    spec = {k: v for k, v in BAD_SPEC.items() if v is not None}
    bad = pack.analyze(workload_resource(deployment, spec))
    assert {(v.policy, v.enforcement_level) for v in bad} == {
        ("sandbox-runtime-class", "mandatory"),
        ("sandbox-no-host-access", "mandatory"),
    }
    assert all(v.urn == urn(deployment.resource_type, "hermes") for v in bad)
    runtime = next(v for v in bad if v.policy == "sandbox-runtime-class")
    assert runtime.message.splitlines()[-1] == (
        "Deployment tenant-a/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."
    )
    assert runtime.message.startswith(sandbox_runtime_class.description)

    clh = kata_spec(
        runtimeClassName="kata-clh",
        dnsPolicy="ClusterFirst",
        initContainers=[{"name": "init"}],
    )
    levels = policy_levels(pack.analyze(workload_resource(KINDS[8], clh)))
    assert levels == {"kata-dns": "mandatory", "kata-clh-no-init-containers": "advisory"}

    nlb = resource(SERVICE, "litellm", lb_service({LB_TYPE: "external"}))
    assert policy_levels(pack.analyze(nlb)) == {"nlb-cross-zone": "mandatory"}
    lt = resource(LAUNCH_TEMPLATE, "kata-lt", launch_template(instanceType="m7i.large"))
    assert policy_levels(pack.analyze(lt)) == {"nested-virtualization-nodes": "mandatory"}

    compliant = [workload_resource(kind, kata_spec(), name=f"ok-{i}") for i, kind in enumerate(KINDS)] + [
        workload_resource(KINDS[1], {"containers": [{"name": "web"}]}, sandbox=False, name="web"),
        resource(SERVICE, "ok-nlb", lb_service({LB_TYPE: "external", **CROSS_ZONE})),
        resource(SERVICE, "ok-cip", lb_service({}, spec_type="ClusterIP")),
        resource(AWS_LB, "alb", {"loadBalancerType": "application"}),
        resource(LAUNCH_TEMPLATE, "ok-lt", launch_template()),
    ]
    assert pack.analyze_many(compliant) == []
    assert pack.analyze_stack(compliant) == []


def test_grpc_stack_rules_violating_and_compliant(pack: PolicyPackProcess) -> None:
    deployment = KINDS[1]
    bad_workload = workload_resource(deployment, {"containers": []}, sandbox=False, name="plain")
    nodes, group = node_stack(["m8i.large", "m5.large"])
    stack = [namespace_resource("tenant-a", True), bad_workload, *nodes, node_pool(), ec2_node_class(nested="disabled")]
    violations = pack.analyze_stack(stack)
    assert sorted((v.policy, v.urn) for v in violations) == sorted(
        [
            ("sandbox-namespace-runtime-class", bad_workload.urn),
            ("sandbox-egress-allowlist", urn(NAMESPACE, "tenant-a")),  # no default-deny egress policy
            ("kata-node-capacity", group.urn),
            ("kata-node-capacity", urn(NODE_POOL, "kata-pool")),
        ]
    )
    assert all(v.enforcement_level == "mandatory" for v in violations)

    good_nodes, _ = node_stack(["m8i.large"])
    deny_egress = k8s(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "deny",
        {"podSelector": {}, "policyTypes": ["Egress"]},
        namespace="tenant-a",
    )
    good = [
        namespace_resource("tenant-a", True),
        resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", "deny", deny_egress),
        workload_resource(deployment, kata_spec(), sandbox=False, name="plain"),
        *good_nodes,
        node_pool(families=["m8i"]),
        ec2_node_class(),
    ]
    assert pack.analyze_stack(good) == []


def test_grpc_enforcement_level_overrides(pack: PolicyPackProcess, reconfigure: Any) -> None:
    bad = workload_resource(KINDS[1], {k: v for k, v in BAD_SPEC.items() if v is not None})
    reconfigure({"sandbox-runtime-class": "advisory", "sandbox-no-host-access": {"enforcementLevel": "disabled"}})
    assert policy_levels(pack.analyze(bad)) == {"sandbox-runtime-class": "advisory"}
    reconfigure({"all": "advisory"})
    assert policy_levels(pack.analyze(bad)) == {
        "sandbox-runtime-class": "advisory",
        "sandbox-no-host-access": "advisory",
    }
    # A policy's own level wins over "all", as with --policy-pack-config.
    reconfigure({"all": "disabled", "sandbox-no-host-access": "mandatory"})
    assert policy_levels(pack.analyze(bad)) == {"sandbox-no-host-access": "mandatory"}
    stack = [namespace_resource("tenant-a", True), workload_resource(KINDS[1], {}, sandbox=False, name="p")]
    assert pack.analyze_stack(stack) == []
    reconfigure({"kata-clh-no-init-containers": "mandatory"})
    clh = workload_resource(KINDS[0], kata_spec(runtimeClassName="kata-clh", initContainers=[{"name": "i"}]))
    assert policy_levels(pack.analyze(clh)) == {"kata-clh-no-init-containers": "mandatory"}


def test_grpc_config_schema_defaults_are_applied(pack: PolicyPackProcess, reconfigure: Any) -> None:
    config = pack.policy_config()
    assert config["sandbox-runtime-class"] == (
        "mandatory",
        {
            "allowedRuntimeClasses": ["kata-clh", "kata-qemu", "kata-fc"],
            "sandboxNamespaces": [],
            "sandboxKinds": [],
            "fargateNamespaces": [],
        },
    )
    assert config["kata-clh-no-init-containers"][0] == "advisory"
    # Only sandboxNamespaces is given: allowedRuntimeClasses still comes from the defaults.
    reconfigure({"sandbox-runtime-class": {"sandboxNamespaces": ["tenant-x"]}})
    plain = workload_resource(KINDS[1], {"containers": []}, sandbox=False, namespace="tenant-x")
    (violation,) = pack.analyze(plain)
    assert violation.message.endswith(
        "Deployment tenant-x/hermes: set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu, kata-fc."
    )
    reconfigure({"kata-dns": {"serviceCidrs": ["10.1.0.0/16"]}})
    kata = workload_resource(KINDS[1], kata_spec())
    assert policy_levels(pack.analyze(kata)) == {"kata-dns": "mandatory"}


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"kata-dns": {"serviceCidrs": "10.100.0.0/16"}}, "policy 'kata-dns'"),
        ({"kata-dns": {"serviceCidrs": ["not a cidr"]}}, "policy 'kata-dns'"),
        ({"sandbox-runtime-class": {"allowedRuntimeClasses": []}}, "policy 'sandbox-runtime-class'"),
        ({"nested-virtualization-nodes": {"requireImdsv2": "yes"}}, "policy 'nested-virtualization-nodes'"),
        ({"kata-dns": "strict"}, "not a valid enforcement level"),
        ({"kata-dns": {"enforcementLevel": "loud"}}, "not a valid enforcement level"),
        ({"no-such-policy": "advisory"}, "'no-such-policy' is not in the pack"),
        ({"kata-dns": 3}, "use a string or an object"),
    ],
)
def test_grpc_bad_config_is_rejected(pack: PolicyPackProcess, config: dict[str, Any], error: str) -> None:
    pack.config = config
    try:
        with pytest.raises(ValueError, match=error.replace("(", r"\(")):
            pack.configure()
    finally:
        pack.config = {}


def test_grpc_unknown_values_do_not_crash(pack: PolicyPackProcess) -> None:
    everything_unknown = [
        resource(kind.resource_type, f"u-{i}", {"metadata": UNKNOWN, "spec": UNKNOWN}) for i, kind in enumerate(KINDS)
    ]
    unknown_runtime = workload_resource(KINDS[1], kata_spec(runtimeClassName=UNKNOWN), name="u")
    unknown_service = resource(SERVICE, "u-svc", lb_service({LB_TYPE: "external", LB_ATTRIBUTES: UNKNOWN}))
    resources = [*everything_unknown, unknown_runtime, unknown_service]
    violations = pack.analyze_many(resources) + pack.analyze_stack(resources)
    assert violations, "unknowns are reported as advisory notes"
    assert {v.enforcement_level for v in violations} == {"advisory"}
    assert all("can't be known during preview" in v.message for v in violations)
    # The pack is still alive and correct afterwards.
    assert pack.analyze(resource(SERVICE, "after", lb_service({LB_TYPE: "external", **CROSS_ZONE}))) == []


def test_grpc_secrets(pack: PolicyPackProcess) -> None:
    spec = kata_spec(runtimeClassName=secret("kata-clh"), dnsConfig=secret({"nameservers": [VPC_DNS]}))
    assert pack.analyze(workload_resource(KINDS[2], spec)) == []
    spec["dnsConfig"] = secret({"nameservers": ["172.20.0.10"]})
    (violation,) = pack.analyze(workload_resource(KINDS[2], spec))
    assert violation.policy == "kata-dns"
    assert "172.20.0.10" in violation.message
    lt = resource(LAUNCH_TEMPLATE, "s-lt", launch_template(metadataOptions=secret({"httpTokens": "required"})))
    assert pack.analyze(lt) == []


def test_grpc_analyze_many_keeps_input_order(pack: PolicyPackProcess) -> None:
    resources = [workload_resource(KINDS[i % len(KINDS)], {"containers": []}, name=f"w{i}") for i in range(40)]
    sequential = [v for r in resources for v in pack.analyze(r)]
    assert pack.analyze_many(resources, workers=8) == sequential
    assert [v.urn for v in sequential] == [r.urn for r in resources]


def test_broken_pack_fails_with_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text("raise RuntimeError('policy pack is broken')\n")
    with pytest.raises(PolicyPackError, match="policy pack is broken"):
        PolicyPackProcess(tmp_path, startup_timeout=20)
    with pytest.raises(PolicyPackError, match="not a Python policy pack"):
        PolicyPackProcess(tmp_path / "missing")


def test_example_config_is_valid(pack: PolicyPackProcess) -> None:
    pack.config = json.loads((PACK_DIR / "example-config.json").read_text())
    try:
        levels = pack.policy_config()
        assert levels["kata-clh-no-init-containers"][0] == "mandatory"
    finally:
        pack.config = {}


# --- the SDK runs unmodified ------------------------------------------------------------------

SNAPSHOT = """
import sys
sys.path.insert(0, {policies!r})
import asyncio, concurrent.futures, gc, inspect
import grpc, grpc._server
import pulumi_policy, pulumi_policy.deserialize, pulumi_policy.policy, pulumi_policy.proxy

MODULES = [asyncio, asyncio.events, concurrent.futures, grpc, grpc._server, pulumi_policy,
           pulumi_policy.deserialize, pulumi_policy.policy, pulumi_policy.proxy]


def snapshot():
    state = {{}}
    for module in MODULES:
        for key, value in vars(module).items():
            state[(module.__name__, key)] = id(value)
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    state[(module.__name__, key, attribute)] = id(member)
    state["gc"] = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    return state


before = snapshot()
import agent_policies
policies = agent_policies.all_policies()
after = snapshot()
changed = sorted(str(k) for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(len(policies), changed)
"""


def test_the_pack_patches_nothing(tmp_path: Path) -> None:
    """Importing the pack changes no attribute of pulumi-policy, grpc or asyncio, nor the GC settings."""
    import subprocess
    import sys

    script = tmp_path / "snapshot.py"
    script.write_text(SNAPSHOT.format(policies=str(PACK_DIR)))
    output = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert output.stdout.strip() == f"{len(POLICIES)} []", output.stdout + output.stderr
    for path in (PACK_DIR / "agent_policies").glob("*.py"):
        source = path.read_text()
        for needle in ("_PolicyAnalyzerServicer", "setattr(", "import grpc", "import asyncio", "import gc"):
            assert needle not in source, (path.name, needle)
    assert not any((PACK_DIR / "agent_policies").glob("sdk_*.py"))
    for project in (ROOT, PACK_DIR):  # the gate's SDK is pinned exactly, in the project and in its lock
        assert '"pulumi-policy==1.21.0"' in (project / "pyproject.toml").read_text(), project
        lock = tomllib.loads((project / "uv.lock").read_text())
        assert [p["version"] for p in lock["package"] if p["name"] == "pulumi-policy"] == ["1.21.0"], project
