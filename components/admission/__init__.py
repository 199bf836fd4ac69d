"""In-cluster enforcement of the sandbox rules: ValidatingAdmissionPolicies."""
