"""The RDS bootstrap Job's SQL and shell script against a real PostgreSQL 15 (Debian), twice (idempotent).

RDS specifics stood in for: the master user is a non-superuser with CREATEROLE/CREATEDB that owns the database
(what RDS creates from db_name), ``rds_iam`` is a NOLOGIN role the master may grant (built into RDS), and TLS is
off on 127.0.0.1 (the pod sets PGSSLMODE=require). The init container's Secrets Manager read is not run here:
the password file is written with the escaping it uses (a password with ':' and a backslash proves libpq
reads that form).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components import gateway_rds as rds

USER, DB, MASTER = "litellm_iamtest", "litellm_iamtest", "rds_master_test"
PASSWORD = r"pw:with\colon"


def admin(sql: str) -> str:
    url = "postgresql://postgres:pgadmin@127.0.0.1:55432/postgres"
    return subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def master(postgres: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    admin(f"drop database if exists {DB} with (force)")
    for role in (USER, MASTER):
        admin(f"drop role if exists {role}")
    admin(
        "do $$begin if not exists (select from pg_roles where rolname = 'rds_iam') then create role rds_iam; end if; end$$"
    )
    escaped = PASSWORD.replace("'", "''")
    admin(f"create role {MASTER} login createrole createdb password '{escaped}'")
    admin(f"grant rds_iam to {MASTER} with admin option")
    admin(f"create database {DB} owner {MASTER}")
    secrets = tmp_path_factory.mktemp("run-pg")
    esc = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")  # FETCH_SECRET_SCRIPT's escaping
    (secrets / "pgpass").write_text(f"*:*:*:{MASTER}:{esc}\n")
    (secrets / "pgpass").chmod(0o600)
    (secrets / "user").write_text(MASTER)
    return secrets


def bootstrap(secrets: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": "127.0.0.1",
        "PGPORT": "55432",
        "PGSSLMODE": "disable",
        "DB_USER": USER,
        "DB_NAME": DB,
        "SECRETS_DIR": str(secrets),
        "BOOTSTRAP_SQL": rds.BOOTSTRAP_SQL,
    }
    return subprocess.run(["sh", "-c", rds.BOOTSTRAP_SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_bootstrap_creates_the_iam_user_and_hands_it_the_database(master: Path) -> None:
    for _ in range(2):  # a retried or re-run Job changes nothing the second time
        done = bootstrap(master)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"database user {USER} owns {DB}" in done.stdout
        assert PASSWORD not in done.stdout + done.stderr
    assert admin(f"select rolcanlogin from pg_roles where rolname = '{USER}'") == "t"
    assert admin(f"select pg_has_role('{USER}', 'rds_iam', 'member')") == "t"
    assert admin(f"select pg_get_userbyid(datdba) from pg_database where datname = '{DB}'") == USER
    # the owner may create LiteLLM's tables in the public schema (PostgreSQL 15+: pg_database_owner owns it)
    admin(f"alter role {USER} password 'x'")
    url = f"postgresql://{USER}:x@127.0.0.1:55432/{DB}"
    subprocess.run(
        ["psql", url, "-c", "create table probe (id int); drop table probe;"], check=True, capture_output=True
    )


def test_a_wrong_master_password_fails_the_job(master: Path, tmp_path: Path) -> None:
    (tmp_path / "pgpass").write_text(f"*:*:*:{MASTER}:wrong\n")
    (tmp_path / "pgpass").chmod(0o600)
    (tmp_path / "user").write_text(MASTER)
    done = bootstrap(tmp_path)
    assert done.returncode != 0
    assert "password authentication failed" in done.stderr
