"""Agent platform on Amazon EKS: read the stack config once, compose the components, export outputs."""

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.config import ConfigError, load
from components.network import Network, NetworkArgs

try:
    cfg = load()
except ConfigError as error:
    # One clear line naming the key, not a traceback from deep inside a provider.
    raise pulumi.RunError(str(error)) from None

# --- network
network = Network("network", NetworkArgs(cfg.network, cfg.cluster.name, protect=cfg.protect))

# --- cluster and capacity
cluster = Cluster(
    "cluster",
    ClusterArgs(
        cfg.cluster,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        public_subnet_ids=network.public_subnet_ids,
        protect=cfg.protect,
    ),
)

# --- kata runtime and tenants

# --- model gateway and observability

# --- outputs
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
