"""Realistic configuration mistakes, typed into a copy of the dev stack file, each refused the way an operator sees
it: ``make preview`` (tools.preview.main) exits 2 with ONE line on stderr naming the key, before any resource.

The same parse runs in the program (``load()`` in __main__.py raises ``pulumi.RunError``): the last tests run both
entry points as processes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, from_engine, project_schema
from components.config.aws_facts import PARTITION_REGIONS, instance_families
from components.config.gateway import BEDROCK_REGIONS
from components.config.versions import (
    CATALOG_FILE,
    EKS_KUBERNETES,
    KARPENTER_KUBERNETES,
    catalog_note,
    check_published,
    kubernetes_range,
)
from tools import preview
from tools.program import ROOT, stack_config

DEV = (ROOT / "Pulumi.dev.yaml").read_text()
CATALOG = pytest.mark.skipif(not CATALOG_FILE.is_file(), reason=f"{CATALOG_FILE} not present (a clone elsewhere)")


def line(text: str) -> tuple[str, str]:
    """An extra top-level config line, as `pulumi config set` would add it (or an operator by hand)."""
    return ("\n  agent-platform:grafanaAdminPassword:", f"\n  {text}\n  agent-platform:grafanaAdminPassword:")


def setting(key: str, old: str, new: str) -> tuple[str, str]:
    return (f"  {key}: {old}\n", f"  {key}: {new}\n")


# (what the operator did, the edit (old -> new) of Pulumi.dev.yaml, the key the one line names, part of the reason)
MISTAKES: list[Any] = [
    # the namespace: a typo is never read, so `protect` would silently stay off
    ("namespace typo", line("agent-platfrom:protect: true"), "agent-platfrom:protect", "did you mean agent-platform"),
    (
        "namespace underscore",
        line("agent_platform:protect: true"),
        "agent_platform:protect",
        "unknown config namespace",
    ),
    ("namespace camel case", line("AgentPlatform:azCount: 3"), "AgentPlatform:azCount", "unknown config namespace"),
    ("our key, other namespace", line("platform:tenants: []"), "platform:tenants", "did you mean agent-platform:ten"),
    ("no namespace", line("protect: true"), "agent-platform:protect", "written without its namespace"),
    ("unknown key", line("agent-platform:protekt: true"), "agent-platform:protekt", "did you mean 'protect'?"),
    # regions, partitions
    (
        "region typo",
        ("aws:region: us-east-1", "aws:region: us-east-7"),
        "aws:region",
        "is not an AWS region; did you mean 'us-east-",
    ),
    ("region no dashes", ("aws:region: us-east-1", "aws:region: useast1"), "aws:region", "is not an AWS region"),
    ("isolated partition", ("aws:region: us-east-1", "aws:region: us-iso-east-1"), "aws:region", "aws-iso partition"),
    (
        "China region, commercial Bedrock",
        ("aws:region: us-east-1", "aws:region: cn-north-1"),
        "agent-platform:bedrockRegion",
        "not in the partition of aws:region cn-north-1 (aws-cn)",
    ),
    (
        "admin role from another partition",
        line("agent-platform:adminRoleArns: [arn:aws-us-gov:iam::123456789012:role/ops]"),
        "agent-platform:adminRoleArns[0]",
        "is in partition aws-us-gov",
    ),
    ("Bedrock region", line("agent-platform:bedrockRegion: eu-central-3"), "agent-platform:bedrockRegion", "Bedrock"),
    # the service CIDR EKS accepts
    ("service CIDR too wide", line("agent-platform:serviceCidr: 10.96.0.0/11"), "agent-platform:serviceCidr", "/12"),
    ("service CIDR too small", line("agent-platform:serviceCidr: 172.20.0.0/25"), "agent-platform:serviceCidr", "/24"),
    (
        "service CIDR not private",
        line("agent-platform:serviceCidr: 100.64.0.0/16"),
        "agent-platform:serviceCidr",
        "is not within 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16",
    ),
    ("service CIDR in the VPC", line("agent-platform:serviceCidr: 10.1.0.0/24"), "agent-platform:serviceCidr", "overl"),
    # Kubernetes versions: EKS's offer and Karpenter's range
    (
        "Kubernetes too old",
        line("agent-platform:kubernetesVersion: '1.31'"),
        "agent-platform:kubernetesVersion",
        "no l",
    ),
    (
        "Kubernetes unquoted",
        line("agent-platform:kubernetesVersion: 1.30"),
        "agent-platform:kubernetesVersion",
        "1.30 ",
    ),
    (
        "Kubernetes newer than Karpenter",
        line("agent-platform:kubernetesVersion: '1.37'"),
        "agent-platform:kubernetesVersion",
        f"not supported by Karpenter {project_schema()['karpenterVersion']['default']}",
    ),
    ("Kubernetes too new", line("agent-platform:kubernetesVersion: '1.39'"), "agent-platform:kubernetesVersion", "yet"),
    ("Kubernetes patch", line("agent-platform:kubernetesVersion: 1.36.2"), "agent-platform:kubernetesVersion", "minor"),
    # instance types
    ("size that does not exist", line("agent-platform:coreInstanceTypes: [m8i.3xlarge]"), "[0]", "does not exist"),
    ("malformed type", line("agent-platform:coreInstanceTypes: [m8ixlarge]"), "[0]", "not an EC2 instance type"),
    ("unknown family", line("agent-platform:coreInstanceTypes: [m9z.large]"), "[0]", "not an EC2 instance family"),
    ("Kata size", line("agent-platform:kataInstanceTypes: [c8i.3xlarge]"), "kataInstanceTypes[0]", "does not exist"),
    (
        "gVisor family",
        line("agent-platform:gvisorInstanceFamilies: [m7x]"),
        "[0]",
        "not an EC2 instance family; did you mean 'm7",
    ),
    ("RDS class", line("agent-platform:litellmRdsInstanceClass: db.t4g"), "litellmRdsInstanceClass", "db.t4g.medium"),
    # absurd sizes
    ("cpu zero", ('          cpu: "2"\n', '          cpu: "0"\n'), "tenants[0].agents[0].cpu", "more than 0"),
    ("memory without unit", ("memory: 4Gi\n", "memory: 512\n"), "tenants[0].agents[0].memory", "write a unit"),
    ("negative memory", ("memory: 4Gi\n", "memory: -4Gi\n"), "tenants[0].agents[0].memory", "not a Kubernetes quan"),
    (
        "VM memory above its pod's",
        ("memory: 4Gi\n", "memory: 4Gi\n          vmMemoryMiB: 8192\n"),
        "tenants[0].agents[0].vmMemoryMiB",
        "more than the pod's memory (4Gi)",
    ),
    (
        "VM CPUs above its pod's",
        ("memory: 4Gi\n", "memory: 4Gi\n          vmCpus: 8\n"),
        "tenants[0].agents[0].vmCpus",
        "more than the pod's cpu (2)",
    ),
    ("agent bigger than Karpenter", ('cpu: "2"\n', 'cpu: "500"\n'), "tenants[0].agents[0].cpu", "karpenterCpuLimit 64"),
    ("storage", ("storageGiB: 10\n", "storageGiB: 5000\n"), "tenants[0].agents[0].storageGiB", "between 0 and 1024"),
    (
        "quota zero",
        ("      litellm:\n        maxBudget: 50", "      quota: {storage: '0'}\n      litellm:\n        maxBudget: 50"),
        "tenants[0].quota.storage",
        "more than 0",
    ),
    (
        "Prometheus disk",
        setting("agent-platform:prometheusStorageGiB", "20", "100000"),
        "prometheusStorageGiB",
        "16384",
    ),
    ("node disk", line("agent-platform:coreDiskGiB: 0"), "agent-platform:coreDiskGiB", "between 20 and 16384"),
    # YAML 1.1 booleans, at the top and inside objects
    ("yes", line("agent-platform:protect: yes"), "agent-platform:protect", "write true"),
    ("on", line("agent-platform:kataManagedNodeGroup: on"), "kataManagedNodeGroup", "write true"),
    ("True", line("agent-platform:nodeSsmAccess: True"), "agent-platform:nodeSsmAccess", "write true"),
    ("off", line("agent-platform:gvisor: off"), "agent-platform:gvisor", "write false"),
    (
        "nested yes",
        ("    - name: acme\n", "    - name: acme\n      dedicatedNodes: yes\n"),
        "tenants[0].dedicatedNodes",
        "write true",
    ),
    (
        "nested off",
        ("    - name: globex\n", "    - name: globex\n      egress: {typeDefaults: off}\n"),
        "tenants[1].egress.typeDefaults",
        "write false",
    ),
    # plain text where a secret is expected
    (
        "plain Grafana password",
        (
            "grafanaAdminPassword:\n    secure: v1:OFFLINE-PLACEHOLDER-replace-with-pulumi-config-set-secret",
            "grafanaAdminPassword: hunter2",
        ),
        "agent-platform:grafanaAdminPassword",
        "pulumi config set --secret agent-platform:grafanaAdminPassword",
    ),
    (
        "plain bot token",
        (
            "TELEGRAM_BOT_TOKEN:\n          secure: v1:OFFLINE-PLACEHOLDER-replace-with-pulumi-config-set-secret",
            "TELEGRAM_BOT_TOKEN: '123456:ABC-token'",
        ),
        "agent-platform:tenantSecrets.acme.hermes.TELEGRAM_BOT_TOKEN",
        "--path 'agent-platform:tenantSecrets.acme.hermes.TELEGRAM_BOT_TOKEN'",
    ),
    # reserved environment names
    (
        "LD_PRELOAD",
        ("[TELEGRAM_BOT_TOKEN]", "[TELEGRAM_BOT_TOKEN, LD_PRELOAD]"),
        "secretEnv[1]",
        "LD_PRELOAD is reserv",
    ),
    ("PATH", ("[TELEGRAM_BOT_TOKEN]", "[PATH]"), "tenants[0].agents[0].secretEnv[0]", "PATH is reserved"),
    ("proxy", ("[TELEGRAM_BOT_TOKEN]", "[HTTPS_PROXY]"), "secretEnv[0]", "HTTPS_PROXY is set by the platform"),
    ("service link", ("[TELEGRAM_BOT_TOKEN]", "[KUBERNETES_SERVICE_HOST]"), "secretEnv[0]", "is reserved"),
    ("Pod Identity", ("[TELEGRAM_BOT_TOKEN]", "[AWS_CONTAINER_CREDENTIALS_FULL_URI]"), "secretEnv[0]", "is reserved"),
    # budgets and limits
    ("negative budget", ("maxBudget: 50", "maxBudget: -50"), "tenants[0].litellm.maxBudget", "must be 0 or more"),
    ("budget NaN", ("maxBudget: 50", "maxBudget: .nan"), "tenants[0].litellm.maxBudget", "finite number"),
    ("negative rpm", ("rpmLimit: 60", "rpmLimit: -60"), "tenants[0].litellm.rpmLimit", "between 1 and any"),
    ("zero tpm", ("tpmLimit: 100000", "tpmLimit: 0"), "tenants[0].litellm.tpmLimit", "between 1 and any"),
    # egress CIDRs that are not the internet
    (
        "egress into the service CIDR",
        ("    - name: acme\n", "    - name: acme\n      egress: {cidrs: [172.20.4.0/24]}\n"),
        "tenants[0].egress.cidrs[0]",
        "overlaps serviceCidr 172.20.0.0/16",
    ),
    (
        "egress into the VPC",
        ("    - name: acme\n", "    - name: acme\n      egress: {cidrs: [10.1.5.0/24]}\n"),
        "tenants[0].egress.cidrs[0]",
        "overlaps vpcCidr 10.1.0.0/16",
    ),
    (
        "egress into shared address space",
        ("    - name: acme\n", "    - name: acme\n      egress: {cidrs: [100.64.0.0/16]}\n"),
        "tenants[0].egress.cidrs[0]",
        "overlaps 100.64.0.0/10",
    ),
    (
        "egress to instance metadata",
        ("    - name: acme\n", "    - name: acme\n      egress: {cidrs: [169.254.169.254/32]}\n"),
        "tenants[0].egress.cidrs[0]",
        "link-local",
    ),
]
# Versions upstream never published, or published but not vendored (../shared/charts/catalog.json).
VERSION_MISTAKES = [
    ("kubePrometheusStackVersion", "81.4.4", "is not a published version of kube-prometheus-stack"),
    ("litellmChartVersion", "1.104.1", "is not a published version of litellm-helm"),
    ("litellmChartVersion", "1.102.1", "is published but not vendored"),
    ("karpenterVersion", "1.13.1", "is published but not vendored"),
    ("agentSandboxVersion", "v1.0.3", "is published but not vendored"),
    ("agentSandboxVersion", "v1.0.9", "is not a published version of agent-sandbox"),
    ("kataDeployVersion", "4.2.0", "is published but not vendored"),
    ("awsLoadBalancerControllerVersion", "3.6.0", "is published but not vendored"),
]


def project(tmp_path: Path, edit: tuple[str, str]) -> Path:
    """A project folder with the real Pulumi.yaml and the dev stack file with one edit."""
    old, new = edit
    assert DEV.count(old) == 1, f"the edit must hit exactly one place: {old!r}"
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text(DEV.replace(old, new))
    return tmp_path


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str]) -> str:
    """``make preview``'s exit code is 2 and stderr one line: that line."""
    code = preview.main(["--stack", "dev", "--project-dir", str(project(tmp_path, edit)), "--out", str(tmp_path / "b")])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.count("\n") == 1, err
    assert err.endswith("\n"), err
    assert out.splitlines()[-1].endswith("failed"), out  # the progress line of the step that refused it
    return err.removeprefix("error: ").rstrip("\n")


@pytest.mark.parametrize(("edit", "key", "reason"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_one_line_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], key: str, reason: str
) -> None:
    message = refused(tmp_path, capsys, edit)
    named = re.match(r"^(\S+): ", message)
    assert named, message
    assert named[1] == key if ":" in key else named[1].endswith(key), message
    assert reason in message, message


@CATALOG
@pytest.mark.parametrize(("key", "version", "reason"), VERSION_MISTAKES)
def test_an_unpublished_or_unvendored_version_names_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, version: str, reason: str
) -> None:
    message = refused(tmp_path, capsys, line(f"agent-platform:{key}: {version}"))
    assert message.startswith(f"agent-platform:{key}: {version} "), message
    assert reason in message, message


def test_without_the_catalog_versions_are_not_checked_and_it_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "catalog.json"
    assert "not found: chart and manifest versions not checked" in catalog_note(missing)
    check_published({"kubePrometheusStackVersion": "0.0.1"}, missing)  # nothing to check against: no error


def test_the_engine_path_refuses_a_secret_key_given_as_plain_text() -> None:
    """On a real run the program only sees which keys are secret (PULUMI_CONFIG_SECRET_KEYS): a password set
    without --secret is refused there too."""
    config, secret_keys = stack_config("dev")
    assert from_engine("dev", config, secret_keys).grafana_password_set
    with pytest.raises(ConfigError, match=r"^agent-platform:grafanaAdminPassword: is plain text where a secret"):
        from_engine("dev", config, [k for k in secret_keys if not k.endswith("grafanaAdminPassword")])


def test_the_kubernetes_bound_comes_from_the_karpenter_table_and_is_documented_next_to_it() -> None:
    schema = project_schema()
    karpenter = schema["karpenterVersion"]["default"]
    minor = ".".join(karpenter.split(".")[:2])
    lo, hi = kubernetes_range(karpenter)
    assert (lo, hi) == (min(EKS_KUBERNETES), KARPENTER_KUBERNETES[minor][1])  # EKS's floor, Karpenter's ceiling
    assert lo <= schema["kubernetesVersion"]["default"] <= hi
    assert f"{lo}-{hi}" in schema["kubernetesVersion"]["description"]
    k_lo, k_hi = KARPENTER_KUBERNETES[minor]
    assert f"Karpenter {minor} runs on Kubernetes {k_lo}-{k_hi}" in schema["karpenterVersion"]["description"]


def test_fact_tables_are_consistent() -> None:
    regions = {r for rs in PARTITION_REGIONS.values() for r in rs}
    assert BEDROCK_REGIONS - regions == set()
    families = instance_families()
    for key in ("coreInstanceTypes", "kataInstanceTypes"):
        for instance_type in project_schema()[key]["default"]:
            family, size = instance_type.split(".")
            assert size in families[family]
    assert {"c8i", "m8i", "r8i", "m8i-flex"} <= set(families)


def test_make_preview_exits_2_with_one_line(tmp_path: Path) -> None:
    """The process `make preview` runs: exit 2, one line on stderr, no traceback."""
    folder = project(tmp_path, line("agent-platfrom:protect: true"))
    command = [sys.executable, "-m", "tools.preview", "--stack", "dev", "--project-dir", str(folder)]
    proc = subprocess.run(
        [*command, "--out", str(tmp_path / "b")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == (
        "error: agent-platfrom:protect: unknown config namespace 'agent-platfrom', so the program would never read "
        "it; did you mean agent-platform:protect?\n"
    )


def test_the_program_itself_raises_one_line_run_error(tmp_path: Path) -> None:
    """``pulumi up`` runs __main__.py: its load() refuses the same mistake with a pulumi.RunError of one line (the CLI
    prints a RunError's message without a traceback)."""
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "components").symlink_to(ROOT / "components")
    (tmp_path / "Pulumi.dev.yaml").write_text(DEV + "  agent_platform:protect: true\n")
    code = (
        "import sys; from pathlib import Path; import pulumi; from tools.program import run_program\n"
        f"try:\n    run_program('dev', root=Path({str(tmp_path)!r}))\n"
        "except pulumi.RunError as e:\n    print(e); sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.splitlines() == [
        "agent_platform:protect: unknown config namespace 'agent_platform', so the program would never read it; did "
        "you mean agent-platform:protect?"
    ]
    assert "Traceback" not in proc.stderr


def test_an_empty_secret_is_missing_not_plain_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit = MISTAKES[[m[0] for m in MISTAKES].index("plain Grafana password")][1]
    message = refused(tmp_path, capsys, (edit[0], "grafanaAdminPassword:"))
    assert message == "agent-platform:grafanaAdminPassword: is required: set it with `pulumi config set --secret`"


def test_the_old_config_module_key_form_is_read_like_the_cli(tmp_path: Path) -> None:
    """`agent-platform:config:azCount` is the CLI's older spelling of `agent-platform:azCount` (config.ParseKey)."""
    project(tmp_path, line("agent-platform:config:azCount: 3"))
    config, _ = stack_config("dev", root=tmp_path)
    assert config["agent-platform:azCount"] == "3"
