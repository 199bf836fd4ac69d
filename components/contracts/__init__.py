"""What the areas promise each other: namespaces, labels and taints, ports, address ranges and the facts each area
exports (its namespace, selectors, ports, URLs). Pulumi-free data, so config validation, the components, the offline
tools and the tests read one home for each name; the policy pack (a separate package) is tested against them
(tests/test_contracts.py)."""
