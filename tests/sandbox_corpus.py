"""One corpus of sandbox cases that both gates must decide the same way.

tests/test_admission.py runs every case through the rendered ValidatingAdmissionPolicies and the CrossGuard pack
and fails when either disagrees with the expected decision. Details and the dev-stack values the corpus assumes:
docs/admission.md#the-two-gates-agree-the-shared-corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.contracts.labels import (
    FARGATE_COMPUTE_TYPE,
    FARGATE_POD_LABELS,
    FARGATE_SCHEDULER,
    GPU_RESOURCE,
    GPU_TOLERATION,
    ISOLATION_LABEL,
    KATA_TOLERATION,
    SANDBOX_LABEL,
    TENANT_LABEL,
    dedicated_toleration,
)
from tools.policy_fixtures import VPC_DNS, Kind, kata_spec, workload

ALLOWED_RUNTIME_CLASSES = ("kata-clh", "kata-qemu")
SERVICE_CIDR = "172.20.0.0/16"
SANDBOX_NAMESPACE = "tenant-a"  # labelled agent-platform.io/sandbox=true, tenant a
PLAIN_NAMESPACE = "apps"  # no label
DEDICATED_NAMESPACE = "tenant-globex"  # a sandbox namespace of tenant globex, which has dedicated nodes
UPPER_NAMESPACE = "tenant-upper"  # agent-platform.io/sandbox=True: any case counts, at both gates
FARGATE_NAMESPACE = "tenant-initech"  # the dev stack's Fargate tenant: bound to its Fargate profile
# Every namespace the corpus creates objects in, with its labels (kube-system, kata-system: platform namespaces).
NAMESPACE_LABELS: dict[str, dict[str, str]] = {
    SANDBOX_NAMESPACE: {SANDBOX_LABEL: "true", TENANT_LABEL: "a"},
    DEDICATED_NAMESPACE: {SANDBOX_LABEL: "true", TENANT_LABEL: "globex"},
    UPPER_NAMESPACE: {SANDBOX_LABEL: "True"},
    FARGATE_NAMESPACE: {SANDBOX_LABEL: "true", TENANT_LABEL: "initech", ISOLATION_LABEL: "fargate"},
    PLAIN_NAMESPACE: {},
    "kube-system": {},
    "kata-system": {},
    "models": {},
    "nvidia-device-plugin": {},
}

# kind -> (apiVersion, Pulumi resource type)
KINDS: dict[str, tuple[str, str]] = {
    "Pod": ("v1", "kubernetes:core/v1:Pod"),
    "Deployment": ("apps/v1", "kubernetes:apps/v1:Deployment"),
    "StatefulSet": ("apps/v1", "kubernetes:apps/v1:StatefulSet"),
    "DaemonSet": ("apps/v1", "kubernetes:apps/v1:DaemonSet"),
    "ReplicaSet": ("apps/v1", "kubernetes:apps/v1:ReplicaSet"),
    "Job": ("batch/v1", "kubernetes:batch/v1:Job"),
    "CronJob": ("batch/v1", "kubernetes:batch/v1:CronJob"),
    "Sandbox": ("agents.x-k8s.io/v1beta1", "kubernetes:agents.x-k8s.io/v1beta1:Sandbox"),
    "SandboxTemplate": (
        "extensions.agents.x-k8s.io/v1beta1",
        "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate",
    ),
}


def namespace(name: str) -> dict[str, Any]:
    labels = {"kubernetes.io/metadata.name": name, **NAMESPACE_LABELS[name]}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def dns(*nameservers: str, policy: str = "None") -> dict[str, Any]:
    return {"dnsPolicy": policy, "dnsConfig": {"nameservers": list(nameservers)}}


Labelled = bool | str  # True: the object and its pod template; "object" or "template": only there; False: nowhere


def build(
    kind: str,
    spec: Mapping[str, Any],
    ns: str,
    labelled: Labelled,
    name: str = "hermes",
    owner: str = "",
    pod_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The object as kubectl (or Pulumi) sends it; the sandbox label where ``labelled`` says (the program sets it on
    both); ``owner``: the kind of its controller (ownerReferences), as a controller-made Pod has; ``pod_labels`` and
    ``annotations`` on the pod template."""
    api_version, resource_type = KINDS[kind]
    shape = Kind(resource_type, api_version, kind, "")
    obj = workload(
        shape, dict(spec), sandbox=labelled is not False, namespace=ns, name=name, labels=pod_labels, object_labels=True
    )
    metadata, template = obj["metadata"], _template_metadata(obj)
    if annotations:
        template["annotations"] = dict(annotations)
    if labelled == "object" and template is not metadata:
        template["labels"] = {k: v for k, v in template["labels"].items() if k != SANDBOX_LABEL}
    if labelled == "template" and template is not metadata:
        metadata["labels"] = {k: v for k, v in metadata["labels"].items() if k != SANDBOX_LABEL}
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": f"{name}-owner", "uid": "0", "controller": True}
        ]
    return obj


def _template_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        return obj["metadata"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["metadata"]
    return (spec.get("podTemplate") or spec["template"])["metadata"]


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    allowed: bool
    kind: str = "Pod"
    namespace: str = SANDBOX_NAMESPACE
    labelled: Labelled = True  # the sandbox label on the object and its pod template, one of them, or neither
    owner: str = ""  # the kind of the object's controller (a DaemonSet's Pod)
    pod_labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def object(self, name: str = "hermes") -> dict[str, Any]:
        return build(
            self.kind,
            self.spec,
            self.namespace,
            self.labelled,
            name=name,
            owner=self.owner,
            pod_labels=dict(self.pod_labels),
            annotations=dict(self.annotations),
        )

    @property
    def resource_type(self) -> str:
        return KINDS[self.kind][1]


CASES: list[Case] = [
    # --- every kind: the pod spec is found wherever the kind keeps it
    *(Case(f"{kind}-compliant", kata_spec(), True, kind=kind) for kind in KINDS),
    *(Case(f"{kind}-runc", kata_spec(runtimeClassName="runc"), False, kind=kind) for kind in KINDS),
    *(Case(f"{kind}-cluster-first-dns", kata_spec(dnsPolicy="ClusterFirst"), False, kind=kind) for kind in KINDS),
    # --- runtime class
    Case("runtime-class-missing", kata_spec(runtimeClassName=None), False),
    Case("runtime-class-kata-clh", kata_spec(runtimeClassName="kata-clh"), True),
    Case("runtime-class-gvisor-not-enabled", kata_spec(runtimeClassName="gvisor"), False),
    Case("runtime-class-kata-fc-not-enabled", kata_spec(runtimeClassName="kata-fc"), False),
    Case("runtime-class-kata-lookalike", kata_spec(runtimeClassName="kata-evil"), False),
    Case("runtime-class-empty", kata_spec(runtimeClassName=""), False),
    # --- host namespaces
    *(Case(f"{flag}-true", kata_spec(**{flag: True}), False) for flag in ("hostNetwork", "hostPID", "hostIPC")),
    Case("host-namespaces-false", kata_spec(hostNetwork=False, hostPID=False, hostIPC=False), True),
    Case("hostNetwork-true-deployment", kata_spec(hostNetwork=True), False, kind="Deployment"),
    # --- privileged, in each container list
    *(
        Case(
            f"privileged-{list_name}",
            kata_spec(
                containers=[{"name": "agent", "image": "a:1"}],
                **{list_name: [{"name": "evil", "image": "b:1", "securityContext": {"privileged": True}}]},
            )
            if list_name != "containers"
            else kata_spec(containers=[{"name": "evil", "image": "b:1", "securityContext": {"privileged": True}}]),
            False,
        )
        for list_name in ("containers", "initContainers", "ephemeralContainers")
    ),
    Case(
        "privileged-second-container",
        kata_spec(
            containers=[
                {"name": "agent", "image": "a:1"},
                {"name": "sidecar", "image": "b:1", "securityContext": {"privileged": True}},
            ]
        ),
        False,
    ),
    Case(
        "privileged-false-everywhere",
        kata_spec(
            initContainers=[{"name": "init", "image": "a:1", "securityContext": {"privileged": False}}],
            ephemeralContainers=[{"name": "debug", "image": "a:1", "securityContext": {}}],
        ),
        True,
    ),
    Case(
        "privileged-cronjob",
        kata_spec(containers=[{"name": "x", "image": "a:1", "securityContext": {"privileged": True}}]),
        False,
        kind="CronJob",
    ),
    # --- volumes
    Case("hostPath-volume", kata_spec(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), False),
    Case(
        "hostPath-among-others",
        kata_spec(volumes=[{"name": "data", "emptyDir": {}}, {"name": "sock", "hostPath": {"path": "/run"}}]),
        False,
        kind="SandboxTemplate",
    ),
    Case(
        "safe-volumes",
        kata_spec(
            volumes=[
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "seed", "configMap": {"name": "seed"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory"}},
            ]
        ),
        True,
    ),
    # --- DNS policy
    Case("dns-policy-default", kata_spec(dnsPolicy="Default"), False),
    Case("dns-policy-missing", kata_spec(dnsPolicy=None), False),
    Case("dns-policy-cluster-first-with-host-net", kata_spec(dnsPolicy="ClusterFirstWithHostNet"), False),
    Case("dns-policy-none-without-dns-config", kata_spec(dnsConfig=None), False),
    Case("dns-config-without-nameservers", kata_spec(dnsConfig={"searches": ["svc.cluster.local"]}), False),
    Case("nameservers-empty", kata_spec(**dns()), False),
    # --- nameservers and the service CIDR
    Case("nameserver-cluster-dns", kata_spec(**dns("172.20.0.10")), False),
    Case("nameserver-service-cidr-first", kata_spec(**dns("172.20.0.0")), False),
    Case("nameserver-service-cidr-last", kata_spec(**dns("172.20.255.255")), False),
    Case("nameserver-just-outside", kata_spec(**dns("172.21.0.1")), True),
    Case("nameservers-good-then-cluster", kata_spec(**dns(VPC_DNS, "172.20.0.10")), False),
    Case("nameservers-cluster-then-good", kata_spec(**dns("172.20.0.10", VPC_DNS)), False),
    Case("nameservers-two-good", kata_spec(**dns(VPC_DNS, "10.1.0.3")), True),
    Case("nameserver-public", kata_spec(**dns("8.8.8.8")), True),
    Case("nameserver-ipv6", kata_spec(**dns("fd00:ec2::253")), True),
    Case("nameserver-hostname", kata_spec(**dns("dns.internal")), False),
    Case("nameserver-leading-zeros", kata_spec(**dns("010.001.000.002")), False),
    Case("nameserver-ipv4-mapped-in-service-cidr", kata_spec(**dns("::ffff:172.20.0.10")), False),
    Case("nameserver-ipv4-mapped-outside", kata_spec(**dns("::ffff:10.1.0.2")), False),
    Case("nameserver-cluster-dns-sandbox-kind", kata_spec(**dns("172.20.0.10")), False, kind="Sandbox"),
    # --- IPv6 spellings of a service IP (issue 22): refused at both gates; of another address: allowed
    Case("nameserver-nat64-service", kata_spec(**dns("64:ff9b::172.20.0.10")), False),
    Case("nameserver-nat64-upper-hex", kata_spec(**dns("64:FF9B::AC14:A")), False, kind="Deployment"),
    Case("nameserver-nat64-outside", kata_spec(**dns("64:ff9b::10.1.0.2")), True),
    Case("nameserver-6to4-service", kata_spec(**dns("2002:ac14:a::")), False),
    Case("nameserver-6to4-service-edge", kata_spec(**dns("2002:ac14:ffff:ffff::1")), False, kind="Sandbox"),
    Case("nameserver-6to4-outside", kata_spec(**dns("2002:ac15::1")), True),
    Case("nameserver-ipv4-compatible-service", kata_spec(**dns("::172.20.0.10")), False),
    Case("nameserver-ipv4-translated-service", kata_spec(**dns("::ffff:0:172.20.0.10")), False, kind="Job"),
    Case("nameserver-ipv4-translated-outside", kata_spec(**dns("::ffff:0:10.1.0.2")), True),
    # --- neither the VPC resolver nor the service CIDR: allowed at both gates (DNS egress reaches only the resolver)
    Case("nameserver-other-private", kata_spec(**dns("10.100.0.10")), True),
    Case("nameserver-other-private-with-resolver", kata_spec(**dns(VPC_DNS, "192.168.0.2")), True, kind="Deployment"),
    # --- not an address as Kubernetes writes one: refused at both gates
    Case("nameserver-surrounding-space", kata_spec(**dns(" 10.1.0.2")), False, kind="Sandbox"),
    Case("nameserver-ipv6-zone", kata_spec(**dns("fe80::1%eth0")), False, kind="SandboxTemplate"),
    # --- the namespace decides without the pod label
    Case("unlabelled-runc-in-sandbox-namespace", kata_spec(runtimeClassName="runc"), False, labelled=False),
    Case("unlabelled-privileged-in-sandbox-namespace", kata_spec(hostPID=True), False, labelled=False, kind="Job"),
    Case("unlabelled-compliant-in-sandbox-namespace", kata_spec(), True, labelled=False),
    # --- the label decides outside sandbox namespaces
    Case("labelled-runc-elsewhere", kata_spec(runtimeClassName="runc"), False, namespace=PLAIN_NAMESPACE),
    Case(
        "labelled-hostpath-deployment-elsewhere",
        kata_spec(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        False,
        kind="Deployment",
        namespace=PLAIN_NAMESPACE,
    ),
    Case("labelled-compliant-elsewhere", kata_spec(), True, namespace=PLAIN_NAMESPACE),
    # --- which labels make a sandbox (issue 22): the object's own, or its pod template's, any case, at both gates
    *(
        Case(f"{where}-label-only-{kind}-runc", kata_spec(runtimeClassName="runc"), False, kind, PLAIN_NAMESPACE, where)
        for where in ("object", "template")
        for kind in ("Deployment", "CronJob", "SandboxTemplate")
    ),
    Case("object-label-only-compliant", kata_spec(), True, "Deployment", PLAIN_NAMESPACE, "object"),
    Case("template-label-only-hostpid", kata_spec(hostPID=True), False, "StatefulSet", PLAIN_NAMESPACE, "template"),
    Case(
        "namespace-label-any-case", kata_spec(runtimeClassName="runc"), False, namespace=UPPER_NAMESPACE, labelled=False
    ),
    Case("namespace-label-any-case-compliant", kata_spec(), True, namespace=UPPER_NAMESPACE, labelled=False),
    # --- not a sandbox: only the Kata DNS rule applies, to Kata pods anywhere
    Case(
        "plain-runc-pod",
        {"containers": [{"name": "web", "image": "nginx:1"}]},
        True,
        namespace=PLAIN_NAMESPACE,
        labelled=False,
    ),
    Case(
        "plain-privileged-host-pod",
        {
            "hostNetwork": True,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "containers": [{"name": "agent", "image": "a:1", "securityContext": {"privileged": True}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        },
        True,
        namespace=PLAIN_NAMESPACE,
        labelled=False,
    ),
    Case(
        "plain-kata-cluster-first",
        kata_spec(dnsPolicy="ClusterFirst"),
        False,
        namespace=PLAIN_NAMESPACE,
        labelled=False,
    ),
    Case(
        "plain-kata-cluster-dns-deployment",
        kata_spec(**dns("172.20.0.10")),
        False,
        kind="Deployment",
        namespace=PLAIN_NAMESPACE,
        labelled=False,
    ),
    Case("plain-kata-vpc-dns", kata_spec(), True, namespace=PLAIN_NAMESPACE, labelled=False),
    Case(
        "plain-gvisor-cluster-first",
        kata_spec(runtimeClassName="gvisor", dnsPolicy="ClusterFirst"),
        True,
        namespace=PLAIN_NAMESPACE,
        labelled=False,
    ),
]

# --- dedicated tenant nodes (issue 23): a toleration of tenant T's taint only in T's namespace; one of every tenant's
# only on a node DaemonSet (or its Pod) in a platform namespace
GLOBEX = dedicated_toleration("globex")
DEDICATED = GLOBEX["key"]
EVERY = {"operator": "Exists"}


def tolerating(*tolerations: dict[str, Any], kata: bool = True) -> dict[str, Any]:
    """A compliant Kata pod spec (or a plain one) with the given tolerations."""
    base = kata_spec() if kata else {"containers": [{"name": "agent", "image": "a:1"}]}
    return {**base, "tolerations": list(tolerations)}


CASES += [
    Case("toleration-own-tenant", tolerating(GLOBEX), True, "Deployment", DEDICATED_NAMESPACE),
    Case("toleration-own-tenant-template", tolerating(GLOBEX), True, "SandboxTemplate", DEDICATED_NAMESPACE),
    Case("toleration-other-tenant", tolerating(GLOBEX), False, "Deployment", SANDBOX_NAMESPACE),
    Case("toleration-other-tenant-template", tolerating(GLOBEX), False, "SandboxTemplate", SANDBOX_NAMESPACE),
    Case("toleration-no-tenant", tolerating(GLOBEX, kata=False), False, namespace=PLAIN_NAMESPACE, labelled=False),
    Case("toleration-no-operator", tolerating({"key": DEDICATED, "value": "globex"}), False, "Job", SANDBOX_NAMESPACE),
    Case("toleration-empty-value", tolerating({"key": DEDICATED, "value": ""}), False, namespace=DEDICATED_NAMESPACE),
    Case("toleration-other-effect", tolerating({**GLOBEX, "effect": "NoExecute"}), True, "Deployment"),
    Case(
        "toleration-exists-key",
        tolerating({"key": DEDICATED, "operator": "Exists"}),
        False,
        "Deployment",
        DEDICATED_NAMESPACE,
    ),
    Case("toleration-exists-every-taint", tolerating(EVERY), False, namespace=SANDBOX_NAMESPACE),
    Case("toleration-exists-no-execute", tolerating({**EVERY, "effect": "NoExecute"}), True, "Deployment"),
    Case("toleration-kata-taint", tolerating({"key": "kata", "operator": "Exists"}), True, "CronJob"),
    Case(
        "daemonset-exists-platform",
        tolerating({"key": DEDICATED, "operator": "Exists"}, kata=False),
        True,
        "DaemonSet",
        "kata-system",
        False,
    ),
    Case("daemonset-every-taint-kube-system", tolerating(EVERY, kata=False), True, "DaemonSet", "kube-system", False),
    Case("daemonset-exists-elsewhere", tolerating(EVERY, kata=False), False, "DaemonSet", PLAIN_NAMESPACE, False),
    Case("deployment-exists-kube-system", tolerating(EVERY, kata=False), False, "Deployment", "kube-system", False),
    Case(
        "daemonset-pod-exists-kube-system",
        tolerating(EVERY, kata=False),
        True,
        "Pod",
        "kube-system",
        False,
        "DaemonSet",
    ),
    Case(
        "replicaset-pod-exists-kube-system",
        tolerating(EVERY, kata=False),
        False,
        "Pod",
        "kube-system",
        False,
        "ReplicaSet",
    ),
    Case(
        "daemonset-pod-exists-elsewhere",
        tolerating(EVERY, kata=False),
        False,
        "Pod",
        PLAIN_NAMESPACE,
        False,
        "DaemonSet",
    ),
]

# --- GPU nodes (issue 24): tolerating their taint or requesting nvidia.com/gpu only for model servers (namespace
# models) and node DaemonSets (or their Pods) in platform namespaces
GPU_EXISTS = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}  # what ExtendedResourceToleration adds


def gpu_request(*, kata: bool = True, part: str = "limits", init: bool = False) -> dict[str, Any]:
    """A pod spec whose (init) container asks for one GPU."""
    spec = tolerating(kata=kata)
    del spec["tolerations"]
    container = {"name": "agent", "image": "a:1", "resources": {part: {GPU_RESOURCE: "1"}}}
    if init:
        return {**spec, "initContainers": [container]}
    return {**spec, "containers": [{**spec["containers"][0], "resources": {part: {GPU_RESOURCE: "1"}}}]}


CASES += [
    Case("gpu-toleration-tenant", tolerating(GPU_TOLERATION), False, "Deployment"),
    Case("gpu-toleration-exists-tenant", tolerating(GPU_EXISTS), False, "SandboxTemplate"),
    Case("gpu-toleration-no-effect", tolerating({"key": GPU_RESOURCE, "value": "true"}), False, "Job"),
    Case("gpu-toleration-other-value", tolerating({**GPU_TOLERATION, "value": "false"}), True, "Deployment"),
    Case("gpu-toleration-no-execute", tolerating({**GPU_EXISTS, "effect": "NoExecute"}), True, "Deployment"),
    Case("gpu-request-tenant", gpu_request(), False, "Deployment"),
    Case("gpu-request-requests", gpu_request(part="requests"), False, "Sandbox"),
    Case("gpu-request-init", gpu_request(init=True), False, "Pod"),
    Case("gpu-request-plain", gpu_request(kata=False), False, "StatefulSet", PLAIN_NAMESPACE, False),
    Case(
        "gpu-model-server",
        {**gpu_request(kata=False), "tolerations": [GPU_TOLERATION]},
        True,
        "Deployment",
        "models",
        False,
    ),
    Case(
        "gpu-daemonset-platform", tolerating(GPU_EXISTS, kata=False), True, "DaemonSet", "nvidia-device-plugin", False
    ),
    Case("gpu-daemonset-elsewhere", tolerating(GPU_EXISTS, kata=False), False, "DaemonSet", PLAIN_NAMESPACE, False),
    Case("gpu-deployment-platform", tolerating(GPU_EXISTS, kata=False), False, "Deployment", "kube-system", False),
    Case(
        "gpu-daemonset-pod-platform",
        tolerating(GPU_EXISTS, kata=False),
        True,
        "Pod",
        "nvidia-device-plugin",
        False,
        "DaemonSet",
    ),
]


# Red team: every taint tolerated through an empty key; GPU nodes selected by their labels (nodeSelector, required and
# preferred node affinity) with and without the toleration; GPU DaemonSets of tenants.
def selecting(*, kata: bool = True, selector: dict[str, str] | None = None, **affinity: Any) -> dict[str, Any]:
    """A pod spec (Kata by default) with a nodeSelector and/or node affinity."""
    spec = tolerating(kata=kata)
    del spec["tolerations"]
    if selector is not None:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **selector}
    if affinity:
        spec["affinity"] = {"nodeAffinity": affinity}
    return spec


def required(*expressions: dict[str, Any]) -> dict[str, Any]:
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": list(expressions)}]
        }
    }


def preferred(*expressions: dict[str, Any]) -> dict[str, Any]:
    return {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": list(expressions)}}
        ]
    }


GPU_COUNT = "karpenter.k8s.aws/instance-gpu-count"
CASES += [
    Case("gpu-empty-key-exists", tolerating({"key": "", "operator": "Exists"}), False, "Deployment"),
    Case(
        "gpu-empty-key-exists-no-schedule", tolerating({"key": "", "operator": "Exists", "effect": "NoSchedule"}), False
    ),
    Case("gpu-every-taint-model-namespace", tolerating(EVERY, kata=False), False, "Deployment", "models", False),
    Case("gpu-daemonset-tenant", tolerating(GPU_EXISTS), False, "DaemonSet"),
    Case("gpu-daemonset-request-tenant", gpu_request(), False, "DaemonSet"),
    Case("gpu-toleration-equal-no-value", tolerating({"key": GPU_RESOURCE, "operator": "Equal"}), True, "Job"),
    Case("gpu-node-selector", selecting(selector={"workload-type": "gpu"}), False, "Deployment"),
    Case("gpu-node-selector-present", selecting(selector={"nvidia.com/gpu.present": "true"}), False, "Sandbox"),
    Case(
        "gpu-node-selector-nodepool",
        selecting(kata=False, selector={"karpenter.sh/nodepool": "gpu"}),
        False,
        "Job",
        PLAIN_NAMESPACE,
        False,
    ),
    Case(
        "gpu-node-selector-gpu-name",
        selecting(selector={"karpenter.k8s.aws/instance-gpu-name": "l4"}),
        False,
        "StatefulSet",
    ),
    Case(
        "gpu-affinity-required-count",
        selecting(**required({"key": GPU_COUNT, "operator": "Gt", "values": ["0"]})),
        False,
        "Pod",
    ),
    Case(
        "gpu-affinity-required-exists",
        selecting(**required({"key": "nvidia.com/gpu.present", "operator": "Exists"})),
        False,
        "SandboxTemplate",
    ),
    Case(
        "gpu-affinity-required-pool",
        selecting(**required({"key": "workload-type", "operator": "In", "values": ["kata", "gpu"]})),
        False,
        "CronJob",
    ),
    Case(
        "gpu-affinity-preferred",
        selecting(**preferred({"key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu"]})),
        False,
        "Deployment",
    ),
    Case(
        "gpu-affinity-not-in",
        selecting(**required({"key": "workload-type", "operator": "NotIn", "values": ["gpu"]})),
        True,
        "Deployment",
    ),
    Case(
        "gpu-affinity-does-not-exist",
        selecting(**required({"key": GPU_COUNT, "operator": "DoesNotExist"})),
        True,
        "Pod",
    ),
    Case("gpu-node-selector-kata-pool", selecting(selector={"workload-type": "kata"}), True, "Deployment"),
    Case(
        "gpu-node-selector-model-server",
        {**selecting(kata=False, selector={"workload-type": "gpu"}), "tolerations": [GPU_TOLERATION]},
        True,
        "Deployment",
        "models",
        False,
    ),
    Case(
        "gpu-node-selector-daemonset-platform",
        selecting(kata=False, selector={"nvidia.com/gpu.present": "true"}),
        True,
        "DaemonSet",
        "nvidia-device-plugin",
        False,
    ),
]

# --- Fargate (issue 28): a sandbox pod without a runtime class only in a namespace bound to a Fargate profile, with the
# tier label the profile selects, and nothing that could steer it onto an EC2 node; a Pod as the API server sees it
# after EKS' Fargate webhook (schedulerName fargate-scheduler). Red team: every way to claim Fargate and land on EC2.
TIER = tuple(FARGATE_POD_LABELS.items())
EC2 = ((FARGATE_COMPUTE_TYPE, "ec2"),)
NODE = "ip-10-1-2-3.ec2.internal"


def fargate_spec(kind: str = "Deployment", **overrides: Any) -> dict[str, Any]:
    """A compliant Fargate pod spec of ``kind``: no runtime class; a Pod carries the scheduler the webhook set."""
    scheduler = {"schedulerName": FARGATE_SCHEDULER} if kind == "Pod" else {}
    return kata_spec(**{"runtimeClassName": None, **scheduler, **overrides})


def fargate_case(case_id: str, allowed: bool, kind: str = "Deployment", **fields: Any) -> Case:
    spec = fields.pop("spec", None) or fargate_spec(kind)
    fields.setdefault("namespace", FARGATE_NAMESPACE)
    fields.setdefault("pod_labels", TIER)
    return Case(f"fargate-{case_id}", spec, allowed, kind, **fields)


AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "workload-type", "operator": "Exists"}]}]
        }
    }
}
CASES += [
    *(fargate_case(f"compliant-{kind}", True, kind) for kind in KINDS if kind != "DaemonSet"),
    fargate_case("daemonset", False, "DaemonSet"),
    fargate_case("unlabelled-namespace-decides", True, labelled=False),
    fargate_case("compute-type-selector", True, spec=fargate_spec(nodeSelector={FARGATE_COMPUTE_TYPE: "fargate"})),
    fargate_case("compute-type-annotation-fargate", True, annotations=((FARGATE_COMPUTE_TYPE, "fargate"),)),
    # tolerations only widen where a scheduler may put a pod; Fargate's scheduler places it (the Pod proves it)
    fargate_case("kata-toleration", True, "Pod", spec=fargate_spec("Pod", tolerations=[KATA_TOLERATION])),
    # the red team, in the Fargate namespace
    fargate_case("kata-runtime-class", False, spec=kata_spec()),
    fargate_case("runc-runtime-class", False, "Pod", spec=fargate_spec("Pod", runtimeClassName="runc")),
    fargate_case("without-tier-label", False, pod_labels=()),
    fargate_case("without-tier-label-pod", False, "Pod", pod_labels=()),
    fargate_case("tier-label-other-value", False, pod_labels=((ISOLATION_LABEL, "Fargate"),)),
    fargate_case("pod-without-fargate-scheduler", False, "Pod", spec=fargate_spec("Pod", schedulerName=None)),
    fargate_case("pod-default-scheduler", False, "Pod", spec=fargate_spec("Pod", schedulerName="default-scheduler")),
    fargate_case("default-scheduler", False, spec=fargate_spec(schedulerName="default-scheduler")),
    fargate_case("node-name-pod", False, "Pod", spec=fargate_spec("Pod", nodeName=NODE)),
    fargate_case("node-name-job", False, "Job", spec=fargate_spec(nodeName=NODE)),
    fargate_case("kata-node-selector", False, spec=fargate_spec(nodeSelector={"workload-type": "kata"})),
    fargate_case(
        "ec2-node-selector", False, "Pod", spec=fargate_spec("Pod", nodeSelector={FARGATE_COMPUTE_TYPE: "ec2"})
    ),
    fargate_case("node-affinity", False, "StatefulSet", spec=fargate_spec(affinity=AFFINITY)),
    fargate_case("compute-type-annotation-ec2", False, annotations=EC2),
    fargate_case("compute-type-annotation-ec2-pod", False, "Pod", annotations=EC2),
    fargate_case(
        "kata-toleration-default-scheduler",
        False,
        "Pod",
        spec=fargate_spec("Pod", tolerations=[KATA_TOLERATION], schedulerName="default-scheduler"),
    ),
    fargate_case("host-network", False, spec=fargate_spec(hostNetwork=True)),
    fargate_case("daemonset-pod", False, "Pod", owner="DaemonSet", spec=fargate_spec("Pod", nodeName=NODE)),
    # the red team: claiming Fargate where no profile binds the namespace
    fargate_case("claim-in-kata-tenant", False, namespace=SANDBOX_NAMESPACE),
    fargate_case("claim-pod-in-kata-tenant", False, "Pod", namespace=SANDBOX_NAMESPACE),
    fargate_case("claim-elsewhere", False, "SandboxTemplate", namespace=PLAIN_NAMESPACE),
    fargate_case("claim-unlabelled-namespace-decides", False, namespace=DEDICATED_NAMESPACE, labelled=False),
]

SANDBOX_NAMESPACES = tuple(name for name, labels in NAMESPACE_LABELS.items() if labels.get(SANDBOX_LABEL) == "true")
