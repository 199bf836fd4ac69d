"""Tenants as LiteLLM teams: the team carries the budget and the limits, the tenant's virtual key lives under it.

One idempotent in-cluster Job per tenant registers both and rotates the key with a grace period, so spend stays on
the team and pods keep working while they roll. Details: docs/gateway.md#tenants-as-teams-key-rotation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from components.config import TenantConfig
from components.contracts.labels import CORE_NODE_SELECTOR
from components.gateway.mcp import mcp_grant
from components.k8s.podspec import container_security_context, plain_env, pod_security_context

KEY_ROTATION_GRACE = "2h"  # longer than any rollout of a tenant's pods
READY_TRIES, READY_SLEEP, READY_TIMEOUT = 30, 5, 5  # waiting for LiteLLM: at most 30 x (5 + 5) s
CURL_TIMEOUT = 20  # each API call
MAX_CALLS = 7  # team update + new, key update, delete, list, retire, generate
KEY_JOB_BACKOFF_LIMIT = 2  # retries after the first try
KEY_JOB_BACKOFF_DELAYS = (10, 20)  # Kubernetes' exponential pod-failure back-off before retry 1, 2
KEY_JOB_DEADLINE = 1500  # activeDeadlineSeconds: the Job fails by then at the latest
KEY_JOB_PULUMI_TIMEOUT = "30m"  # Pulumi waits longer than the deadline: it always sees the Job's outcome
CURL_UID, CURL_GID = 100, 101  # curl_user / curl_group in the curlimages/curl image


def key_job_try_seconds() -> int:
    """The longest one try of the script can take."""
    return READY_TRIES * (READY_TIMEOUT + READY_SLEEP) + MAX_CALLS * CURL_TIMEOUT


def key_job_worst_case_seconds() -> int:
    """Every try failing at its slowest, with Kubernetes' back-off between tries."""
    return (KEY_JOB_BACKOFF_LIMIT + 1) * key_job_try_seconds() + sum(KEY_JOB_BACKOFF_DELAYS[:KEY_JOB_BACKOFF_LIMIT])


def team_id(tenant: str) -> str:
    return f"tenant-{tenant}"


def key_alias(tenant: str) -> str:
    return f"tenant-{tenant}"


def team_spec(tenant: TenantConfig, models: Sequence[str]) -> dict[str, Any]:
    """Body of /team/new and /team/update: the budget and limits the tenant's keys share, and the models it may call
    (``PlatformConfig.tenant_models``: never empty, which LiteLLM would read as every model)."""
    limits = tenant.litellm
    return {
        # the identity: a renamed tenant keeps its team, its spend and its budget period
        "team_id": team_id(tenant.identity),
        "team_alias": team_id(tenant.name),
        "models": list(models),
        "max_budget": limits.max_budget,
        "budget_duration": limits.budget_duration,
        "rpm_limit": limits.rpm_limit,
        "tpm_limit": limits.tpm_limit,
        "metadata": {"tenant": tenant.name, "managed-by": "pulumi"},
        "object_permission": mcp_grant(tenant),  # the ceiling of its key's MCP grant
        # A decommissioned tenant's team is blocked: every key under it gets 401, its spend stays. Sent explicitly
        # either way, so re-activating (or re-adding) the tenant unblocks it.
        "blocked": tenant.decommissioned,
    }


def key_spec(tenant: TenantConfig, models: Sequence[str]) -> dict[str, Any]:
    """Body of /key/generate and /key/update, without the key itself (that one is secret)."""
    return {
        "key_alias": key_alias(tenant.identity),
        "team_id": team_id(tenant.identity),
        "models": list(models),
        # LLM routes only (what key_type "llm_api" stores): no key/user/team management with a tenant key.
        "allowed_routes": ["llm_api_routes"],  # includes LiteLLM's MCP routes (/mcp, /mcp/{subpath}...)
        # With require_key_mcp_access_defined the key inherits no server from its team: it names its own.
        "object_permission": mcp_grant(tenant),
        "metadata": {"tenant": tenant.name, "managed-by": "pulumi"},
        # Explicit nulls clear key-level limits a key registered before teams still carries (LiteLLM's
        # /key/update applies every field that is set, null included): the team's are the only ones.
        "max_budget": None,
        "budget_duration": None,
        "rpm_limit": None,
        "tpm_limit": None,
        "blocked": tenant.decommissioned,  # the key itself too: it stays refused if it is ever moved off the team
    }


KEY_JOB_SCRIPT = (
    r"""set -eu
umask 077
auth=/tmp/auth
out=/tmp/response.json
printf 'Authorization: Bearer %s\n' "$MASTER_KEY" > "$auth"
printf '{"key":"%s",%s' "$TENANT_KEY" "${KEY_SPEC#?}" > /tmp/key.json
new_token=$(printf '%s' "$TENANT_KEY" | sha256sum | cut -c1-64)
unset MASTER_KEY TENANT_KEY
printf '%s' "$TEAM_SPEC" > /tmp/team.json
call() {
  curl -sS -o "$out" -w '%{http_code}' --max-time @CURL_TIMEOUT@ -H @"$auth" "$@"
}
post() {
  call -X POST -H 'Content-Type: application/json' --data @"$2" "$LITELLM_URL$1"
}
i=0
until curl -fsS -o /dev/null --max-time @READY_TIMEOUT@ "$LITELLM_URL/health/readiness"; do
  i=$((i + 1))
  [ "$i" -lt @READY_TRIES@ ] || { echo "LiteLLM is not ready at $LITELLM_URL"; exit 1; }
  sleep @READY_SLEEP@
done
code=$(post /team/update /tmp/team.json)
case "$code" in
  200) echo "team $TEAM_ID updated" ;;
  404)
    code=$(post /team/new /tmp/team.json)
    [ "$code" = 200 ] || { echo "team $TEAM_ID: /team/new returned HTTP $code"; exit 1; }
    echo "team $TEAM_ID created" ;;
  *) echo "team $TEAM_ID: /team/update returned HTTP $code"; exit 1 ;;
esac
code=$(post /key/update /tmp/key.json)
case "$code" in
  200) echo "key $KEY_ALIAS updated" ;;
  404)
    printf '{"key_aliases":["%s-retired"]}' "$KEY_ALIAS" > /tmp/delete.json
    code=$(post /key/delete /tmp/delete.json)
    if [ "$code" = 200 ]; then echo "key $KEY_ALIAS-retired deleted"; fi
    code=$(call "$LITELLM_URL/key/list?team_id=$TEAM_ID&size=100")
    [ "$code" = 200 ] || { echo "team $TEAM_ID: /key/list returned HTTP $code"; exit 1; }
    for token in $(grep -o '"[0-9a-f]\{64\}"' "$out" | tr -d '"'); do
      [ "$token" != "$new_token" ] || continue
      printf '{"key":"%s","key_alias":"%s-retired","duration":"%s"}' "$token" "$KEY_ALIAS" "$GRACE" > /tmp/retire.json
      code=$(post /key/update /tmp/retire.json)
      [ "$code" = 200 ] || { echo "key $KEY_ALIAS: retiring the previous key returned HTTP $code"; exit 1; }
      echo "previous key of $TEAM_ID expires in $GRACE"
    done
    code=$(post /key/generate /tmp/key.json)
    [ "$code" = 200 ] || { echo "key $KEY_ALIAS: /key/generate returned HTTP $code"; exit 1; }
    echo "key $KEY_ALIAS created" ;;
  *) echo "key $KEY_ALIAS: /key/update returned HTTP $code"; exit 1 ;;
esac
rm -f "$auth" /tmp/key.json /tmp/team.json "$out"
""".replace("@CURL_TIMEOUT@", str(CURL_TIMEOUT))
    .replace("@READY_TIMEOUT@", str(READY_TIMEOUT))
    .replace("@READY_TRIES@", str(READY_TRIES))
    .replace("@READY_SLEEP@", str(READY_SLEEP))
)


def key_job_name(tenant: TenantConfig, curl_image: str, models: Sequence[str]) -> str:
    """``litellm-key-<tenant>-<hash>``: a changed spec, script or image gives a new Job, so it runs again."""
    material = json.dumps(
        {
            "team": team_spec(tenant, models),
            "key": key_spec(tenant, models),
            "script": KEY_JOB_SCRIPT,
            "image": curl_image,
        },
        sort_keys=True,
    )
    return f"litellm-key-{tenant.name}-{hashlib.sha256(material.encode()).hexdigest()[:8]}"


def registration_pod_spec(
    curl_image: str,
    *,
    service_account: str | None,
    litellm_url: str,
    master_key_secret: tuple[str, str],
    key_secret: tuple[str, str],
    alias: str,
    team: dict[str, Any],
    key: dict[str, Any],
) -> dict[str, Any]:
    """The pod that registers one LiteLLM key (``key_secret`` holds it) under ``team`` with KEY_JOB_SCRIPT."""

    def secret_env(name: str, secret: str, secret_key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}}

    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "nodeSelector": dict(CORE_NODE_SELECTOR),  # runc on a core node: the ClusterIP is reachable
        "securityContext": pod_security_context(CURL_UID, CURL_GID),
        "containers": [
            {
                "name": "register-key",
                "image": curl_image,
                "command": ["/bin/sh", "-c", KEY_JOB_SCRIPT],
                "env": [
                    *plain_env(
                        {
                            "LITELLM_URL": litellm_url,
                            "KEY_ALIAS": alias,
                            "TEAM_ID": team["team_id"],
                            "GRACE": KEY_ROTATION_GRACE,
                            "TEAM_SPEC": json.dumps(team, sort_keys=True),
                            "KEY_SPEC": json.dumps(key, sort_keys=True),
                        }
                    ),
                    secret_env("MASTER_KEY", *master_key_secret),
                    secret_env("TENANT_KEY", *key_secret),  # the script's name for the key being registered
                ],
                "securityContext": container_security_context(CURL_UID, read_only_root=True, gid=CURL_GID),
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "100m", "memory": "64Mi"},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return spec


def key_job_pod_spec(
    tenant: TenantConfig,
    curl_image: str,
    *,
    models: Sequence[str],
    service_account: str,
    litellm_url: str,
    master_key_secret: tuple[str, str],
    tenant_keys_secret: str,
) -> dict[str, Any]:
    return registration_pod_spec(
        curl_image,
        service_account=service_account,
        litellm_url=litellm_url,
        master_key_secret=master_key_secret,
        key_secret=(tenant_keys_secret, tenant.name),
        alias=key_alias(tenant.name),
        team=team_spec(tenant, models),
        key=key_spec(tenant, models),
    )
