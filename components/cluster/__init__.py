"""The EKS cluster, its core node group and add-ons, and the AWS Load Balancer Controller."""
