"""Ports the areas share. Sandboxes reach only the first two: the listeners of the internal NLBs."""

LITELLM_PORT = 4000  # the model gateway's NLB listener (and LiteLLM's own port)
PROXY_PORT = 3128  # the egress proxy NLB listener (components/egress/proxy.py)
VLLM_PORT = 8000  # the model servers' OpenAI API and /metrics (vLLM's default); reached by LiteLLM only
