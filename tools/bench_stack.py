"""The benchmark's generated stack: workloads of every kind, Services, Namespaces, launch templates, node groups,
Karpenter NodePools/EC2NodeClasses and unrelated AWS resources, about one in eight violating a rule. Seeded, so
every run (and every pack measured) sees the same resources."""

from __future__ import annotations

import random
from typing import Any

from tools.analyzer import UNKNOWN, AnalyzerResource, secret
from tools.policy_fixtures import KINDS, SANDBOX_LABEL, urn
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


def _kubernetes(resource_type: str, metadata: dict[str, Any], spec: dict[str, Any] | None = None) -> AnalyzerResource:
    """A Kubernetes object; its apiVersion and kind come from the Pulumi type (``kubernetes:<group>/<version>:<kind>``)."""
    group_version, kind = resource_type.split(":")[1:]
    props = {"apiVersion": group_version.removeprefix("core/"), "kind": kind, "metadata": metadata}
    if spec is not None:
        props["spec"] = spec
    return _resource(resource_type, metadata["name"], props, provider_urn=K8S_PROVIDER)


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
            spec["dnsConfig"] = {"nameservers": ["172.20.0.10"]}  # the service CIDR (pack default)
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
    metadata = {"name": name, "namespace": "litellm", "annotations": annotations}
    return _kubernetes("kubernetes:core/v1:Service", metadata, spec)


def namespace(index: int, sandbox: bool) -> AnalyzerResource:
    name = f"tenant-{index}"
    labels = {SANDBOX_LABEL: "true"} if sandbox else {}
    return _kubernetes("kubernetes:core/v1:Namespace", {"name": name, "labels": labels})


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
    nc_name = f"kata-{index}"
    nc = _kubernetes(
        "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",
        {"name": nc_name},
        {
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "cpuOptions": {"nestedVirtualization": "disabled" if bad else "enabled"},
            "role": "KarpenterNodeRole",
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "agents"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "agents"}}],
        },
    )
    requirement = {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["c8i", "m8i", "r8i"]}
    np = _kubernetes(
        "kubernetes:karpenter.sh/v1:NodePool",
        {"name": f"kata-{index}"},
        {
            "template": {
                "metadata": {"labels": {"workload-type": "kata"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": nc_name},
                    "taints": [{"key": "kata", "effect": "NoSchedule"}],
                    "requirements": [requirement],
                },
            }
        },
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
