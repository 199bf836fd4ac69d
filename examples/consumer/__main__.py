"""A team's own project: reads the agent platform's outputs and deploys into its tenant namespace.

Run it with `pulumi config set platformStack <org>/agent-platform/dev` and `pulumi config set tenant acme`.
"""

import json

import pulumi
import pulumi_kubernetes as k8s

SUPPORTED_MAJOR = "1"  # the docs/outputs.md contract version this program was written for

config = pulumi.Config()
platform = pulumi.StackReference(config.require("platformStack"))
tenant = config.require("tenant")


def check_contract(version: str) -> str:
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise pulumi.RunError(f"platform outputsVersion {version} is not compatible with {SUPPORTED_MAJOR}.x")
    return version


version = platform.require_output("outputsVersion").apply(check_contract)
namespace = platform.require_output("tenantNamespaces").apply(lambda namespaces: namespaces[tenant])
provider = k8s.Provider("platform", kubeconfig=platform.require_output("kubeconfig"))

# Settings the team's own tools need to reach the model gateway from inside a Kata sandbox.
k8s.core.v1.ConfigMap(
    "gateway-settings",
    metadata={"name": "gateway-settings", "namespace": namespace},
    data={
        "LITELLM_BASE_URL": platform.require_output("litellmEndpoint"),
        "RUNTIME_CLASSES": platform.require_output("runtimeClasses").apply(json.dumps),
    },
    opts=pulumi.ResourceOptions(provider=provider),
)

pulumi.export("platformOutputsVersion", version)
pulumi.export("namespace", namespace)
