"""Entry point of the policy pack: `pulumi preview --policy-pack policies`."""

from agent_policies import POLICY_PACK_NAME, all_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=POLICY_PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=all_policies(),
)
