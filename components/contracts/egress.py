"""What the egress area provides the others: the proxy every sandbox in allowlist mode sends its internet traffic
through, and the metrics Prometheus scrapes from it."""

from components.contracts.namespaces import EGRESS_NAMESPACE
from components.contracts.services import SANDBOXES, Service

NAMESPACE = EGRESS_NAMESPACE
APP = "egress-proxy"
SELECTOR = {"app.kubernetes.io/name": APP}
PROXY_PORT = 3128  # the NLB listener and Squid's port
MTAIL_PORT = 3903  # per-tenant metrics from the access log
# Sandboxes reach the proxy through an internal NLB; it is the proxy, so no caller excludes it from the proxy.
PROXY = Service("egress-proxy-nlb", NAMESPACE, SELECTOR, PROXY_PORT, callers=(SANDBOXES,), port_name="proxy", nlb=True)
