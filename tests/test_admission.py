"""Admission-time enforcement (components/admission/sandbox_admission.py) and its parity with the CrossGuard pack.

The ValidatingAdmissionPolicies are read from the program's registrations (as rendered for the dev
stack), their CEL is evaluated offline with cel-expr-python plus the Kubernetes IP/CIDR functions
(tests/kube_cel.py), and every case of the shared corpus (tests/sandbox_corpus.py) also goes through the
policy pack over gRPC, one pack process for the module. A case fails when either gate decides otherwise
than the corpus, or when the two gates disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agent_policies import POLICIES, RULES, SANDBOX_CHECKS
from agent_policies.common import IPV4_EMBEDDINGS as PACK_EMBEDDINGS
from agent_policies.common import service_networks as pack_service_networks

from components.admission.sandbox_admission import (
    DEDICATED_NODES_POLICY,
    GPU_NODES_POLICY,
    IPV4_EMBEDDINGS,
    KATA_DNS_POLICY,
    SANDBOX_POLICY,
    SANDBOX_VALIDATIONS,
    binding_specs,
    fargate_validations,
    sandbox_policy_spec,
    sandbox_validations,
    service_networks,
)
from components.config import ConfigError
from components.contracts.labels import GPU_TOLERATION
from components.contracts.namespaces import NODE_DAEMON_NAMESPACES
from components.tenants.fargate import profile_selectors
from components.tenants.tenant import PSA_LABELS
from tests import kube_cel
from tests.conftest import program_result
from tests.policy_cases import PACK_DIR, resource
from tests.sandbox_corpus import (
    ALLOWED_RUNTIME_CLASSES,
    CASES,
    DEDICATED_NAMESPACE,
    EVERY,
    FARGATE_NAMESPACE,
    GLOBEX,
    NAMESPACE_LABELS,
    PLAIN_NAMESPACE,
    SANDBOX_NAMESPACE,
    SANDBOX_NAMESPACES,
    SERVICE_CIDR,
    VPC_DNS,
    Case,
    build,
    dns,
    gpu_request,
    kata_spec,
    namespace,
    tolerating,
)
from tools.analyzer import PolicyPackProcess
from tools.program import ProgramResult, load_stack

VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
FARGATE_PROFILE = "aws:eks/fargateProfile:FargateProfile"
FARGATE_TENANT = next(t for t in load_stack("dev").tenants if t.fargate)  # the corpus' FARGATE_NAMESPACE
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


def rendered(result: ProgramResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """(policies, bindings) by name, as the program registers them."""
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in result.of_type(VAP)}
    bindings = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in result.of_type(BINDING)}
    return policies, bindings


@pytest.fixture(scope="module")
def gates() -> tuple[dict[str, Any], dict[str, Any]]:
    return rendered(program_result("dev"))


def admit(gates: tuple[dict[str, Any], dict[str, Any]], case: Case) -> kube_cel.Decision:
    policies, bindings = gates
    return kube_cel.admit(policies, bindings, case.object(), namespace(case.namespace))


# --- the rendered policies --------------------------------------------------------------------------


def test_policies_and_bindings_are_first_class_resources(each_stack: ProgramResult) -> None:
    policies, bindings = rendered(each_stack)
    assert set(policies) == {SANDBOX_POLICY, KATA_DNS_POLICY, DEDICATED_NODES_POLICY, GPU_NODES_POLICY}
    assert set(bindings) == {
        f"{SANDBOX_POLICY}-namespaces",
        f"{SANDBOX_POLICY}-labelled",
        KATA_DNS_POLICY,
        DEDICATED_NODES_POLICY,
        GPU_NODES_POLICY,
    }
    for spec in policies.values():
        assert spec["failurePolicy"] == "Fail"
        assert "paramKind" not in spec
    for spec in bindings.values():
        assert spec["validationActions"] == ["Deny"]
        assert "paramRef" not in spec
    component = each_stack.of_type("agent-platform:admission:SandboxAdmission")
    assert len(component) == 1
    urn = component[0].urn
    assert {r.parent for r in each_stack.of_type(VAP) + each_stack.of_type(BINDING)} == {urn}
    # In the cluster, through the cluster's provider.
    cluster_provider = {r.provider for r in each_stack.registrations if r.type == "kubernetes:core/v1:Namespace"}
    assert {r.provider for r in each_stack.of_type(VAP)} <= cluster_provider


def test_values_come_from_the_stack_config(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The corpus' assumptions hold for the rendered dev policies."""
    policies, bindings = gates
    runtime = policies[SANDBOX_POLICY]["validations"][0]["expression"]
    assert runtime.endswith('in ["kata-clh", "kata-qemu"]))')
    assert ALLOWED_RUNTIME_CLASSES == ("kata-clh", "kata-qemu")
    expressions = " ".join(v["expression"] for v in policies[KATA_DNS_POLICY]["validations"])
    assert f'cidr("{SERVICE_CIDR}").containsIP(ip(n))' in expressions
    assert VPC_DNS in policies[KATA_DNS_POLICY]["validations"][0]["message"]
    assert FARGATE_TENANT.namespace == FARGATE_NAMESPACE
    fargate = next(v for v in policies[SANDBOX_POLICY]["variables"] if v["name"] == "fargateNamespace")
    assert fargate["expression"] == f'request.namespace in ["{FARGATE_NAMESPACE}"]'
    namespaces = bindings[f"{SANDBOX_POLICY}-namespaces"]["matchResources"]["namespaceSelector"]
    assert namespaces == {"matchLabels": {"agent-platform.io/sandbox": "true"}}


def test_other_runtime_classes_and_cidrs_follow_the_config() -> None:
    result = program_result(
        "dev",
        {
            "agent-platform:gvisor": True,
            "agent-platform:kataFirecracker": True,
            "agent-platform:serviceCidr": "10.200.0.0/16",
        },
    )
    policies, bindings = rendered(result)
    assert policies[SANDBOX_POLICY]["validations"][0]["expression"].endswith(
        'in ["kata-clh", "kata-qemu", "kata-fc", "gvisor"]))'
    )
    gvisor = build("Pod", kata_spec(runtimeClassName="gvisor", dnsPolicy="ClusterFirst"), SANDBOX_NAMESPACE, True)
    assert kube_cel.admit(policies, bindings, gvisor, namespace(SANDBOX_NAMESPACE)).allowed  # not Kata: no DNS rule
    old_cidr = build("Pod", kata_spec(runtimeClassName="kata-fc", **dns("172.20.0.10")), SANDBOX_NAMESPACE, True)
    assert kube_cel.admit(policies, bindings, old_cidr, namespace(SANDBOX_NAMESPACE)).allowed
    new_cidr = build("Pod", kata_spec(**dns("10.200.0.10")), SANDBOX_NAMESPACE, True)
    assert not kube_cel.admit(policies, bindings, new_cidr, namespace(SANDBOX_NAMESPACE)).allowed


def test_audit_mode_records_and_warns_without_denying() -> None:
    policies, bindings = rendered(program_result("dev", {"agent-platform:admissionMode": "Audit"}))
    assert {tuple(b["validationActions"]) for b in bindings.values()} == {("Audit", "Warn")}
    runc = build("Deployment", kata_spec(runtimeClassName="runc"), SANDBOX_NAMESPACE, True)
    decision = kube_cel.admit(policies, bindings, runc, namespace(SANDBOX_NAMESPACE))
    assert decision.allowed
    assert decision.warnings == decision.audits
    assert len(decision.warnings) == 1


def test_admission_specs_refuse_unknown_modes() -> None:
    with pytest.raises(ValueError, match="admission mode must be one of"):
        binding_specs("Warn")
    with pytest.raises(ValueError, match="at least one allowed runtime class"):
        sandbox_policy_spec(())
    assert issubclass(ConfigError, ValueError)


# --- the shared corpus: admission as the corpus expects -------------------------------------------


def test_corpus_is_broad() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) >= 120
    assert {case.kind for case in CASES} == set(kube_cel.RESOURCES)
    assert {True, False} == {case.allowed for case in CASES}
    assert {case.namespace for case in CASES} == set(NAMESPACE_LABELS)
    assert {case.labelled for case in CASES} == {True, False, "object", "template"}


def test_both_gates_answer_to_one_rule_list(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The rendered admission policies are exactly those the pack's rules name as their counterparts."""
    policies, _ = gates
    assert set(policies) == {name for rule in RULES for name in rule.admission}
    assert IPV4_EMBEDDINGS == PACK_EMBEDDINGS
    assert service_networks([SERVICE_CIDR]) == [str(n) for n, _, _ in pack_service_networks((SERVICE_CIDR,))]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_admission_decides_the_corpus(gates: tuple[dict[str, Any], dict[str, Any]], case: Case) -> None:
    decision = admit(gates, case)
    assert decision.allowed is case.allowed, decision.denials
    assert not any(message.startswith("evaluation error") for _, message in decision.denials), decision.denials


def test_corpus_exercises_every_validation(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Each rule of each policy is the reason for at least one denial in the corpus."""
    policies, _ = gates
    failed = {item for case in CASES for item in admit(gates, case).failed}
    expected = {(name, i) for name, spec in policies.items() for i in range(len(spec["validations"]))}
    assert failed == expected


def test_admission_has_every_sandbox_check() -> None:
    """agent-platform-sandbox validates each sandbox pod-spec check of the pack, in the pack's order, then the
    Fargate pod rules (the pack's stack rule fargate-sandbox-pods), and nothing else (a check left out of admission,
    or admission validations no check owns, fail here)."""
    assert list(SANDBOX_VALIDATIONS) == [check.rule for check in SANDBOX_CHECKS]
    for rule, validations in SANDBOX_VALIDATIONS.items():
        assert validations(ALLOWED_RUNTIME_CLASSES), rule
    checks = [v for _, v in sandbox_validations(ALLOWED_RUNTIME_CLASSES)]
    fargate = [{**v, "expression": f"!variables.sandbox || ({v['expression']})"} for v in fargate_validations()]
    assert checks + fargate == sandbox_policy_spec(ALLOWED_RUNTIME_CLASSES)["validations"]
    assert "fargate-sandbox-pods" in {rule.name for rule in RULES if SANDBOX_POLICY in rule.admission}


# --- the shared corpus: the pack agrees -----------------------------------------------------------


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    """One pack process for the corpus, configured like the rendered policies: each policy gets the settings its
    schema knows."""
    settings = {
        "sandboxNamespaces": list(SANDBOX_NAMESPACES),
        "allowedRuntimeClasses": list(ALLOWED_RUNTIME_CLASSES),
        "serviceCidrs": [SERVICE_CIDR],
    }
    config = {
        policy.name: {key: value for key, value in settings.items() if key in policy.config_schema.properties}
        for policy in POLICIES
    }
    with PolicyPackProcess(PACK_DIR, config, project="agent-platform", stack="test") as process:
        process.configure()
        process.configure_stack()
        yield process


# The pack's policies that report a rule the admission policies mirror (the others judge what admission does not).
MIRRORED = {rule.policy.name for rule in RULES if rule.admission}


@pytest.fixture(scope="module")
def pack_denials(pack: PolicyPackProcess) -> dict[str, list[str]]:
    """Every case through the pack at once: Analyze of each object, then one AnalyzeStack of all of them with the
    corpus' Namespaces (the stack rules need their labels); each case under its own name, judged on its own."""
    workloads = {
        case.id: resource(case.resource_type, case.id.lower(), case.object(name=case.id.lower())) for case in CASES
    }
    namespaces = [resource("kubernetes:core/v1:Namespace", f"ns-{name}", namespace(name)) for name in NAMESPACE_LABELS]
    # The Fargate tenant's profile, as the program declares it: what binds FARGATE_NAMESPACE at deploy time.
    profile = resource(FARGATE_PROFILE, "initech-fargate-profile", {"selectors": profile_selectors(FARGATE_TENANT)})
    stack = [*namespaces, profile, *workloads.values()]
    violations = pack.analyze_many(workloads.values()) + pack.analyze_stack(stack)
    case_of = {r.urn: case_id for case_id, r in workloads.items()}
    denials: dict[str, list[str]] = {case.id: [] for case in CASES}
    for v in violations:
        if v.enforcement_level == "mandatory" and v.policy in MIRRORED:
            denials[case_of[v.urn]].append(f"{v.policy}: {v.message}")
    return denials


def test_corpus_exercises_every_mirrored_policy(pack_denials: dict[str, list[str]]) -> None:
    """Each of the pack's policies with an admission counterpart denies some case of the corpus (a sandbox check
    without corpus cases fails here)."""
    denied = {message.split(":", 1)[0] for messages in pack_denials.values() for message in messages}
    assert denied == MIRRORED


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_pack_agrees_with_admission(
    gates: tuple[dict[str, Any], dict[str, Any]], pack_denials: dict[str, list[str]], case: Case
) -> None:
    pack_denies = pack_denials[case.id]
    admission_denies = [message for _, message in admit(gates, case).denials]
    assert bool(pack_denies) == bool(admission_denies), f"pack: {pack_denies}; admission: {admission_denies}"
    assert bool(pack_denies) is not case.allowed


# --- messages name the field and the fix ----------------------------------------------------------


def _messages(
    gates: tuple[dict[str, Any], dict[str, Any]], kind: str, spec: dict[str, Any], **kwargs: Any
) -> list[str]:
    ns = kwargs.pop("namespace", SANDBOX_NAMESPACE)
    obj = build(kind, spec, ns, kwargs.pop("labelled", True), owner=kwargs.pop("owner", ""))
    decision = kube_cel.admit(*gates, obj, namespace(ns))
    return [message for _, message in decision.denials]


def test_dedicated_node_messages(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    (other,) = _messages(gates, "Deployment", tolerating(GLOBEX))
    assert other == (
        "remove the toleration (agent-platform.io/dedicated-tenant=globex) from spec.template.spec.tolerations; only "
        "pods in a namespace labelled agent-platform.io/tenant=<tenant> may run on the dedicated nodes of that tenant, "
        "and this namespace belongs to tenant a."
    )
    (plain,) = _messages(gates, "Pod", tolerating(GLOBEX), namespace=PLAIN_NAMESPACE, labelled=False)
    assert plain.endswith("and this namespace belongs to no tenant.")
    (every,) = _messages(gates, "DaemonSet", tolerating(EVERY), namespace=PLAIN_NAMESPACE, labelled=False)
    assert every.startswith("remove the tolerations with operator Exists from spec.template.spec.tolerations:")
    assert f"only node DaemonSets in {', '.join(sorted(NODE_DAEMON_NAMESPACES))} may" in every
    assert _messages(gates, "Deployment", tolerating(GLOBEX), namespace=DEDICATED_NAMESPACE) == []


def test_gpu_node_messages(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    why = (
        f"only model servers (namespace models) and node DaemonSets in {', '.join(sorted(NODE_DAEMON_NAMESPACES))} "
        "may run on GPU nodes"
    )
    (toleration,) = _messages(gates, "Deployment", tolerating(GPU_TOLERATION))
    assert (
        toleration == f"remove the tolerations of the nvidia.com/gpu taint from spec.template.spec.tolerations; {why}."
    )
    (request,) = _messages(gates, "Pod", gpu_request(init=True))
    assert request == (
        f"remove the nvidia.com/gpu request from spec.initContainers[agent]; {why} (a pod requesting nvidia.com/gpu is "
        "given a toleration of their taint)."
    )


def test_messages(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    assert _messages(gates, "Deployment", kata_spec(runtimeClassName="runc")) == [
        'set spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu instead of "runc"; sandbox pods '
        "(agent-platform.io/sandbox=true on the namespace, the object or its pod template) must run in a Kata "
        "Containers micro-VM."
    ]
    (missing,) = _messages(gates, "CronJob", kata_spec(runtimeClassName=None))
    assert missing.startswith("set spec.jobTemplate.spec.template.spec.runtimeClassName to one of kata-clh, kata-qemu;")
    (host,) = _messages(gates, "Sandbox", kata_spec(hostPID=True))
    assert host.startswith("remove spec.podTemplate.spec.hostPID (set it to false)")
    evil = {"name": "evil", "image": "b:1", "securityContext": {"privileged": True}}
    (privileged,) = _messages(gates, "Pod", kata_spec(ephemeralContainers=[evil]))
    assert privileged.startswith("set securityContext.privileged to false in spec.ephemeralContainers[evil];")
    (host_path,) = _messages(gates, "Job", kata_spec(volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    assert host_path.startswith("remove the hostPath volume root from spec.template.spec.volumes;")
    (cluster_dns,) = _messages(gates, "Pod", kata_spec(**dns(VPC_DNS, "172.20.0.10")))
    assert cluster_dns == (
        "replace nameserver 172.20.0.10 in spec.dnsConfig.nameservers with the VPC resolver 10.1.0.2 (the VPC CIDR "
        "base address + 2); it is inside the service CIDR 172.20.0.0/16 (or an IPv6 spelling of it: IPv4-compatible, "
        "IPv4-translated, NAT64 64:ff9b::/96, 6to4 2002::/16), which Kata pods cannot reach."
    )
    (nat64,) = _messages(gates, "Pod", kata_spec(**dns("64:ff9b::172.20.0.10")))
    assert nat64.startswith("replace nameserver 64:ff9b::172.20.0.10 in spec.dnsConfig.nameservers with the VPC")
    assert "NAT64 64:ff9b::/96, 6to4 2002::/16" in nat64
    (mapped,) = _messages(gates, "Pod", kata_spec(**dns("::ffff:172.20.0.10")))
    assert mapped.startswith("replace nameserver ::ffff:172.20.0.10 in spec.dnsConfig.nameservers with the VPC")
    assert "write the IPv4 address" in mapped
    policy, empty = _messages(gates, "Pod", kata_spec(dnsPolicy="Default", dnsConfig=None))
    assert policy.startswith('set spec.dnsPolicy to "None" instead of "Default" and list the VPC resolver 10.1.0.2')
    assert empty.startswith("add the VPC resolver 10.1.0.2 (the VPC CIDR base address + 2) to spec.dnsConfig")


def test_finishing_a_deletion_is_never_blocked(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """A pod that predates the policies must still lose its finalizers; a new one cannot use the escape."""
    obj = build("Pod", kata_spec(runtimeClassName="runc"), SANDBOX_NAMESPACE, True)
    obj["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    ns = namespace(SANDBOX_NAMESPACE)
    assert kube_cel.admit(*gates, obj, ns, operation="UPDATE").allowed
    assert not kube_cel.admit(*gates, obj, ns, operation="CREATE").allowed


def test_ephemeral_containers_subresource_is_checked(gates: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """kubectl debug adds containers through pods/ephemeralcontainers, an UPDATE of that subresource."""
    debug = {"name": "debugger", "image": "busybox:1", "securityContext": {"privileged": True}}
    obj = build("Pod", kata_spec(ephemeralContainers=[debug]), SANDBOX_NAMESPACE, True)
    decision = kube_cel.admit(*gates, obj, namespace(SANDBOX_NAMESPACE), "UPDATE", "ephemeralcontainers")
    assert [binding for binding, _ in decision.denials] == [f"{SANDBOX_POLICY}-namespaces"]


# --- the Kubernetes CEL functions the offline evaluator adds --------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("isIP('10.1.0.2')", True),
        ("isIP('fd00::1')", True),
        ("isIP('::ffff:10.1.0.2')", False),  # IPv4-mapped IPv6 is refused
        ("isIP('fe80::1%eth0')", False),  # zones are refused
        ("isIP('010.1.0.2')", False),  # leading zeros are refused
        ("isIP('10.1.0')", False),
        ("cidr('172.20.0.0/16').containsIP(ip('172.20.255.255'))", True),
        ("cidr('172.20.0.0/16').containsIP('172.21.0.0')", False),
        ("cidr('172.20.0.0/16').containsIP(ip('fd00::1'))", False),
    ],
)
def test_kubernetes_ip_library(expression: str, expected: bool) -> None:
    assert kube_cel.evaluate(expression, {}) is expected


def test_ip_of_a_mapped_address_is_an_error() -> None:
    with pytest.raises(kube_cel.CelError, match="IPv4-mapped"):
        kube_cel.evaluate("ip('::ffff:172.20.0.10')", {})


# --- Pod Security: tenant namespaces enforce restricted ------------------------------------------

_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(spec: dict[str, Any]) -> list[str]:  # noqa: C901 - one branch per upstream restricted check
    """Pod Security Standards "restricted" (baseline included) for one pod spec, after the checks of
    k8s.io/pod-security-admission/policy (latest): stricter on sysctls (none at all); the annotations
    (AppArmor) live in the pod metadata, not here."""
    problems = []
    pod_ctx = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(flag)
    for volume in spec.get("volumes") or []:
        if not set(volume) - {"name"} <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}")
    if pod_ctx.get("sysctls"):
        problems.append("sysctls")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    problems += _selinux_apparmor("pod", pod_ctx)
    for c in [*(spec.get("initContainers") or []), *spec["containers"], *(spec.get("ephemeralContainers") or [])]:
        ctx = c.get("securityContext") or {}
        name = c["name"]
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if any(port.get("hostPort") for port in c.get("ports") or []):
            problems.append(f"{name}: hostPort")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities.add")
        if ctx.get("procMount") not in (None, "Default"):
            problems.append(f"{name}: procMount")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{name}: hostProcess")
        problems += _selinux_apparmor(name, ctx)
        handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(c.get("lifecycle") or {}).get(h) for h in ("postStart", "preStop")]
        for handler in filter(None, handlers):
            if any((handler.get(kind) or {}).get("host") for kind in ("httpGet", "tcpSocket")):
                problems.append(f"{name}: probe or lifecycle host")
    return problems


def _selinux_apparmor(who: str, ctx: dict[str, Any]) -> list[str]:
    problems = []
    selinux = ctx.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in ("", "container_t", "container_init_t", "container_kvm_t"):
        problems.append(f"{who}: seLinuxOptions.type")
    if selinux.get("user") or selinux.get("role"):
        problems.append(f"{who}: seLinuxOptions user or role")
    if (ctx.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"{who}: appArmorProfile")
    return problems


def test_restricted_checker_catches_what_baseline_allows() -> None:
    assert "agent: allowPrivilegeEscalation must be false" in restricted_violations(kata_spec())
    assert "volume root" in restricted_violations(kata_spec(volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    probe = {"httpGet": {"host": "10.0.0.1", "port": 80}}
    spec = kata_spec(securityContext={"seLinuxOptions": {"type": "spc_t"}})
    spec["containers"][0]["readinessProbe"] = probe
    assert {"pod: seLinuxOptions.type", "agent: probe or lifecycle host"} <= set(restricted_violations(spec))


def test_tenant_namespaces_enforce_restricted_and_sandbox_pods_meet_it(each_stack: ProgramResult) -> None:
    assert PSA_LABELS["pod-security.kubernetes.io/enforce"] == "restricted"
    tenants = {
        r.inputs["metadata"]["name"]
        for r in each_stack.of_type("kubernetes:core/v1:Namespace")
        if r.inputs["metadata"]["labels"].get("agent-platform.io/sandbox") == "true"
    }
    assert tenants
    for r in each_stack.of_type("kubernetes:core/v1:Namespace"):
        if r.inputs["metadata"]["name"] in tenants:
            assert PSA_LABELS.items() <= r.inputs["metadata"]["labels"].items()
    templates = [
        (r.name, r.inputs["spec"]["template"]["spec"])
        for r in each_stack.of_type("kubernetes:apps/v1:Deployment")
        if r.inputs["metadata"]["namespace"] in tenants
    ] + [
        (r.name, r.inputs["spec"]["podTemplate"]["spec"])
        for r in each_stack.registrations
        if r.type.endswith(":SandboxTemplate")
    ]
    assert templates
    gates = rendered(each_stack)
    for name, spec in templates:
        assert restricted_violations(spec) == [], name
        if "runtimeClassName" in spec:
            obj = build("Pod", spec, SANDBOX_NAMESPACE, True)
            assert kube_cel.admit(*gates, obj, namespace(SANDBOX_NAMESPACE)).allowed, name
            continue
        # A Fargate tenant's pod, as the API server sees it after EKS' Fargate webhook: admitted in its namespace
        # only, with its labels (the tier label the profile selects).
        deployment = next(r for r in each_stack.of_type("kubernetes:apps/v1:Deployment") if r.name == name)
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        pod = build("Pod", {**spec, "schedulerName": "fargate-scheduler"}, FARGATE_NAMESPACE, True, pod_labels=labels)
        assert kube_cel.admit(*gates, pod, namespace(FARGATE_NAMESPACE)).allowed, name
        elsewhere = build(
            "Pod", {**spec, "schedulerName": "fargate-scheduler"}, SANDBOX_NAMESPACE, True, pod_labels=labels
        )
        assert not kube_cel.admit(*gates, elsewhere, namespace(SANDBOX_NAMESPACE)).allowed, name
