"""Address ranges the platform's rules name."""

# IPv4 that is not the internet: "this network", RFC 1918, CGNAT, loopback, link-local (instance metadata, Pod
# Identity). Sandboxes reach none of it as "the internet" (NetworkPolicy), nor by name through the egress proxy.
NON_INTERNET_IPV4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
)
INSTANCE_METADATA = "169.254.169.254/32"
