"""One corpus of sandbox cases that both gates must decide the same way.

tests/test_admission.py runs every case through the rendered ValidatingAdmissionPolicies and the CrossGuard pack
and fails when either disagrees with the expected decision. Details and the dev-stack values the corpus assumes:
docs/admission.md#the-two-gates-agree-the-shared-corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.labels import SANDBOX_LABEL
from tools.policy_fixtures import VPC_DNS, Kind, kata_spec, workload

ALLOWED_RUNTIME_CLASSES = ("kata-clh", "kata-qemu")
SERVICE_CIDR = "172.20.0.0/16"
SANDBOX_NAMESPACE = "tenant-a"  # labelled agent-platform.io/sandbox=true
PLAIN_NAMESPACE = "apps"  # no label

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
    labels = {"kubernetes.io/metadata.name": name}
    if name == SANDBOX_NAMESPACE:
        labels[SANDBOX_LABEL] = "true"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def dns(*nameservers: str, policy: str = "None") -> dict[str, Any]:
    return {"dnsPolicy": policy, "dnsConfig": {"nameservers": list(nameservers)}}


def build(kind: str, spec: Mapping[str, Any], ns: str, labelled: bool, name: str = "hermes") -> dict[str, Any]:
    """The object as kubectl (or Pulumi) sends it; the sandbox label, when set, is on the object and on
    its pod template, as the program sets it."""
    api_version, resource_type = KINDS[kind]
    shape = Kind(resource_type, api_version, kind, "")
    return workload(shape, dict(spec), sandbox=labelled, namespace=ns, name=name, object_labels=True)


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    allowed: bool
    kind: str = "Pod"
    namespace: str = SANDBOX_NAMESPACE
    labelled: bool = True  # sandbox label on the object and its pod template

    def object(self) -> dict[str, Any]:
        return build(self.kind, self.spec, self.namespace, self.labelled)

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

SANDBOX_NAMESPACES = (SANDBOX_NAMESPACE,)
