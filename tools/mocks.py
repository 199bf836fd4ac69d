"""Believable engine answers for the offline preview: what AWS and Kubernetes would report back.

Resource outputs echo the inputs plus the fields a provider computes (ids, ARNs, DNS names,
kubeconfig). Remote components (``eks:index:Cluster``) are one resource here, so their outputs,
including the ``eksCluster`` resource reference, are mocked as the real component returns them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.mocks import MockMonitor

ACCOUNT_ID = "123456789012"
_RESOURCE_REF_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG = "4dabf18193072939515e22adb298388d"


def _suffix(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def _service(type_: str) -> str:
    """``aws:ec2/vpc:Vpc`` -> ``ec2``."""
    return type_.split(":")[1].split("/")[0]


class PlatformMocks(Mocks):
    """Answers ``RegisterResource`` and invokes for the types this program uses."""

    def __init__(
        self,
        region: str = "us-east-1",
        stack: str = "dev",
        project: str = "agent-platform",
        stack_references: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.region = region
        self.stack = stack
        self.project = project
        # "org/project/stack" -> {"outputs": {...}, "secretOutputNames": [...]}, for StackReference reads
        self.stack_references = stack_references or {}
        self.monitor: MockMonitor | None = None  # set by the monitor, to register synthetic children

    # ---- invokes
    def call(self, args: MockCallArgs) -> dict:
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return self._zones(args.args)
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = f"arn:aws:iam::{ACCOUNT_ID}:role/ci"
            return {"accountId": ACCOUNT_ID, "arn": arn, "userId": "AROA:ci", "id": ACCOUNT_ID}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:eks/getAddonVersion:getAddonVersion":
            name, k8s_version = args.args.get("addonName", ""), args.args.get("kubernetesVersion", "")
            return {**args.args, "version": f"v{k8s_version}.0-eksbuild.1", "id": name}
        if token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": json.dumps({"Version": "2012-10-17", "Statement": args.args.get("statements", [])})}
        return dict(args.args)

    def _zones(self, query: dict[str, Any]) -> dict[str, Any]:
        """Six zones and an opted-in Local Zone (its name sorts first), filtered as asked (zone-type filter,
        exclude_zone_ids); zone IDs in this account's order, as in us-east-1 where az3 is the third name."""
        code = _region_code(self.region)
        zones = [(f"{self.region}-bos-1a", f"{code}-bos1-az1", "local-zone")]
        zones += [(f"{self.region}{z}", f"{code}-az{i}", "availability-zone") for i, z in enumerate("abcdef", 1)]
        for wanted in query.get("filters") or []:
            if wanted.get("name") == "zone-type":
                zones = [z for z in zones if z[2] in wanted.get("values", [])]
        zones = [z for z in zones if z[1] not in (query.get("excludeZoneIds") or [])]
        return {"names": [z[0] for z in zones], "zoneIds": [z[1] for z in zones], "id": self.region}

    # ---- resources
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        type_, name = args.typ, args.name
        if type_ == "eks:index:Cluster":
            return f"{name}-{_suffix(type_, name)}", self._eks_cluster(name, state)
        if type_ == "pulumi:pulumi:StackReference":
            ref = self.stack_references.get(state["name"])
            if ref is None:
                raise KeyError(f"no mocked stack {state['name']!r}; known: {sorted(self.stack_references)}")
            return state["name"], {"name": state["name"], **ref}
        if type_.startswith("aws:"):
            state.setdefault("arn", self._arn(type_, name, state))
            state.setdefault("tagsAll", state.get("tags", {}))
        answer = _ANSWERS.get(type_) or _PREFIX_ANSWERS.get(type_.split(":", 1)[0])
        rid = answer(self, type_, name, state) if answer else None
        return rid or f"{name}-{_suffix(type_, name)}", state

    def _arn(self, type_: str, name: str, state: dict[str, Any]) -> str:
        resource = type_.split(":")[-1].lower()
        return f"arn:aws:{_service(type_)}:{self.region}:{ACCOUNT_ID}:{resource}/{state.get('name', name)}"

    def _service_status(self, state: dict[str, Any]) -> dict[str, Any]:
        if (state.get("spec") or {}).get("type") != "LoadBalancer":
            return {}
        meta = state.get("metadata") or {}
        ns, svc = meta.get("namespace", "default"), meta.get("name", "svc")
        annotations = meta.get("annotations") or {}
        scheme = (
            "internal-" if annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") == "internal" else ""
        )
        host = f"k8s-{ns[:8]}-{svc[:8]}-{_suffix(ns, svc)}{_suffix(svc)[:2]}.elb.{self.region}.amazonaws.com"
        return {"loadBalancer": {"ingress": [{"hostname": f"{scheme}{host}" if scheme else host}]}}

    def _eks_cluster(self, name: str, state: dict[str, Any]) -> dict[str, Any]:
        cluster_name = state.get("name") or name
        endpoint = (
            f"https://{_suffix(cluster_name).upper()}{_suffix(name, 'ep').upper()}.gr7.{self.region}.eks.amazonaws.com"
        )
        issuer = f"https://oidc.eks.{self.region}.amazonaws.com/id/{_suffix(cluster_name, 'oidc').upper() * 4}"
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": "LS0tLS1CRUdJTi=="},
                }
            ],
            "contexts": [{"name": "aws", "context": {"cluster": cluster_name, "user": "aws"}}],
            "current-context": "aws",
            "users": [
                {
                    "name": "aws",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name],
                        }
                    },
                }
            ],
        }
        eks_urn = self._register_child(
            "aws:eks/cluster:Cluster",
            f"{name}-eksCluster",
            cluster_name,
            {
                "name": cluster_name,
                "arn": f"arn:aws:eks:{self.region}:{ACCOUNT_ID}:cluster/{cluster_name}",
                "endpoint": endpoint,
                "version": state.get("version", "1.34"),
                "identities": [{"oidcs": [{"issuer": issuer}]}],
                "vpcConfig": {"clusterSecurityGroupId": f"sg-{_suffix(name, 'cluster')}"},
                "certificateAuthority": {"data": "LS0tLS1CRUdJTi=="},
            },
        )
        oidc_host = issuer.removeprefix("https://")
        return {
            **state,
            "kubeconfig": kubeconfig,
            "kubeconfigJson": json.dumps(kubeconfig),
            "eksCluster": {_SIG: _RESOURCE_REF_SIG, "urn": eks_urn, "id": cluster_name, "packageVersion": ""},
            "clusterSecurityGroupId": f"sg-{_suffix(name, 'cluster')}",
            "nodeSecurityGroupId": f"sg-{_suffix(name, 'node')}",
            "oidcProviderArn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{oidc_host}",
            "oidcProviderUrl": issuer,  # upstream: the issuer URL; oidcIssuer drops https://
            "oidcIssuer": oidc_host,
        }

    def _register_child(self, type_: str, name: str, rid: str, state: dict[str, Any]) -> str:
        """Record a resource the remote component would have created, so references to it resolve."""
        urn = f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"
        if self.monitor is not None:
            self.monitor.resources[urn] = MockMonitor.ResourceRegistration(urn, rid, state)
        return urn


# What a provider adds to a resource's state, by type: each function completes ``state`` in place and returns
# the resource's id when it is not the default ``<name>-<hash>``.
Answer = Callable[[PlatformMocks, str, str, dict[str, Any]], str | None]


def _vpc(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    state.update(defaultSecurityGroupId=f"sg-{_suffix(name, 'default')}", mainRouteTableId=f"rtb-{_suffix(name)}")
    return f"vpc-{_suffix(name)}"


def _eip(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    state["publicIp"] = f"203.0.113.{int(_suffix(name), 16) % 250 + 1}"
    return f"eipalloc-{_suffix(name)}"


def _launch_template(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    state["latestVersion"] = 1
    return f"lt-{_suffix(name)}"


def _iam_arn(state: dict[str, Any], name: str, kind: str) -> str:
    """IAM names default to the resource name; IAM ARNs have no region."""
    state.setdefault("name", name)
    state["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:{kind}/{state['name']}"
    return state["arn"]


def _role(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    _iam_arn(state, name, "role")
    state["uniqueId"] = f"AROA{_suffix(name).upper()}"
    return state["name"]


def _named(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    state.setdefault("name", name)


def _instance_profile(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    _iam_arn(state, name, "instance-profile")


def _policy(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    return _iam_arn(state, name, "policy")


def _kms_key(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    rid = f"{_suffix(name)}-0000-4000-8000-{_suffix(name, 'key')}0000"
    state.update(keyId=rid, arn=f"arn:aws:kms:{mocks.region}:{ACCOUNT_ID}:key/{rid}")
    return rid


def _queue(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    state.setdefault("name", name)
    state["arn"] = f"arn:aws:sqs:{mocks.region}:{ACCOUNT_ID}:{state['name']}"
    state["url"] = f"https://sqs.{mocks.region}.amazonaws.com/{ACCOUNT_ID}/{state['name']}"
    return state["url"]


def _node_group(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    state.setdefault("nodeGroupName", name)
    state["status"] = "ACTIVE"


def _pod_identity(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    state["associationId"] = f"a-{_suffix(name)}"
    state["associationArn"] = mocks._arn(type_, name, state)


def _service_object(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    state["status"] = mocks._service_status(state)


def _release(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    state["status"] = {
        "name": state.get("name", name),
        "namespace": state.get("namespace", "default"),
        "status": "deployed",
        "version": state.get("version", ""),
        "revision": 1,
    }


def _random(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> str:
    state["result"] = "r" * int(state.get("length", 32))
    return f"random-{_suffix(name)}"


def _kubernetes_object(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    if isinstance(state.get("metadata"), dict):
        state["metadata"] = {"uid": f"uid-{_suffix(type_, name)}", **state["metadata"]}


def _region_code(region: str) -> str:
    """``us-east-1`` -> ``use1``, as in ElastiCache Serverless endpoint names."""
    parts = region.split("-")
    return parts[0] + "".join(p[0] for p in parts[1:-1]) + parts[-1]


def _serverless_cache(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    host = f"{state.get('name', name)}-{_suffix(name)[:6]}.serverless.{_region_code(mocks.region)}.cache.amazonaws.com"
    state["endpoints"] = [{"address": host, "port": 6379}]
    state["readerEndpoints"] = [{"address": host, "port": 6380}]


def _db_instance(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    identifier = state.get("identifier") or f"{name}-{_suffix(name)}"
    state["address"] = f"{identifier}.c{_suffix(mocks.region)[:10]}.{mocks.region}.rds.amazonaws.com"
    state["endpoint"] = f"{state['address']}:{state.get('port', 5432)}"
    state["resourceId"] = f"db-{_suffix(name, 'resource').upper()}"
    state.setdefault("engineVersionActual", state.get("engineVersion", ""))  # the real one names its minor
    if state.get("manageMasterUserPassword"):
        arn = f"arn:aws:secretsmanager:{mocks.region}:{ACCOUNT_ID}:secret:rds!{state['resourceId'].lower()}-AbCdEf"
        state["masterUserSecrets"] = [{"secretArn": arn, "secretStatus": "active", "kmsKeyId": ""}]


_FAKE_PEM = "-----BEGIN {kind}-----\nT0ZGTElORS1QUkVWSUVXLU5PVC1BLVJFQUwtS0VZ\n-----END {kind}-----\n"


def _tls(mocks: PlatformMocks, type_: str, name: str, state: dict[str, Any]) -> None:
    """pulumi-tls: placeholder PEM blocks (the offline preview never holds a real key or certificate)."""
    kind = type_.rsplit(":", 1)[-1]
    if kind == "PrivateKey":
        state["privateKeyPem"] = _FAKE_PEM.format(kind="PRIVATE KEY")
        state["publicKeyPem"] = _FAKE_PEM.format(kind="PUBLIC KEY")
    elif kind == "CertRequest":
        state["certRequestPem"] = _FAKE_PEM.format(kind="CERTIFICATE REQUEST")
    else:
        state["certPem"] = _FAKE_PEM.format(kind=f"CERTIFICATE {name}")


def _prefixed(prefix: str) -> Answer:
    return lambda mocks, type_, name, state: f"{prefix}-{_suffix(name)}"


_ANSWERS: dict[str, Answer] = {
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/subnet:Subnet": _prefixed("subnet"),
    "aws:ec2/securityGroup:SecurityGroup": _prefixed("sg"),
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:iam/role:Role": _role,
    "aws:cloudwatch/eventRule:EventRule": _named,
    "aws:iam/instanceProfile:InstanceProfile": _instance_profile,
    "aws:iam/policy:Policy": _policy,
    "aws:kms/key:Key": _kms_key,
    "aws:sqs/queue:Queue": _queue,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": _pod_identity,
    "aws:elasticache/serverlessCache:ServerlessCache": _serverless_cache,
    "aws:rds/instance:Instance": _db_instance,
    "kubernetes:core/v1:Service": _service_object,  # a Service or a Release gets no metadata uid here
    "kubernetes:helm.sh/v3:Release": _release,
}
# By package, for the types the table above does not name.
_PREFIX_ANSWERS: dict[str, Answer] = {"random": _random, "kubernetes": _kubernetes_object, "tls": _tls}
