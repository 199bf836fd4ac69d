"""AL2023 node user data: a MIME multipart document of nodeadm NodeConfig parts and shell scripts.

nodeadm merges every ``application/node.eks.aws`` part into its configuration; cloud-init runs the shell
scripts before nodeadm starts containerd. EKS managed node groups and Karpenter both merge their own
nodeadm part into the document.
"""

from __future__ import annotations

from collections.abc import Sequence

NODECONFIG = "application/node.eks.aws"
SHELL = 'text/x-shellscript; charset="us-ascii"'


def containerd_node_config(toml: str) -> str:
    """A NodeConfig part adding ``toml`` to containerd's configuration."""
    indented = "".join(f"      {line}\n" for line in toml.strip("\n").splitlines())
    return f"---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  containerd:\n    config: |\n{indented}"


def multipart(parts: Sequence[tuple[str, str]], boundary: str) -> str:
    """``(content type, body)`` parts as one MIME multipart/mixed document."""
    lines = ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"', ""]
    for content_type, body in parts:
        lines += [f"--{boundary}", f"Content-Type: {content_type}", "", body]
    lines.append(f"--{boundary}--")
    return "\n".join(lines) + "\n"
