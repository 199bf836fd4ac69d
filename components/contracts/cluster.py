"""What the network and the cluster provide the areas built on them."""

STORAGE_CLASS = "gp3"  # the cluster's default StorageClass (components/cluster/eks.py): encrypted gp3 via EBS CSI
DISCOVERY_TAG = "karpenter.sh/discovery"  # subnets and security groups Karpenter may use (value: cluster name)
