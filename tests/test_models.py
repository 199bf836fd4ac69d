"""Self-hosted models (issue 24): the dev stack with examples/self-hosted-model.yaml (one vLLM model, scaled to zero,
granted to acme) and the CloudWatch add-on, as one program run; the typed config's refusals; the render checks of
the KEDA and device-plugin installs (vendored charts). The real vLLM server behind the real LiteLLM is
realtests/test_vllm_gateway.py (``make test-vllm``), with the route this program renders.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from components.config import PlatformConfig, SelfHostedModel, decode_raw
from components.config.models import MODEL_KEYS
from components.contracts.labels import GPU_NODE_SELECTOR, GPU_PRESENT_LABEL, GPU_RESOURCE, GPU_TAINT
from components.contracts.namespaces import MODELS_NAMESPACE
from components.models import vllm
from tests.configs import config_error, parse_config
from tests.conftest import program_result
from tests.test_dashboards import exported_series, metric_names
from tools.preview import kubernetes_version
from tools.program import ROOT, ProgramResult, Registration, config_file, stack_config
from tools.render import SHARED, RenderUnavailable, render_all
from tools.render_checks import Obj, Stack, build_stack, check_api_services, run_checks

EXAMPLE = config_file(ROOT / "examples" / "self-hosted-model.yaml")
OVERRIDES = {**EXAMPLE, "agent-platform:cloudWatchObservability": True}
MODEL = EXAMPLE["agent-platform:models"]["selfHosted"][0]
NAME = MODEL["name"]
SERVER = f"vllm-{NAME}"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
RELEASE = "kubernetes:helm.sh/v3:Release"
TENANTS = [{"name": t, "agents": [{"name": "hermes", "type": "hermes"}]} for t in ("acme", "globex")]


@pytest.fixture(scope="module")
def hosted() -> ProgramResult:
    return program_result("dev", OVERRIDES)


def one(result: ProgramResult, type_: str, name: str) -> Registration:
    return result.named(type_, name)


def server(result: ProgramResult) -> Registration:
    return one(result, DEPLOYMENT, f"models-{NAME}")


def key_job_body(result: ProgramResult, tenant: str, part: str) -> dict[str, Any]:
    """The team or key body (``part``: TEAM_SPEC / KEY_SPEC) the tenant's key Job posts to LiteLLM."""
    (job,) = [
        r
        for r in result.of_type("kubernetes:batch/v1:Job")
        if r.inputs["metadata"]["name"].startswith(f"litellm-key-{tenant}-")
    ]
    env = {e["name"]: e.get("value") for e in job.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    return json.loads(env[part])


# --- config: off by default, refusals name the key


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_is_bedrock_only_by_default(stack: str) -> None:
    config, _ = stack_config(stack)
    prefix = "agent-platform:"
    values = {k[len(prefix) :]: decode_raw(k[len(prefix) :], v) for k, v in config.items() if k.startswith(prefix)}
    cfg = PlatformConfig.from_dict(stack, config["aws:region"], values)
    assert not cfg.models.enabled
    assert cfg.models.gpu_limit == 0
    assert not cfg.cluster.cloudwatch_observability  # the CloudWatch add-on is opt-in too


def test_the_example_parses_with_its_grants() -> None:
    cfg = parse_config(**{k.split(":", 1)[1]: v for k, v in EXAMPLE.items()}, tenants=TENANTS)
    (model,) = cfg.models.self_hosted
    assert model.s3 == ("agents-dev-model-weights", "qwen2.5-0.5b-instruct")
    assert (model.min_replicas, model.max_replicas, model.gpus) == (0, 2, 1)
    assert cfg.tenant_models(cfg.tenants[0]) == ("claude", NAME)


def hosted_model(**changes: Any) -> dict[str, Any]:
    return {"vllmImage": "docker.io/vllm/vllm-openai:v0.32.0", "models": {"selfHosted": [{**MODEL, **changes}]}}


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"instanceFamilies": ["g6f"]}, "models.selfHosted[0].instanceFamilies[0]", "not an NVIDIA GPU family"),
        ({"instanceFamilies": ["c8i"]}, "models.selfHosted[0].instanceFamilies[0]", "not an NVIDIA GPU family"),
        ({"gpus": 3}, "models.selfHosted[0].gpus", "must be one of 1, 2, 4, 8"),
        ({"minReplicas": 3, "maxReplicas": 2}, "models.selfHosted[0].maxReplicas", "below minReplicas"),
        ({"outputCostPerToken": 0}, "models.selfHosted[0].outputCostPerToken", "records no spend"),
        ({"revision": "a" * 40}, "models.selfHosted[0].revision", "Hugging Face repositories only"),
        ({"model": "Qwen/Qwen2.5-0.5B-Instruct"}, "models.selfHosted[0].revision", "is required"),
        ({"model": "https://example.com/weights"}, "models.selfHosted[0].model", "neither s3://"),
        ({"name": "Qwen_Small"}, "models.selfHosted[0].name", "DNS label"),
        ({"tenants": ["nobody"]}, "models.selfHosted[0].tenants[0]", "not a tenant of this stack"),
        ({"name": "claude"}, "models.selfHosted[0].name", "also a bedrockModels name"),
    ],
)
def test_bad_models_fail_naming_the_key(changes: dict[str, Any], key: str, words: str) -> None:
    message = config_error(**hosted_model(**changes), tenants=TENANTS)
    assert message.startswith(f"agent-platform:{key}:"), message
    assert words in message


def test_a_model_needs_the_vllm_image() -> None:
    message = config_error(models=hosted_model()["models"], tenants=TENANTS)
    assert message.startswith("agent-platform:vllmImage: is required"), message


def test_a_tenant_may_list_only_models_granted_to_it() -> None:
    tenants = [TENANTS[0], {**TENANTS[1], "litellm": {"models": ["claude", NAME]}}]
    message = config_error(**hosted_model(), tenants=tenants)
    assert message.startswith("agent-platform:tenants[1].litellm.models:"), message
    assert "not granted to globex" in message


# --- the program: grants, routes, the server, scaling, weights


def test_keys_list_the_model_only_for_granted_tenants(hosted: ProgramResult) -> None:
    """LiteLLM reads an empty models list as every model: each team and key names its models, the self-hosted one
    only where granted."""
    assert MODEL["tenants"] == ["acme"]
    for part in ("TEAM_SPEC", "KEY_SPEC"):
        acme, globex = key_job_body(hosted, "acme", part), key_job_body(hosted, "globex", part)
        assert NAME in acme["models"]
        assert globex["models"]
        assert NAME not in globex["models"]


def test_the_gateway_routes_the_model_to_its_service_at_its_prices(hosted: ProgramResult) -> None:
    config = hosted.named(RELEASE, "gateway-litellm").plain["values"]["proxy_config"]
    (route,) = [m for m in config["model_list"] if m["model_name"] == NAME]
    service = one(hosted, "kubernetes:core/v1:Service", f"models-{NAME}-svc").inputs
    port = int(service["spec"]["ports"][0]["port"])  # the engine sends numbers as floats
    assert route["litellm_params"] == {
        "model": f"hosted_vllm/{NAME}",
        "api_base": f"http://{SERVER}.{MODELS_NAMESPACE}.svc.cluster.local:{port}/v1",
        "input_cost_per_token": MODEL["inputCostPerToken"],
        "output_cost_per_token": MODEL["outputCostPerToken"],
    }
    assert service["metadata"]["name"] == SERVER
    assert service["spec"]["selector"] == server(hosted).inputs["spec"]["selector"]["matchLabels"]


def test_the_server_runs_on_the_gpu_pool_only(hosted: ProgramResult) -> None:
    spec = server(hosted).inputs["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == GPU_NODE_SELECTOR
    assert [t["key"] for t in spec["tolerations"]] == [GPU_TAINT["key"]]
    (container,) = spec["containers"]
    assert container["resources"]["limits"][GPU_RESOURCE] == str(MODEL["gpus"])
    assert container["image"] == EXAMPLE["agent-platform:vllmImage"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    args = container["args"]
    assert args[args.index("--served-model-name") + 1] == NAME
    assert args[args.index("--model") + 1] == f"{vllm.WEIGHTS_DIR}/{NAME}"  # the init container's copy


def test_pulumi_leaves_replicas_to_keda(hosted: ProgramResult) -> None:
    """No spec.replicas (a create starts at 1; KEDA then owns the count) and spec.replicas ignored on update."""
    deployment = server(hosted)
    assert "replicas" not in deployment.inputs["spec"]
    assert "spec.replicas" in deployment.ignore_changes


def test_keda_scales_on_the_waiting_requests_from_zero(hosted: ProgramResult) -> None:
    spec = one(hosted, SCALED_OBJECT, f"models-{NAME}-scaler").inputs["spec"]
    assert spec["scaleTargetRef"]["name"] == server(hosted).inputs["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (MODEL["minReplicas"], MODEL["maxReplicas"])
    assert spec["cooldownPeriod"] >= 300  # scale to zero only after a quiet spell
    queue, wake = spec["triggers"]  # minReplicas 0: the gateway's requests wake a model at zero
    assert f'model_name="{NAME}"' in queue["metadata"]["query"]
    assert metric_names(queue["metadata"]["query"]) == {"vllm:num_requests_waiting"}
    assert queue["metadata"]["threshold"] == str(MODEL["waitingRequestsTarget"])
    assert float(wake["metadata"]["threshold"]) > 1000
    assert wake["metadata"]["activationThreshold"] == "0"
    exported = set().union(*exported_series().values())
    for trigger in spec["triggers"]:
        assert trigger["type"] == "prometheus"
        names = metric_names(trigger["metadata"]["query"])
        assert names, trigger
        assert names <= exported, trigger


def test_a_model_that_never_sleeps_has_no_wake_trigger() -> None:
    cfg = parse_config(**hosted_model(minReplicas=1), tenants=TENANTS)
    spec = vllm.scaled_object_spec(cfg.models.self_hosted[0])
    assert [t["name"] for t in spec["triggers"]] == ["waiting-requests"]
    assert spec["minReplicaCount"] == 1


def test_the_queue_alert_names_exported_metrics(hosted: ProgramResult) -> None:
    exported = set().union(*exported_series().values())
    rule = one(hosted, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "models-rules").inputs["spec"]
    (alert,) = rule["groups"][0]["rules"]
    assert alert["alert"] == "ModelQueueHighAtMaxReplicas"
    assert metric_names(alert["expr"]) <= exported
    assert "kube_horizontalpodautoscaler_spec_max_replicas" in alert["expr"]


def test_weights_come_from_s3_with_a_role_scoped_to_the_prefix(hosted: ProgramResult) -> None:
    bucket, prefix = MODEL["model"].removeprefix("s3://").split("/", 1)
    policy = json.loads(hosted.named("aws:iam/rolePolicy:RolePolicy", f"models-{NAME}-weights-policy").inputs["policy"])
    resources = {s["Sid"]: (s["Action"], s["Resource"], s.get("Condition")) for s in policy["Statement"]}
    assert resources == {
        "ListTheModelsPrefix": (
            "s3:ListBucket",
            f"arn:aws:s3:::{bucket}",
            {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        ),
        "ReadTheModelsWeights": ("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}/*", None),
    }
    association = hosted.named(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", f"models-{NAME}-weights-pod-identity"
    ).inputs
    assert (association["namespace"], association["serviceAccount"]) == (MODELS_NAMESPACE, SERVER)
    spec = server(hosted).inputs["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == SERVER
    (init,) = spec["initContainers"]
    assert f"s3://{bucket}/{prefix}/" in init["command"][-1]


def test_the_gpu_pool_is_tainted_labelled_and_bounded(hosted: ProgramResult) -> None:
    pool = hosted.named("kubernetes:karpenter.sh/v1:NodePool", "karpenter-gpu-nodepool").inputs["spec"]
    template = pool["template"]
    assert template["spec"]["taints"] == [GPU_TAINT]
    assert template["metadata"]["labels"] == {**GPU_NODE_SELECTOR, GPU_PRESENT_LABEL: "true"}
    families = next(r for r in template["spec"]["requirements"] if r["key"] == "karpenter.k8s.aws/instance-family")
    assert families["values"] == MODEL["instanceFamilies"]
    assert pool["limits"] == {GPU_RESOURCE: str(MODEL["gpus"] * (MODEL["maxReplicas"] + 1))}  # + a rollout surge
    node_class = hosted.named("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "karpenter-gpu-nodeclass").inputs["spec"]
    assert node_class["amiSelectorTerms"][0]["alias"].startswith("al2023@")  # the nvidia variant for GPU types
    (root,) = node_class["blockDeviceMappings"]
    assert root["rootVolume"]
    assert int(root["ebs"]["volumeSize"].removesuffix("Gi")) >= 100


def test_cloudwatch_observability_is_an_opt_in_addon_with_pod_identity(hosted: ProgramResult) -> None:
    addon = next(
        r.inputs
        for r in hosted.of_type("aws:eks/addon:Addon")
        if r.inputs["addonName"] == "amazon-cloudwatch-observability"
    )
    assert addon["podIdentityAssociations"][0]["serviceAccount"] == "cloudwatch-agent"


# --- renders (vendored keda-2.20.2 and nvidia-device-plugin-0.20.0)


@pytest.fixture(scope="module")
def rendered(hosted: ProgramResult) -> list[Any]:
    if not (SHARED / "charts").is_dir():
        pytest.skip(f"vendored charts not present at {SHARED}")
    try:
        return render_all(hosted, kubernetes_version(hosted))
    except RenderUnavailable as reason:
        pytest.skip(str(reason))


def test_the_gpu_tier_renders_and_checks_clean(hosted: ProgramResult, rendered: list[Any]) -> None:
    assert {r.install.name for r in rendered} >= {"keda", "nvidia-device-plugin"}
    assert [str(f) for f in run_checks(hosted, rendered, kubernetes_version(hosted))] == []


def test_the_device_plugin_schedules_on_gpu_nodes_only(rendered: list[Any]) -> None:
    """Its default affinity needs nvidia.com/gpu.present=true (no Node Feature Discovery here): the GPU pool's
    nodes carry it, and the taint is tolerated."""
    (daemonset,) = [
        o
        for r in rendered
        if r.install.name == "nvidia-device-plugin"
        for o in r.objects
        if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "nvidia-device-plugin"  # not its MPS daemon
    ]
    spec = daemonset["spec"]["template"]["spec"]
    node = {**GPU_NODE_SELECTOR, GPU_PRESENT_LABEL: "true"}
    assert all(node.get(k) == v for k, v in spec["nodeSelector"].items())
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert any(
        all(e["operator"] == "In" and node.get(e["key"]) in e["values"] for e in term["matchExpressions"])
        for term in terms
    )
    assert any(t.get("key") == GPU_TAINT["key"] and t.get("operator") == "Exists" for t in spec["tolerations"])


def test_keda_alone_claims_the_external_metrics_api(hosted: ProgramResult, rendered: list[Any]) -> None:
    stack = build_stack(hosted, rendered)
    claims = [o for o in stack.objects if o.kind == "APIService" and o.name == "v1beta1.external.metrics.k8s.io"]
    assert [o.origin for o in claims] == ["helm keda"]
    assert list(check_api_services(stack)) == []
    rival = Obj("helm prometheus-adapter", {**claims[0].body}, "")
    (finding,) = check_api_services(Stack([*stack.objects, rival]))
    assert "claimed by 2 installs" in finding.message


def test_the_pack_uses_the_platforms_gpu_names() -> None:
    from agent_policies import gpu_nodes

    from components.contracts import labels

    assert gpu_nodes.GPU_RESOURCE == GPU_RESOURCE == GPU_TAINT["key"]
    assert (GPU_TAINT["value"], GPU_TAINT["effect"]) == (gpu_nodes.GPU_TAINT_VALUE, gpu_nodes.GPU_TAINT_EFFECT)
    assert gpu_nodes.MODEL_NAMESPACES == (MODELS_NAMESPACE,)
    assert gpu_nodes.GPU_ONLY_LABEL_PREFIX == labels.GPU_ONLY_LABEL_PREFIX
    assert gpu_nodes.GPU_ONLY_LABELS == labels.GPU_ONLY_LABELS
    assert gpu_nodes.GPU_NODE_VALUES == labels.GPU_NODE_VALUES
    # what the GPU pool's nodes carry is what the rule calls selecting them
    node = {**GPU_NODE_SELECTOR, GPU_PRESENT_LABEL: "true", "karpenter.sh/nodepool": "gpu"}
    assert all(gpu_nodes.selects_gpu_nodes(k, "In", [v]) for k, v in node.items())


def test_the_docs_table_is_the_model_keys() -> None:
    """docs/models.md#model-keys lists the declared keys of a models.selfHosted[] entry (MODEL_KEYS), and every
    declared key is a field of SelfHostedModel."""
    expected = [f"| `models.selfHosted[].{k.name}` | {k.kind} | {k.default_doc} | {k.doc} |" for k in MODEL_KEYS]
    text = (ROOT / "docs" / "models.md").read_text().split("### Model keys", 1)[1]
    assert [line for line in text.splitlines() if line.startswith("| `models.")] == expected
    assert {f.name for f in dataclasses.fields(SelfHostedModel)} == {k.attr for k in MODEL_KEYS}


def test_an_undeclared_model_key_is_refused_with_the_nearest_declared_one() -> None:
    message = config_error(**hosted_model(maxReplica=2), tenants=TENANTS)
    assert message.startswith(
        "agent-platform:models.selfHosted[0].maxReplica: unknown key; did you mean 'maxReplicas'?"
    )
