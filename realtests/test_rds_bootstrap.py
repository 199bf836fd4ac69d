"""The RDS bootstrap Job's steps against a real PostgreSQL 15 (Debian) that serves TLS only, twice (idempotent).

The Job's first step (``FETCH_CA_SCRIPT``, the LiteLLM image's Python) downloads the CA bundle over HTTPS; here
from a loopback HTTPS server of the lab's web CA (SSL_CERT_FILE stands in for the image's CA store), serving the
lab's "RDS" CA. The last step (``BOOTSTRAP_SCRIPT``, psql) connects with the Job's ``PGSSLMODE=verify-full`` and
``PGSSLROOTCERT`` to a PostgreSQL whose certificate names ``localhost`` only and that refuses non-TLS clients.

RDS specifics stood in for: the master user is a non-superuser with CREATEROLE/CREATEDB that owns the database
(what RDS creates from db_name), ``rds_iam`` is a NOLOGIN role the master may grant (built into RDS). The Secrets
Manager read is not run here: the password file is written with the escaping it uses (a password with ':' and a
backslash proves libpq reads that form).
"""

from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.gateway import rds
from realtests import lab
from tests.localhost import CertificateAuthority, free_port

USER, DB, MASTER = "litellm_iamtest", "litellm_iamtest", "rds_master_test"
PASSWORD = r"pw:with\colon"
ADMIN_PASSWORD = "pgadmin"


class TlsPostgres:
    """A PostgreSQL cluster of its own on 127.0.0.1 (``hostssl`` only), certificate ``certificate``."""

    def __init__(self, folder: Path, certificate: tuple[Path, Path]) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder, self.data, self.port = folder, folder / "data", free_port()
        for source, name in zip(certificate, ("server.crt", "server.key"), strict=True):
            shutil.copy(source, folder / name)
        (folder / "pwfile").write_text(ADMIN_PASSWORD)
        shutil.chown(folder, "postgres")
        for name in ("server.crt", "server.key", "pwfile"):
            shutil.chown(folder / name, "postgres")
            (folder / name).chmod(0o600)
        self.su(f"{lab.PG_CTL.replace('pg_ctl', 'initdb')} -D {self.data} -A scram-sha-256 --pwfile={folder}/pwfile")
        (self.data / "pg_hba.conf").write_text(
            "local all postgres scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {folder} -c ssl=on"
        options += f" -c ssl_cert_file={folder}/server.crt -c ssl_key_file={folder}/server.key"
        self.su(f'{lab.PG_CTL} -D {self.data} -l {folder}/pg.log -w -o "{options}" start')

    @staticmethod
    def su(command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True, timeout=120)

    def admin(self, sql: str) -> str:
        env = {**os.environ, "PGPASSWORD": ADMIN_PASSWORD}
        command = ["psql", "-h", str(self.folder), "-p", str(self.port), "-U", "postgres", "-At", "-c", sql]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.strip()

    def stop(self) -> None:
        subprocess.run(["su", "postgres", "-c", f"{lab.PG_CTL} -D {self.data} -m fast stop"], capture_output=True)


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertificateAuthority]:
    folder = tmp_path_factory.mktemp("cas")
    return {name: CertificateAuthority(folder / name, name) for name in ("rds", "web", "other")}


@pytest.fixture(scope="module")
def server(postgres: None, cas: dict[str, CertificateAuthority]) -> Iterator[TlsPostgres]:
    """The stand-in RDS instance: its certificate names localhost (no IP address), signed by the "rds" CA."""
    pg = TlsPostgres(lab.LAB / "work" / "pg-tls", cas["rds"].issue("postgres", ["localhost"], ips=()))
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def master(server: TlsPostgres, tmp_path_factory: pytest.TempPathFactory) -> Path:
    server.admin(
        "do $$begin if not exists (select from pg_roles where rolname = 'rds_iam') then create role rds_iam; end if; end$$"
    )
    escaped = PASSWORD.replace("'", "''")
    server.admin(f"create role {MASTER} login createrole createdb password '{escaped}'")
    server.admin(f"grant rds_iam to {MASTER} with admin option")
    server.admin(f"create database {DB} owner {MASTER}")
    secrets = tmp_path_factory.mktemp("run-pg")
    esc = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")  # FETCH_SECRET_SCRIPT's escaping
    (secrets / "pgpass").write_text(f"*:*:*:{MASTER}:{esc}\n")
    (secrets / "pgpass").chmod(0o600)
    (secrets / "user").write_text(MASTER)
    return secrets


@pytest.fixture(scope="module")
def bundle_server(cas: dict[str, CertificateAuthority], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HTTPS on 127.0.0.1 (a "web" CA certificate for localhost) serving the rds and other CAs' certificates."""
    root = tmp_path_factory.mktemp("truststore")
    for name in ("rds", "other"):
        shutil.copy(cas[name].cert, root / f"{name}-bundle.pem")
    cert, key = cas["web"].issue("truststore", ["localhost"])
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"https://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def fetched(master: Path, bundle_server: str, cas: dict[str, CertificateAuthority]) -> Path:
    """The master's secrets directory after the Job's first step fetched the (lab's) RDS bundle into it."""
    done = fetch_ca(f"{bundle_server}/rds-bundle.pem", master, cas["web"].cert)
    assert done.returncode == 0, done.stderr
    assert "1 certificates" in done.stdout
    return master


def fetch_ca(url: str, secrets: Path, web_ca: Path) -> subprocess.CompletedProcess[str]:
    """The Job's fetch-rds-ca step: its command and env, the image's CA store replaced by the lab's web CA."""
    env = {"PATH": os.environ["PATH"], "CA_BUNDLE_URL": url, "CA_FILE": str(secrets / "rds-ca.pem")}
    env["SSL_CERT_FILE"] = str(web_ca)
    return subprocess.run(["python3", "-c", rds.FETCH_CA_SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def bootstrap(server: TlsPostgres, secrets: Path, host: str = "localhost") -> subprocess.CompletedProcess[str]:
    """The Job's create-iam-user step with the rendered TLS settings (verify-full, the fetched bundle)."""
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": host,
        "PGPORT": str(server.port),
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(secrets / "rds-ca.pem"),
        "DB_USER": USER,
        "DB_NAME": DB,
        "SECRETS_DIR": str(secrets),
        "BOOTSTRAP_SQL": rds.BOOTSTRAP_SQL,
    }
    return subprocess.run(["sh", "-c", rds.BOOTSTRAP_SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def rendered_tls_env() -> dict[str, str]:
    pod = rds.bootstrap_pod_spec("litellm:x", "postgres:x", "eu-west-1", "db.example", "arn")
    env = {e["name"]: e["value"] for c in pod["initContainers"] + pod["containers"] for e in c["env"]}
    return {k: env[k] for k in ("CA_BUNDLE_URL", "CA_FILE", "PGSSLMODE", "PGSSLROOTCERT")}


def test_the_job_verifies_the_certificate_and_host_against_the_region_s_bundle() -> None:
    assert rendered_tls_env() == {
        "CA_BUNDLE_URL": "https://truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem",
        "CA_FILE": rds.CA_FILE,
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": rds.CA_FILE,
    }


def test_bootstrap_over_verified_tls_creates_the_iam_user_and_hands_it_the_database(
    server: TlsPostgres, fetched: Path
) -> None:
    for _ in range(2):  # a retried or re-run Job changes nothing the second time
        done = bootstrap(server, fetched)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"database user {USER} owns {DB}" in done.stdout
        assert PASSWORD not in done.stdout + done.stderr
    assert server.admin(f"select rolcanlogin from pg_roles where rolname = '{USER}'") == "t"
    assert server.admin(f"select pg_has_role('{USER}', 'rds_iam', 'member')") == "t"
    assert server.admin(f"select pg_get_userbyid(datdba) from pg_database where datname = '{DB}'") == USER


def test_a_server_signed_by_another_ca_is_refused(
    server: TlsPostgres, master: Path, bundle_server: str, cas: dict[str, CertificateAuthority], tmp_path: Path
) -> None:
    shutil.copy(master / "pgpass", tmp_path / "pgpass")
    shutil.copy(master / "user", tmp_path / "user")
    assert fetch_ca(f"{bundle_server}/other-bundle.pem", tmp_path, cas["web"].cert).returncode == 0
    done = bootstrap(server, tmp_path)
    assert done.returncode != 0
    assert "certificate verify failed" in done.stderr


def test_a_certificate_for_another_host_name_is_refused(server: TlsPostgres, fetched: Path) -> None:
    done = bootstrap(server, fetched, host="127.0.0.1")  # the certificate names localhost only
    assert done.returncode != 0
    assert "does not match host name" in done.stderr


def test_a_bundle_from_an_unauthenticated_server_is_not_fetched(bundle_server: str, tmp_path: Path) -> None:
    """The bundle comes over HTTPS the image's CA store trusts; any other server's answer is refused."""
    done = fetch_ca(f"{bundle_server}/rds-bundle.pem", tmp_path, Path("/dev/null"))
    assert done.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert not (tmp_path / "rds-ca.pem").exists()


def test_a_wrong_master_password_fails_the_job(server: TlsPostgres, fetched: Path, tmp_path: Path) -> None:
    shutil.copy(fetched / "rds-ca.pem", tmp_path / "rds-ca.pem")
    (tmp_path / "pgpass").write_text(f"*:*:*:{MASTER}:wrong\n")
    (tmp_path / "pgpass").chmod(0o600)
    (tmp_path / "user").write_text(MASTER)
    done = bootstrap(server, tmp_path)
    assert done.returncode != 0
    assert "password authentication failed" in done.stderr
