"""AWS building blocks the areas share: IAM roles and Pod Identity, node user data, the Bedrock scope, and the
upstream IAM policies (iam_policies/*.json) the controllers ship."""
