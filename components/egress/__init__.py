"""The egress proxy: Squid with per-tenant domain allowlists behind an internal NLB."""
