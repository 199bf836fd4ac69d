"""Pulumi resource type tokens the tests look registrations up by (one name for each, shared by the modules)."""

from __future__ import annotations

ADDON = "aws:eks/addon:Addon"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "aws:iam/role:Role"
RUNTIME_CLASS = "kubernetes:node.k8s.io/v1:RuntimeClass"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
TEMPLATE = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate"
