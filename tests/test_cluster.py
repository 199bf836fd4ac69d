"""Cluster component: EKS control plane inputs, KMS secrets encryption, access entries, managed
add-ons, the core node group on its IMDSv2 launch template, the default gp3 StorageClass."""

from __future__ import annotations

import json

import pytest

from tests.conftest import program_result
from tests.schemas import validate_object
from tests.tokens import ADDON, ATTACHMENT, LAUNCH_TEMPLATE, NODE_GROUP
from tools.program import MASK, ProgramResult, Registration

EKS = "eks:index:Cluster"
STACKS = {
    # stack: (k8s version, core types, (min, desired, max), public CIDRs, protect)
    "dev": ("1.36", ["m8i.xlarge"], (2, 2, 3), ["203.0.113.0/24"], False),
    "staging": ("1.36", ["m8i.xlarge"], (2, 2, 4), ["198.51.100.0/24"], False),
    "prod": ("1.36", ["m8i.xlarge", "m8i.2xlarge"], (3, 3, 6), ["198.51.100.0/24"], True),
}


ADMINS = ["arn:aws:iam::123456789012:role/ops", "arn:aws:iam::210987654321:role/break-glass"]
# One run with every cluster knob changed from the dev stack (each run costs about a second).
CUSTOM = {
    "agent-platform:endpointPublicAccessCidrs": [],
    "agent-platform:serviceCidr": "10.100.0.0/16",
    "agent-platform:kubernetesVersion": "1.33",
    "agent-platform:adminRoleArns": ADMINS,
    "agent-platform:coreDiskGiB": 80,
}


def custom() -> ProgramResult:
    return program_result("dev", CUSTOM)


def eks(result: ProgramResult) -> Registration:
    return result.named(EKS, "cluster-eks")


# --- control plane


@pytest.mark.parametrize("stack", list(STACKS))
def test_eks_control_plane_inputs(stack: str) -> None:
    result = program_result(stack)
    version, _, _, public_cidrs, protect = STACKS[stack]
    cluster = eks(result)
    inputs = cluster.inputs
    assert inputs["name"] == f"agents-{stack}"
    assert inputs["version"] == version
    assert inputs["authenticationMode"] == "API"
    assert inputs["createOidcProvider"] is True
    assert inputs["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert inputs["endpointPrivateAccess"] is True
    assert inputs["endpointPublicAccess"] is True
    assert inputs["publicAccessCidrs"] == public_cidrs
    assert inputs["kubernetesServiceIpAddressRange"] == "172.20.0.0/16"
    assert inputs["skipDefaultNodeGroup"] is True
    # Only the EKS-created cluster SG: one SG tagged kubernetes.io/cluster/<name> per node ENI.
    assert inputs["skipDefaultSecurityGroups"] is True
    # The managed add-ons declared below are the only ones: no self-managed copies, none from pulumi-eks.
    assert inputs["bootstrapSelfManagedAddons"] is False
    assert inputs["useDefaultVpcCni"] is True
    assert inputs["kubeProxyAddonOptions"] == {"enabled": False}
    assert inputs["corednsAddonOptions"] == {"enabled": False}
    assert cluster.protect is protect
    assert inputs["deletionProtection"] is protect


@pytest.mark.parametrize("stack", list(STACKS))
def test_control_plane_on_private_subnets_only(stack: str) -> None:
    result = program_result(stack)
    inputs = eks(result).inputs
    private = [r.urn for r in result.of_type("aws:ec2/subnet:Subnet") if "-private-" in r.name]
    assert len(inputs["privateSubnetIds"]) == len(private)
    assert inputs["privateSubnetIds"] == result.outputs["privateSubnetIds"]
    assert "publicSubnetIds" not in inputs
    assert "subnetIds" not in inputs


def test_private_endpoint_only_without_public_cidrs() -> None:
    inputs = eks(custom()).inputs
    assert inputs["endpointPrivateAccess"] is True
    assert inputs["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in inputs


def test_service_cidr_comes_from_config() -> None:
    assert eks(custom()).inputs["kubernetesServiceIpAddressRange"] == "10.100.0.0/16"


def test_kubernetes_version_comes_from_config() -> None:
    result = custom()
    assert eks(result).inputs["version"] == "1.33"
    addon = result.named(ADDON, "cluster-kube-proxy").inputs
    assert addon["addonVersion"] == "v1.33.0-eksbuild.1"  # EKS' default add-on build for that version


# --- secrets encryption


@pytest.mark.parametrize(("stack", "protect"), [("dev", False), ("prod", True)])
def test_secrets_are_encrypted_with_a_rotating_kms_key(stack: str, protect: bool) -> None:
    result = program_result(stack)
    key = result.named("aws:kms/key:Key", "cluster-secrets-key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.protect is protect
    alias = result.named("aws:kms/alias:Alias", "cluster-secrets-key").inputs
    assert alias["name"] == f"alias/agents-{stack}-eks-secrets"
    cluster = eks(result)
    arn = cluster.inputs["encryptionConfigKeyArn"]
    assert arn == f"arn:aws:kms:us-east-1:123456789012:key/{alias['targetKeyId']}"
    assert cluster.property_dependencies["encryptionConfigKeyArn"] == [key.urn]


def test_control_plane_logs_are_retained_for_a_bounded_time(dev: ProgramResult) -> None:
    group = dev.named("aws:cloudwatch/logGroup:LogGroup", "cluster-logs")
    assert group.inputs["name"] == "/aws/eks/agents-dev/cluster"
    assert group.inputs["retentionInDays"] == 90
    assert group.urn in eks(dev).dependencies


# --- access entries


def test_admin_roles_get_cluster_admin_access_entries() -> None:
    result = program_result("prod")
    entries = [r for r in result.of_type("aws:eks/accessEntry:AccessEntry") if r.inputs["type"] == "STANDARD"]
    assert [e.inputs["principalArn"] for e in entries] == ["arn:aws:iam::123456789012:role/platform-admins"]
    association = result.named(
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "cluster-admin-platform-admins"
    )
    assert association.inputs == {
        "clusterName": "agents-prod",
        "principalArn": "arn:aws:iam::123456789012:role/platform-admins",
        "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        "accessScope": {"type": "cluster"},
    }
    assert association.parent == entries[0].urn


def test_each_admin_role_gets_its_own_entry() -> None:
    roles, result = ADMINS, custom()
    entries = {
        e.inputs["principalArn"]
        for e in result.of_type("aws:eks/accessEntry:AccessEntry")
        if e.inputs["type"] == "STANDARD"
    }
    associations = result.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert entries == set(roles)
    assert {a.inputs["principalArn"] for a in associations} == set(roles)
    assert all(a.inputs["accessScope"] == {"type": "cluster"} for a in associations)


def test_no_admin_entries_without_admin_roles(dev: ProgramResult) -> None:
    assert not dev.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    # Managed node groups get their access entries from EKS; only Karpenter's node role needs one.
    assert [e.inputs["type"] for e in dev.of_type("aws:eks/accessEntry:AccessEntry")] == ["EC2_LINUX"]


# --- add-ons


def test_all_managed_addons_are_first_class(dev: ProgramResult) -> None:
    names = {r.inputs["addonName"] for r in dev.of_type(ADDON)}
    assert names == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver", "eks-pod-identity-agent"}
    for addon in dev.of_type(ADDON):
        assert addon.inputs["clusterName"] == "agents-dev"
        assert addon.inputs["addonVersion"] == "v1.36.0-eksbuild.1"
        assert addon.inputs["resolveConflictsOnCreate"] == addon.inputs["resolveConflictsOnUpdate"] == "OVERWRITE"


def test_vpc_cni_uses_prefix_delegation_and_enforces_network_policies(each_stack: ProgramResult) -> None:
    cni = each_stack.named(ADDON, "cluster-vpc-cni")
    config = json.loads(cni.inputs["configurationValues"])
    assert config["env"]["ENABLE_PREFIX_DELEGATION"] == "true"
    assert config["env"]["WARM_PREFIX_TARGET"] == "1"
    assert config["enableNetworkPolicy"] == "true"


def test_networking_addons_exist_before_any_node_and_workload_addons_after(dev: ProgramResult) -> None:
    before = {dev.named(ADDON, f"cluster-{a}").urn for a in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")}
    core = dev.named(NODE_GROUP, "cluster-core-nodes")
    for group in dev.of_type(NODE_GROUP):
        assert before <= set(group.dependencies), group.name
    for addon in ("coredns", "aws-ebs-csi-driver"):
        assert core.urn in dev.named(ADDON, f"cluster-{addon}").dependencies


def test_ebs_csi_driver_uses_pod_identity_with_the_aws_managed_policy(dev: ProgramResult) -> None:
    addon = dev.named(ADDON, "cluster-aws-ebs-csi-driver")
    role = dev.named("aws:iam/role:Role", "cluster-ebs-csi-role")
    assert addon.inputs["podIdentityAssociations"] == [
        {"roleArn": f"arn:aws:iam::123456789012:role/{role.name}", "serviceAccount": "ebs-csi-controller-sa"}
    ]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    attached = [r.inputs["policyArn"] for r in dev.of_type(ATTACHMENT) if r.parent == role.urn]
    assert attached == ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]


def test_default_storage_class_is_encrypted_gp3(dev: ProgramResult) -> None:
    sc = dev.named("kubernetes:storage.k8s.io/v1:StorageClass", "cluster-gp3")
    validate_object(sc.inputs)
    assert sc.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc.inputs["provisioner"] == "ebs.csi.aws.com"
    assert sc.inputs["parameters"]["type"] == "gp3"
    assert sc.inputs["parameters"]["encrypted"] == "true"
    assert sc.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc.provider.endswith("::cluster-k8s")


# --- core node group


@pytest.mark.parametrize("stack", list(STACKS))
def test_core_node_group_shape(stack: str) -> None:
    result = program_result(stack)
    _, types, (lo, desired, hi), _, _ = STACKS[stack]
    group = result.named(NODE_GROUP, "cluster-core-nodes").inputs
    assert group["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["capacityType"] == "ON_DEMAND"
    assert group["instanceTypes"] == types
    assert group["scalingConfig"] == {"minSize": lo, "desiredSize": desired, "maxSize": hi}
    assert group["labels"] == {"node-role.agent-platform.io/core": "true"}
    assert "taints" not in group
    assert group["updateConfig"] == {"maxUnavailable": 1}
    assert group["subnetIds"] == result.outputs["privateSubnetIds"]
    assert group["clusterName"] == f"agents-{stack}"


def test_core_nodes_have_their_own_role_with_the_node_policies(dev: ProgramResult) -> None:
    group = dev.named(NODE_GROUP, "cluster-core-nodes")
    role = dev.named("aws:iam/role:Role", "cluster-core-node-role")
    assert (
        group.inputs["nodeRoleArn"] == dev.outputs["coreNodeRoleArn"] == f"arn:aws:iam::123456789012:role/{role.name}"
    )
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attachments = [r for r in dev.of_type(ATTACHMENT) if r.parent == role.urn]
    assert {a.inputs["policyArn"].rsplit("/", 1)[1] for a in attachments} == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEC2ContainerRegistryReadOnly",
    }
    # Policies are attached before nodes try to join.
    assert {a.urn for a in attachments} <= set(group.dependencies)


@pytest.mark.parametrize(("stack", "disk"), [("dev", 50), ("prod", 50)])
def test_core_launch_template_requires_imdsv2_and_encrypts_the_root_volume(stack: str, disk: int) -> None:
    result = program_result(stack)
    group = result.named(NODE_GROUP, "cluster-core-nodes")
    template = result.named(LAUNCH_TEMPLATE, "cluster-core-lt")
    assert template.urn in group.property_dependencies["launchTemplate"]
    assert group.inputs["launchTemplate"]["version"] == "1"
    lt = template.inputs
    assert lt["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    assert lt["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {"volumeSize": disk, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"},
        }
    ]
    assert lt["vpcSecurityGroupIds"] == [result.outputs["clusterSecurityGroupId"]]
    assert "cpuOptions" not in lt
    assert "imageId" not in lt


def test_core_disk_size_comes_from_config() -> None:
    ebs = custom().named(LAUNCH_TEMPLATE, "cluster-core-lt").inputs["blockDeviceMappings"][0]["ebs"]
    assert ebs["volumeSize"] == 80


# --- interface for the other components


def test_core_nodes_carry_the_eks_cluster_security_group(dev: ProgramResult) -> None:
    sg = dev.outputs["clusterSecurityGroupId"]
    assert sg.startswith("sg-")
    assert dev.named(LAUNCH_TEMPLATE, "cluster-core-lt").inputs["vpcSecurityGroupIds"] == [sg]
    # Sandbox nodes carry their own group (tests/test_node_security.py); nothing tags the cluster SG for them.
    assert not dev.of_type("aws:ec2/tag:Tag")


def test_kubernetes_provider_uses_the_secret_kubeconfig_and_waits_for_core_nodes(dev: ProgramResult) -> None:
    provider = dev.named("pulumi:providers:kubernetes", "cluster-k8s")
    assert provider.inputs["kubeconfig"] == MASK
    kubeconfig = json.loads(provider.plain["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == dev.outputs["clusterEndpoint"]
    assert dev.named(NODE_GROUP, "cluster-core-nodes").urn in provider.dependencies
    assert "kubeconfig" in dev.secret_outputs


def test_every_kubernetes_object_and_only_those_use_the_clusters_provider(each_stack: ProgramResult) -> None:
    """Components get the provider through ``opts.providers`` and their children inherit it by package: every
    in-cluster object lands on the cluster's provider, while the AWS children of mixed components (gateway,
    Karpenter, LB controller) keep the default AWS provider."""
    cluster = each_stack.named("pulumi:providers:kubernetes", "cluster-k8s")
    kubernetes = [r for r in each_stack.registrations if r.custom and r.type.startswith("kubernetes:")]
    assert len(kubernetes) > 50
    assert {r.provider for r in kubernetes} == {cluster.urn}
    others = {r.type for r in each_stack.registrations if r.provider and not r.type.startswith("kubernetes:")}
    assert not others


def test_oidc_outputs(dev: ProgramResult) -> None:
    assert dev.outputs["oidcProviderArn"].startswith("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.")
    assert dev.outputs["oidcProviderUrl"].startswith("oidc.eks.us-east-1.amazonaws.com/id/")
    assert dev.outputs["oidcProviderArn"].endswith(dev.outputs["oidcProviderUrl"])


def test_cluster_children_are_parented_to_the_component(dev: ProgramResult) -> None:
    component = dev.named("agent-platform:cluster:Cluster", "cluster")
    direct = {r.name for r in dev.registrations if r.parent == component.urn}
    assert {
        "cluster-eks",
        "cluster-secrets-key",
        "cluster-core-nodes",
        "cluster-core-lt",
        "cluster-k8s",
        "cluster-gp3",
    } <= direct
    assert {f"cluster-{a}" for a in ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver")} <= direct


def test_no_stack_opens_the_api_endpoint_to_the_internet(each_stack: ProgramResult) -> None:
    """Issue 14: the dev endpoint was public to 0.0.0.0/0; every stack now names its CIDRs (or none)."""
    import ipaddress

    for cidr in eks(each_stack).inputs.get("publicAccessCidrs") or []:
        assert ipaddress.ip_network(cidr).prefixlen >= 8, cidr
