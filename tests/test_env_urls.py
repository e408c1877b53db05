"""Issue 13, cases 4 and 6: bad URLs never leak; an empty or partial target is refused.

Contract (see test_env_resolution.py for the whole of it):
- A DATABASE_URL whose password holds unencoded `/ @ : # ? % '` or spaces is refused with exit 2, naming
  DATABASE_URL and advising to percent-encode; no substring of 3 or more characters of the password
  appears on stdout, stderr or in the `--json` document, through `python -m migrate` and `inv`, for
  migrate, status and dry-run.
- DATABASE_URL=postgresql:// (or postgresql://:@/, or a URL without host or without database) is refused
  with exit 2 naming the setting, never filled from libpq's defaults: nothing is created anywhere, in
  particular not in the machine server's `postgres` database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import Project
from env_support import (
    PasswordServer,
    assert_no_fragment,
    machine_server_watched,
    no_traceback,
    password_server,
)

# Generated-looking secrets, each holding characters a URL gives a meaning to.
PASSWORDS = {
    "slash-at": "Zq8/Hv@Jx3Ku",
    "colon-hash": "Wk5:S3cr3tJm#Yb",
    "question-percent-quote": "Fy2?Nd%Qg'Lp",
    "spaces": "Bx4 Tm6 Rv9",
    "all": "Dj1/@:#?%' Gw",
}


@pytest.fixture(scope="module")
def sweep_server() -> Iterator[PasswordServer]:
    """A password cluster with one login role per password above (sweep_<n>)."""
    with password_server() as started:
        admin = started.server().connect()
        with admin.cursor() as cursor:
            for number, secret in enumerate(PASSWORDS.values()):
                cursor.execute(f"CREATE ROLE sweep_{number} LOGIN SUPERUSER PASSWORD %s", (secret,))
        admin.close()
        yield started


@pytest.fixture
def bare(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    (root / "migrations" / "client_specific").mkdir(parents=True)
    (root / "migrations" / "lanconnect" / "001_a.sql").write_text(
        "CREATE TABLE IF NOT EXISTS langconnect.t13_probe (id int);\n")  # only ever in the app schema
    return Project(root, "")


def _role(secret: str) -> str:
    return f"sweep_{list(PASSWORDS.values()).index(secret)}"


def _untouched(server: PasswordServer) -> bool:
    rows = server.server().connect().cursor()
    rows.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'")
    count = rows.fetchone()[0]
    rows.connection.close()
    return count == 0


# --- case 4: a password that breaks the URL ----------------------------------------------------


@pytest.mark.parametrize("secret", list(PASSWORDS.values()), ids=list(PASSWORDS))
def test_unencoded_password_is_refused_without_echoing_any_part_of_it(
        bare: Project, sweep_server: PasswordServer, secret: str) -> None:
    bare.env_file("staging", "DATABASE_URL=${STAGING_DATABASE_URL}\nMAX_WAIT_TIME=3\n")
    url = f"postgresql://{_role(secret)}:{secret}@127.0.0.1:{sweep_server.port}/postgres"
    shell = {"STAGING_DATABASE_URL": url}
    for door in ("python", "inv"):
        run = bare.run if door == "python" else bare.inv
        for command in ("migrate", "status", "dry-run"):
            for as_json in (False, True):
                args = (command, "--env", "staging", "--yes") if command == "migrate" else (command, "--env",
                                                                                           "staging")
                result = run(*args, *(("--json",) if as_json else ()), env=shell)
                what = f"{door} {command}{' --json' if as_json else ''}"
                assert_no_fragment(secret, result.out, result.err)
                assert result.code == 2, f"{what}: exit {result.code}\n{result.out}{result.err}"
                assert "DATABASE_URL" in result.err, what
                assert re.search(r"(?i)percent[- ]?encod", result.err), f"{what}: no advice to percent-encode"
                assert no_traceback(result.err), what
                if as_json:
                    document = json.loads(result.out)
                    assert_no_fragment(secret, json.dumps(document))
    assert _untouched(sweep_server)


def test_unencoded_password_in_an_env_file_is_refused_too(bare: Project, sweep_server: PasswordServer) -> None:
    secret = PASSWORDS["all"]
    (bare.root / "envs" / "staging.env").write_text(
        f"DATABASE_URL=postgresql://{_role(secret)}:{secret}@127.0.0.1:{sweep_server.port}/postgres\n"
        "MAX_WAIT_TIME=3\n")
    result = bare.run("migrate", "--env", "staging", "--json")
    assert_no_fragment(secret, result.out, result.err)
    assert result.code == 2, result.out + result.err
    assert re.search(r"(?i)percent[- ]?encod", result.err)
    assert_no_fragment(secret, json.dumps(json.loads(result.out)))
    assert _untouched(sweep_server)


@pytest.mark.parametrize("secret", list(PASSWORDS.values()), ids=list(PASSWORDS))
def test_the_advice_works_percent_encoded_url_and_postgres_password_connect(
        bare: Project, sweep_server: PasswordServer, secret: str) -> None:
    bare.env_file("staging", "DATABASE_URL=${STAGING_DATABASE_URL}\nMAX_WAIT_TIME=3\n")
    encoded = sweep_server.url("postgres", user=_role(secret), password=secret)
    result = bare.run("status", "--env", "staging", env={"STAGING_DATABASE_URL": encoded})
    assert result.code == 0, result.err
    assert_no_fragment(secret, result.out, result.err)
    assert quote(secret, safe="") not in result.out + result.err
    bare.env_file("legacy", "MAX_WAIT_TIME=3\n")
    legacy = bare.run("status", "--env", "legacy", env={
        "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(sweep_server.port), "POSTGRES_DB": "postgres",
        "POSTGRES_USER": _role(secret), "POSTGRES_PASSWORD": secret})
    assert legacy.code == 0, legacy.err
    assert_no_fragment(secret, legacy.out, legacy.err)


# --- case 6: empty and partial targets ----------------------------------------------------------


PARTIAL = {
    "scheme-only": "postgresql://",
    "empty-parts": "postgresql://:@/",
    "no-host": "postgresql://postgres@/postgres",
    "no-host-socket-form": "postgresql:///postgres",
    "no-database": "postgresql://postgres@127.0.0.1:5432",
    "empty-database": "postgresql://postgres@127.0.0.1:5432/",
}


@pytest.mark.parametrize("where", ["env file", "shell"])
@pytest.mark.parametrize("url", list(PARTIAL.values()), ids=list(PARTIAL))
def test_partial_database_url_is_refused_and_creates_nothing(bare: Project, url: str, where: str) -> None:
    if where == "env file":
        bare.env_file("staging", f"DATABASE_URL={url}\nMAX_WAIT_TIME=3\n")
        shell: dict[str, str] = {}
    else:
        bare.env_file("staging", "MAX_WAIT_TIME=3\n")  # names no server: the shell's is used
        shell = {"DATABASE_URL": url}
    with machine_server_watched() as states:
        result = bare.run("migrate", "--env", "staging", "--yes", env=shell)
        status = bare.run("status", "--env", "staging", env=shell)
    assert states[0] == states[1], f"DATABASE_URL={url} reached the machine's own server and wrote there"
    assert result.code == 2, f"DATABASE_URL={url}: exit {result.code}\n{result.out}{result.err}"
    assert "DATABASE_URL" in result.err
    assert no_traceback(result.err)
    assert status.code == 2 and "DATABASE_URL" in status.err
