"""The model gateway: LiteLLM to Amazon Bedrock with its database, cache and keys, behind the tenant-facing nginx."""
