"""The VPC, the sandbox nodes' security groups and the platform namespaces' NetworkPolicies."""
