"""The internal Network Load Balancer every in-cluster service a Kata pod must call sits behind (Kata pods cannot reach
ClusterIPs): AWS Load Balancer Controller annotations and class. Details: ../shared/design.md section 2.
"""

NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    # Without cross-zone load balancing, clients in a zone with no LiteLLM pod fail silently.
    "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
}
NLB_CLASS = "service.k8s.aws/nlb"
