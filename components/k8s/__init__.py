"""Kubernetes building blocks the areas share: pod specs, quantities, NLB Services, common objects."""
