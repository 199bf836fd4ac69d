"""Where sandboxes run: Karpenter with its NodePools and EC2NodeClasses, and the opt-in managed Kata node group."""
