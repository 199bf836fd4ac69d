"""Policy pack throughput through the analyzer gRPC protocol.

    python -m tools.bench_policy [--count 10000] [--workers 4] [--repeat 5] [--baseline]
                                 [--encode-in-clock] [--profile]

Generates a mixed stack (workloads of every kind, Services, Namespaces, launch templates,
node groups, Karpenter NodePools/EC2NodeClasses and unrelated AWS resources; about one in
eight violates a rule), starts the pack like the CLI does, configures it, sends one
AnalyzeRequest per resource over gRPC (``workers`` calls in flight) and then one
AnalyzeStackRequest with all resources, and prints resources per second (median of the
runs). Every resource goes through every policy; the violations must be the same in every
run.

The requests are serialized to protobuf bytes before the clock starts and sent as bytes:
that is the CLI's work (in Go), not the pack's. ``--encode-in-clock`` times it too.
Figures measured with it are kept in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.analyzer import (
    UNKNOWN,
    AnalyzerResource,
    EncodedPreview,
    PolicyPackProcess,
    Violation,
    encode_preview,
    secret,
)
from tools.policy_fixtures import KINDS, PACK_DIR, PROJECT, SANDBOX_LABEL, urn
from tools.policy_fixtures import workload as fixture_workload

STACK = "bench"
K8S_PROVIDER = urn("pulumi:providers:kubernetes", "default", STACK)
AWS_PROVIDER = urn("pulumi:providers:aws", "default", STACK)


def _resource(
    resource_type: str, name: str, props: dict[str, Any], provider_urn: str, **links: Any
) -> AnalyzerResource:
    return AnalyzerResource(
        resource_type, urn(resource_type, name, STACK), name, props, provider_urn=provider_urn, **links
    )


def pod_spec(rng: random.Random, sandbox: bool, bad: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "agent",
        "image": "nousresearch/hermes-agent:v2026.11.1",
        "args": ["gateway", "run"],
        "ports": [{"containerPort": 8642, "name": "api"}, {"containerPort": 9119}],
        "env": [
            {"name": "API_SERVER_ENABLED", "value": "true"},
            {"name": "API_SERVER_HOST", "value": "0.0.0.0"},
            {"name": "API_SERVER_KEY", "value": secret("not-a-real-key")},
            {"name": "MODEL_BASE_URL", "value": UNKNOWN},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": {"runAsUser": 10000, "runAsNonRoot": True, "privileged": False},
        "volumeMounts": [{"name": "data", "mountPath": "/opt/data"}],
    }
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "serviceAccountName": "agent",
    }
    if sandbox:
        spec.update(
            runtimeClassName=rng.choice(["kata-clh", "kata-qemu"]),
            dnsPolicy="None",
            dnsConfig={"nameservers": ["10.1.0.2"], "searches": ["svc.cluster.local"]},
            nodeSelector={"katacontainers.io/kata-runtime": "true"},
            tolerations=[{"key": "kata", "operator": "Exists", "effect": "NoSchedule"}],
        )
    if bad:
        problem = rng.randrange(5)
        if problem == 0:
            spec.pop("runtimeClassName", None)
        elif problem == 1:
            spec["dnsPolicy"] = "ClusterFirst"
            spec["dnsConfig"] = {"nameservers": ["10.100.0.10"]}
        elif problem == 2:
            spec["runtimeClassName"] = "kata-clh"
            spec["initContainers"] = [{"name": "setup", "image": "busybox"}]
        elif problem == 3:
            container["securityContext"]["privileged"] = True
            spec["hostNetwork"] = True
        else:
            spec["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})
    return spec


def workload(rng: random.Random, index: int, namespaces: list[str]) -> AnalyzerResource:
    kind = KINDS[index % len(KINDS)]
    sandbox = rng.random() < 0.7
    bad = sandbox and rng.random() < 0.15
    name = f"agent-{index}"
    # Even tenant namespaces carry the sandbox label (see generate); sandboxes live there, and
    # a few unlabelled workloads stray into them (sandbox-namespace-runtime-class).
    in_sandbox_namespace = sandbox or rng.random() < 0.05
    namespace = rng.choice(namespaces[0::2] if in_sandbox_namespace else namespaces[1::2] or namespaces)
    props = fixture_workload(kind, pod_spec(rng, sandbox, bad), sandbox=sandbox, namespace=namespace, name=name)
    return _resource(kind.resource_type, name, props, provider_urn=K8S_PROVIDER)


def service(rng: random.Random, index: int) -> AnalyzerResource:
    name = f"svc-{index}"
    kind = rng.random()
    annotations: dict[str, str] = {}
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": 4000}]}
    if kind < 0.5:
        spec["type"] = "ClusterIP"
    else:
        spec["type"] = "LoadBalancer"
        annotations = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
            "service.beta.kubernetes.io/aws-load-balancer-attributes": (
                "load_balancing.cross_zone.enabled=true" if rng.random() < 0.85 else "deletion_protection.enabled=true"
            ),
        }
    props = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "litellm", "annotations": annotations},
        "spec": spec,
    }
    resource_type = "kubernetes:core/v1:Service"
    return _resource(resource_type, name, props, provider_urn=K8S_PROVIDER)


def namespace(index: int, sandbox: bool) -> AnalyzerResource:
    name = f"tenant-{index}"
    labels = {SANDBOX_LABEL: "true"} if sandbox else {}
    props = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    resource_type = "kubernetes:core/v1:Namespace"
    return _resource(resource_type, name, props, provider_urn=K8S_PROVIDER)


def node_resources(rng: random.Random, index: int) -> list[AnalyzerResource]:
    bad = rng.random() < 0.2
    lt_type = "aws:ec2/launchTemplate:LaunchTemplate"
    lt_name = f"kata-lt-{index}"
    lt = _resource(
        lt_type,
        lt_name,
        {
            "name": lt_name,
            "cpuOptions": {"nestedVirtualization": "enabled"},
            "metadataOptions": {"httpTokens": "optional" if bad else "required"},
            "instanceType": "m7i.large" if bad else "m8i.xlarge",
            "tags": {"Name": lt_name},
        },
        provider_urn=AWS_PROVIDER,
    )
    ng_type = "aws:eks/nodeGroup:NodeGroup"
    ng_name = f"kata-ng-{index}"
    ng = _resource(
        ng_type,
        ng_name,
        {
            "clusterName": "agents",
            "instanceTypes": ["m8i.xlarge", "c7i.xlarge"] if bad else ["m8i.xlarge", "c8i.xlarge"],
            "launchTemplate": {"id": UNKNOWN, "version": UNKNOWN},
            "scalingConfig": {"desiredSize": 2, "maxSize": 10, "minSize": 1},
        },
        provider_urn=AWS_PROVIDER,
        dependencies=[lt.urn],
        property_dependencies={"launchTemplate": [lt.urn]},
    )
    nc_type = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
    nc_name = f"kata-{index}"
    nc = _resource(
        nc_type,
        nc_name,
        {
            "apiVersion": "karpenter.k8s.aws/v1",
            "kind": "EC2NodeClass",
            "metadata": {"name": nc_name},
            "spec": {
                "amiSelectorTerms": [{"alias": "al2023@latest"}],
                "cpuOptions": {"nestedVirtualization": "disabled" if bad else "enabled"},
                "role": "KarpenterNodeRole",
                "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "agents"}}],
                "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "agents"}}],
            },
        },
        provider_urn=K8S_PROVIDER,
    )
    np_type = "kubernetes:karpenter.sh/v1:NodePool"
    np_name = f"kata-{index}"
    np = _resource(
        np_type,
        np_name,
        {
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": np_name},
            "spec": {
                "template": {
                    "metadata": {"labels": {"workload-type": "kata"}},
                    "spec": {
                        "nodeClassRef": {
                            "group": "karpenter.k8s.aws",
                            "kind": "EC2NodeClass",
                            "name": nc_name,
                        },
                        "taints": [{"key": "kata", "effect": "NoSchedule"}],
                        "requirements": [
                            {
                                "key": "karpenter.k8s.aws/instance-family",
                                "operator": "In",
                                "values": ["c8i", "m8i", "r8i"],
                            }
                        ],
                    },
                }
            },
        },
        provider_urn=K8S_PROVIDER,
    )
    return [lt, ng, nc, np]


def unrelated(rng: random.Random, index: int) -> AnalyzerResource:
    choice = index % 4
    if choice == 0:
        resource_type = "aws:s3/bucketV2:BucketV2"
        props: dict[str, Any] = {"bucket": f"agent-data-{index}", "tags": {"team": "platform"}}
    elif choice == 1:
        resource_type = "aws:iam/role:Role"
        props = {
            "assumeRolePolicy": '{"Version":"2012-10-17","Statement":[]}',
            "name": f"role-{index}",
        }
    elif choice == 2:
        resource_type = "aws:lb/loadBalancer:LoadBalancer"
        props = {
            "loadBalancerType": rng.choice(["application", "network"]),
            "internal": True,
            "enableCrossZoneLoadBalancing": True,
            "subnets": [UNKNOWN, UNKNOWN],
        }
    else:
        resource_type = "aws:ec2/securityGroup:SecurityGroup"
        props = {
            "vpcId": UNKNOWN,
            "ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.1.0.0/16"]}],
        }
    name = f"res-{index}"
    return _resource(resource_type, name, props, provider_urn=AWS_PROVIDER)


def generate(count: int, seed: int = 7) -> list[AnalyzerResource]:
    """``count`` mixed resources: ~55% workloads, 10% Services, 20% nodes, 15% other."""
    rng = random.Random(seed)
    resources: list[AnalyzerResource] = []
    namespaces = [f"tenant-{i}" for i in range(max(1, count // 200))]
    for i, _ in enumerate(namespaces):
        resources.append(namespace(i, sandbox=i % 2 == 0))
    index = 0
    while len(resources) < count:
        bucket = index % 20
        if bucket < 11:
            resources.append(workload(rng, index, namespaces))
        elif bucket < 13:
            resources.append(service(rng, index))
        elif bucket == 13:
            resources.extend(node_resources(rng, index))
        else:
            resources.append(unrelated(rng, index))
        index += 1
    return resources[:count]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc); -1 when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


BASELINE_PACK = """\
from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy

PolicyPack(
    name="empty-baseline",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[StackValidationPolicy(name="noop", description="Does nothing.", validate=lambda args, report: None)],
)
"""


def measure(
    pack_dir: Path,
    resources: list[AnalyzerResource],
    encoded: EncodedPreview | None,
    workers: int,
    repeat: int,
) -> tuple[list[float], list[Violation]]:
    """Run the preview flow ``repeat`` times against one pack process; resources/s of each run.

    With ``encoded``, the requests were serialized before the clock starts; without, each
    run encodes them too (client CPU a Python CLI would spend).
    """
    started = time.perf_counter()
    rates: list[float] = []
    first: list[Violation] | None = None
    with PolicyPackProcess(pack_dir, project=PROJECT, stack=STACK) as pack:
        pack.configure()
        print(
            f"{pack.info.name}: start + configure {time.perf_counter() - started:.2f} s, "
            f"{len(pack.info.policies)} policies"
        )
        for run in range(1, repeat + 1):
            timings: dict[str, float] = {}
            server_cpu, client_cpu = process_cpu(pack.pid), time.process_time()
            t0 = time.perf_counter()
            violations = pack.analyze_preview(encoded or resources, workers=workers, timings=timings)
            total = time.perf_counter() - t0
            server_cpu = process_cpu(pack.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            if first is None:
                first = violations
            elif violations != first:
                raise RuntimeError(f"run {run} reported different violations than run 1")
            rates.append(len(resources) / total)
            encoding = f"encode {timings['encode']:.2f} s, " if encoded is None else ""
            print(
                f"  run {run}: {encoding}Analyze x{len(resources)} {timings['analyze']:.2f} s "
                f"({len(resources) / timings['analyze']:,.0f}/s), AnalyzeStack {timings['analyze_stack']:.2f} s, "
                f"total {total:.2f} s -> {rates[-1]:,.0f} resources/s"
            )
            if server_cpu >= 0:
                per = 1e6 / len(resources)
                print(
                    f"         CPU per resource: pack {server_cpu * per:.0f} us, client {client_cpu * per:.0f} us "
                    f"(load average {os.getloadavg()[0]:.1f})"
                )
    return rates, first or []


def profile(resources: list[AnalyzerResource], top: int = 25) -> None:
    """cProfile the unmodified SDK's own Analyzer servicer in-process (no gRPC transport): where the time goes.

    The servicer (pulumi_policy.policy._PolicyAnalyzerServicer, what PolicyPack serves over gRPC) is only
    instantiated and called here; nothing of the SDK is replaced. Prints microseconds per resource for
    Analyze (every resource) and AnalyzeStack (once), then the functions with the most cumulative time.
    """
    import cProfile
    import pstats

    from google.protobuf import json_format
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.policy import _PolicyAnalyzerServicer
    from pulumi_policy.proxy import unknown_checking_proxy

    sys.path.insert(0, str(PACK_DIR))
    from agent_policies import POLICY_PACK_NAME, all_policies

    os.environ.update(PULUMI_PROJECT=PROJECT, PULUMI_STACK=STACK, PULUMI_DRY_RUN="true")
    policies = all_policies()
    servicer = _PolicyAnalyzerServicer(POLICY_PACK_NAME, "0.1.0", policies, EnforcementLevel.MANDATORY)
    configure = analyzer_pb2.ConfigureAnalyzerRequest()
    for policy in policies:
        config = configure.policyConfig[policy.name]
        config.enforcementLevel = analyzer_pb2.ADVISORY if policy.name == "kata-clh-no-init-containers" else 1
        schema = policy.config_schema.properties if policy.config_schema else {}
        config.properties.update({key: spec["default"] for key, spec in schema.items() if "default" in spec})
    servicer.Configure(configure, None)
    encoded = encode_preview(resources)
    analyze = [analyzer_pb2.AnalyzeRequest.FromString(r) for r in encoded.analyze]
    stack = analyzer_pb2.AnalyzeStackRequest.FromString(encoded.stack)
    count = len(resources)

    def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        for request in analyze:
            servicer.Analyze(request, None)
        t1 = time.perf_counter()
        servicer.AnalyzeStack(stack, None)
        return 1e6 * (t1 - t0) / count, 1e6 * (time.perf_counter() - t1) / count

    run()  # warm caches
    analyze_us, stack_us = run()
    # The SDK's per-policy decoding of one resource's properties (and its provider's), timed alone.
    t0 = time.perf_counter()
    for request in analyze:
        unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(request.properties)))
        if request.HasField("provider"):
            unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(request.provider.properties)))
    decode_us = 1e6 * (time.perf_counter() - t0) / count
    # The pack's own validators on already decoded properties.
    calls = []
    for request in analyze:
        props = unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(request.properties)))
        for policy in policies:
            if isinstance(policy, ResourceValidationPolicy):
                config = json_format.MessageToDict(configure.policyConfig[policy.name].properties)
                args = ResourceValidationArgs(request.type, props, request.urn, request.name, None, None, config)
                calls.append((policy, args))
    t0 = time.perf_counter()
    for policy, args in calls:
        policy.validate(args, lambda *_: None)  # violations are not collected here
    validators_us = 1e6 * (time.perf_counter() - t0) / count
    resource_policies = sum(isinstance(p, ResourceValidationPolicy) for p in policies)
    stack_policies = len(policies) - resource_policies
    print(
        f"{count} resources, {resource_policies} resource and {stack_policies} stack policies, in-process "
        f"(no gRPC): Analyze {analyze_us:,.0f} us/resource, AnalyzeStack {stack_us:,.0f} us/resource; "
        f"decoding one resource's properties and provider once (MessageToDict + deserialize_properties + "
        f"unknown_checking_proxy) {decode_us:,.0f} us, done {resource_policies}x in Analyze and "
        f"{stack_policies}x in AnalyzeStack; the pack's validators {validators_us:,.0f} us/resource"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def summary(rates: list[float]) -> str:
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    return f"median {statistics.median(rates):,.0f} resources/s (runs: {runs})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="Analyze calls in flight")
    parser.add_argument("--repeat", type=int, default=5, help="runs against the same pack process")
    parser.add_argument("--pack", type=Path, default=PACK_DIR)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also measure an empty pack (one no-op stack policy): the gRPC + SDK floor",
    )
    parser.add_argument(
        "--encode-in-clock",
        action="store_true",
        help="serialize the requests inside each timed run (what a Python CLI would add)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: cProfile the SDK's own servicer in-process (no gRPC) and print where the time goes",
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile(generate(args.count))
        return 0
    if os.getloadavg()[0] > 1.5:
        print(f"warning: load average {os.getloadavg()[0]:.1f}: something else is running, figures will be low")

    resources = generate(args.count)
    kinds = collections.Counter(r.type.rsplit(":", 1)[-1] for r in resources)
    print(f"{len(resources)} resources: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    encoded: EncodedPreview | None = None
    if not args.encode_in_clock:
        t0 = time.perf_counter()
        encoded = encode_preview(resources)
        size = (sum(map(len, encoded.analyze)) + len(encoded.stack)) / 1e6
        print(
            f"client: {len(encoded.analyze):,} AnalyzeRequests + 1 AnalyzeStackRequest ({size:.1f} MB) serialized in "
            f"{time.perf_counter() - t0:.2f} s before the clock starts (the CLI's work, in Go), then sent as bytes"
        )
    gc.freeze()  # the generated stack lives until the end: keep it out of GC passes
    print(f"{args.workers} Analyze calls in flight, then AnalyzeStack once; pulumi-policy unmodified")

    rates, violations = measure(args.pack, resources, encoded, args.workers, args.repeat)
    per_policy = collections.Counter((v.policy, v.enforcement_level) for v in violations)
    print("  violations: " + ", ".join(f"{p} [{lvl}] {n}" for (p, lvl), n in sorted(per_policy.items())))
    if args.baseline:
        with tempfile.TemporaryDirectory() as empty:
            (Path(empty) / "__main__.py").write_text(BASELINE_PACK)
            baseline, _ = measure(Path(empty), resources, encoded, args.workers, args.repeat)
        print(f"empty pack: {summary(baseline)}")
    median = statistics.median(rates)
    print(
        f"throughput: {summary(rates)} = {1e6 / median:,.0f} us of wall time per resource "
        "(Analyze each resource + AnalyzeStack once; the target is make bench-preview's)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
