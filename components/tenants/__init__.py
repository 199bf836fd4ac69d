"""Tenants and their agents: the Tenant component, the agent types and the sandbox pods they run in."""
