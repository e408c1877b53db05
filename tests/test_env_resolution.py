"""Issue 13: one unambiguous target per environment; guards nothing switches off by accident.

The contract these tests hold the tool to (decisions taken where the issue leaves a choice):

- Resolution rule. A named environment's file connection (DATABASE_URL or POSTGRES_* in
  envs/<env>.env or envs/<env>.local.env) wins over an ambient process DATABASE_URL/POSTGRES_*/PG*.
  When the environment's files name NO server, the process environment's connection is used (that
  is how docker compose passes it), except for `local`, whose file may say MIGRATE_EMBEDDED=true:
  the embedded server, only when nothing names a server. Command-line flags (--host --port
  --database --user --password) win over everything and are shown.
- Every command prints one stderr line naming the environment, the masked target and its source,
  like `migrate: environment staging: postgresql://user:***@host:port/db (from envs/staging.env)`.
  Tests assert the pieces (environment, database, no password fragment, the source phrase
  `envs/staging.env` / `shell` / `flag`), not the punctuation.
- Empty never weakens: an empty process variable never overrides a file's value; MIGRATE_REQUIRE_TLS,
  MIGRATE_CONFIRM, MIGRATE_SQL_LOCK_TIMEOUT and MIGRATE_LOCK_TIMEOUT can be made stricter by the process
  environment, never weaker; MIGRATE_DISPOSABLE is read from the environment file only.
- Destructive commands (reset, MIGRATION_RESET_SCHEMA=true) refuse (exit 6) a target that is neither the
  embedded server nor a loopback server unless the environment file marks it disposable; they print the
  target; without a terminal they need --yes.
- An empty or partial target is refused with exit 2 naming the setting; nothing is created anywhere.
- Files that are not regular migration files are refused (exit 4) before anything runs and before the
  run lock is taken, one line each, no traceback; file size is bounded.
- A DATABASE_URL that does not parse cleanly is refused (exit 2) with advice to percent-encode and echoes
  no fragment of the password, through `python -m migrate`, `inv` and `--json`.
- The ledger (history tables, migration_attempts) is closed to PUBLIC, anon and authenticated, with RLS
  enabled and no policy; status warns about an exposed ledger.
- status, dry-run and history give up after MIGRATE_READ_TIMEOUT (default about 10 s); migrate keeps
  MAX_WAIT_TIME.
- `python -m migrate --version` and `inv version` print the tool_version recorded in history rows;
  baseline's option is `--up-to`.

This module: the resolution rule (issue cases 1 and 2), the target line, destructive commands, the
compose command and README. Two databases stand in for local (the test's `db`) and staging (a private
cluster with password auth).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Database, Project, fresh_database
from env_support import (
    STAGING_PASSWORD,
    PasswordServer,
    assert_no_fragment,
    non_loopback_address,
    password_server,
    target_line,
    target_lines,
    versions,
)

A1 = "CREATE TABLE IF NOT EXISTS langconnect.a1 (id int);\n"
A2 = "CREATE TABLE IF NOT EXISTS langconnect.a2 (id int);\n"
A3 = "CREATE TABLE IF NOT EXISTS langconnect.a3 (id int);\n"


@pytest.fixture(scope="module")
def staging_server() -> Iterator[PasswordServer]:
    with password_server() as started:
        yield started


@pytest.fixture
def staging_db(staging_server: PasswordServer) -> Iterator[Database]:
    with fresh_database(staging_server.server()) as database:
        database.url = staging_server.url(database.name)  # percent-encoded: the password holds / @ and a space
        yield database


@pytest.fixture
def bare(tmp_path: Path) -> Project:
    """A project whose environments the test writes itself (no database of the `server` fixture)."""
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    (root / "migrations" / "client_specific").mkdir(parents=True)
    return Project(root, "")


def _local_names_no_server(project: Project) -> None:
    """The shipped shape of envs/local.env: the embedded server unless something names one."""
    project.env_file("local", "MIGRATE_EMBEDDED=true\nMIGRATE_DISPOSABLE=true\nMAX_WAIT_TIME=5\n"
                              "MIGRATE_LOCK_TIMEOUT=10\n")


def _staging_file(project: Project) -> None:
    """The shipped shape of envs/staging.env (without TLS: the test cluster has none)."""
    project.env_file("staging", "DATABASE_URL=${STAGING_DATABASE_URL}\nMAX_WAIT_TIME=5\nMIGRATE_LOCK_TIMEOUT=10\n")


def _seed(project: Project, local: Database, staging: Database) -> dict[str, str]:
    """local has 001 and 002 applied, staging only 001; returns the shell both are run from."""
    _local_names_no_server(project)
    _staging_file(project)
    project.write("lanconnect", "001_a1.sql", A1)
    seeded = project.run("migrate", "--env", "staging", env={"STAGING_DATABASE_URL": staging.url})
    assert seeded.code == 0, seeded.err
    project.write("lanconnect", "002_a2.sql", A2)
    seeded = project.run("migrate", "--env", "local", "--yes", env={"DATABASE_URL": local.url})
    assert seeded.code == 0, seeded.err
    assert versions(local) == [("001", "applied"), ("002", "applied")]
    assert versions(staging) == [("001", "applied")]
    return {"DATABASE_URL": local.url, "STAGING_DATABASE_URL": staging.url}


def _states(document: dict) -> dict[str, str]:
    return {m["version"]: m["state"] for m in document["migrations"] if m["track"] == "lanconnect"}


# --- case 1: an exported DATABASE_URL never redirects --env staging ----------------------------


def test_status_env_staging_reads_staging_although_database_url_is_exported(
        project: Project, db: Database, staging_db: Database) -> None:
    shell = _seed(project, db, staging_db)
    result = project.run("status", "--env", "staging", "--json", env=shell)
    assert result.code == 0, result.err
    assert _states(json.loads(result.out)) == {"001": "applied", "002": "pending"}, "status read another database"
    line = target_line(result.err, "staging", staging_db.name)
    assert "envs/staging.env" in line
    assert_no_fragment(STAGING_PASSWORD, result.out, result.err)
    through_inv = project.inv("status", "--env", "staging", env=shell)
    assert through_inv.code == 0, through_inv.err
    assert "envs/staging.env" in target_line(through_inv.err, "staging", staging_db.name)
    assert versions(staging_db) == [("001", "applied")]  # status wrote nothing


def test_migrate_env_staging_writes_staging_although_database_url_is_exported(
        project: Project, db: Database, staging_db: Database) -> None:
    shell = _seed(project, db, staging_db)
    project.write("lanconnect", "003_a3.sql", A3)
    result = project.run("migrate", "--env", "staging", env=shell)
    assert result.code == 0, result.err
    assert versions(staging_db) == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert versions(db) == [("001", "applied"), ("002", "applied")], "the exported DATABASE_URL was migrated"
    assert "a3" not in db.tables()
    assert "envs/staging.env" in target_line(result.err, "staging", staging_db.name)
    assert_no_fragment(STAGING_PASSWORD, result.out, result.err)


def test_a_developers_staging_local_env_wins_over_the_exported_database_url(
        project: Project, db: Database, staging_db: Database) -> None:
    shell = _seed(project, db, staging_db)
    project.env_file("staging", "MAX_WAIT_TIME=5\n")
    (project.root / "envs" / "staging.local.env").write_text(f"DATABASE_URL={staging_db.url}\n")
    project.write("lanconnect", "003_a3.sql", A3)
    result = project.inv("migrate", "--env", "staging", env={"DATABASE_URL": shell["DATABASE_URL"]})
    assert result.code == 0, result.err
    assert versions(staging_db)[-1] == ("003", "applied")
    assert versions(db) == [("001", "applied"), ("002", "applied")]
    assert "staging.local.env" in target_line(result.err, "staging", staging_db.name)


def test_status_env_all_shows_each_environment_its_own_database(
        project: Project, db: Database, staging_db: Database) -> None:
    shell = _seed(project, db, staging_db)
    result = project.run("status", "--env", "all", "--json", "--timeout", "3", env=shell)
    assert result.code == 0, result.err
    document = json.loads(result.out)
    environments = {e["name"]: e for e in document["environments"]}
    assert environments["local"]["status"] == "ok" and environments["staging"]["status"] == "ok"
    assert db.name in environments["local"]["database"]
    assert staging_db.name in environments["staging"]["database"]
    states = {m["version"]: m["states"] for m in document["migrations"] if m["track"] == "lanconnect"}
    assert states["002"] == {"local": "applied", "staging": "pending"}
    human = project.inv("status", "--env", "all", "--timeout", "3", env=shell)
    assert human.code == 0, human.err
    assert "same migrations applied" not in human.out
    assert "staging is behind local by 1 migration(s): lanconnect 002" in human.out
    assert_no_fragment(STAGING_PASSWORD, result.out, result.err, human.out, human.err)


# --- where it is going: one stderr line per command, with its source --------------------------


@pytest.mark.parametrize("door,args", [
    ("python", ("status",)),
    ("python", ("dry-run",)),
    ("python", ("migrate",)),
    ("python", ("history",)),
    ("python", ("wait",)),
    ("python", ("repair", "--dry-run")),
    ("inv", ("migrate",)),
    ("inv", ("dry-run",)),
])
def test_every_command_names_environment_target_and_source(
        bare: Project, staging_db: Database, door: str, args: tuple[str, ...]) -> None:
    _staging_file(bare)
    bare.write("lanconnect", "001_a1.sql", A1)
    run = bare.run if door == "python" else bare.inv
    result = run(*args, "--env", "staging", env={"STAGING_DATABASE_URL": staging_db.url})
    assert result.code == 0, result.err
    line = target_line(result.err, "staging", staging_db.name)
    assert len(target_lines(result.err, "staging", staging_db.name)) == 1, f"said more than once:\n{result.err}"
    assert "envs/staging.env" in line
    assert "127.0.0.1" in line
    assert_no_fragment(STAGING_PASSWORD, line, result.out, result.err)


def test_a_server_named_only_by_the_shell_is_used_and_said_to_come_from_the_shell(
        project: Project, db: Database) -> None:
    _local_names_no_server(project)
    project.write("lanconnect", "001_a1.sql", A1)
    result = project.run("migrate", "--env", "local", "--yes", env={"DATABASE_URL": db.url})
    assert result.code == 0, result.err
    assert versions(db) == [("001", "applied")]
    assert not (project.root / ".pgdata").exists(), "the embedded server was started although a server was named"
    assert "shell" in target_line(result.err, "local", db.name)


def test_command_line_flags_win_over_file_and_shell_and_are_shown(
        project: Project, db: Database, staging_db: Database, staging_server: PasswordServer) -> None:
    project.env_file("local", f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_a1.sql", A1)
    shell = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing", "PGHOST": "127.0.0.1", "PGPORT": "1"}
    result = project.run("migrate", "--env", "local", "--host", "127.0.0.1", "--port", str(staging_server.port),
                         "--database", staging_db.name, "--user", "postgres", "--password", STAGING_PASSWORD,
                         env=shell)
    assert result.code == 0, result.err
    assert versions(staging_db) == [("001", "applied")]
    assert versions(db) == []
    line = target_line(result.err, "local", staging_db.name)
    assert "flag" in line
    assert_no_fragment(STAGING_PASSWORD, result.out, result.err)


# --- case 2: destructive commands ----------------------------------------------------------------


def _keep(db: Database) -> None:
    db.execute("CREATE SCHEMA IF NOT EXISTS langconnect; CREATE TABLE IF NOT EXISTS langconnect.keep (id int)")


def test_reset_env_local_resets_the_file_database_not_the_exported_one(
        project: Project, db: Database, staging_db: Database) -> None:
    project.env_file("local", f"DATABASE_URL={db.url}\nMIGRATE_DISPOSABLE=true\nMAX_WAIT_TIME=5\n")
    _keep(db)
    _keep(staging_db)
    result = project.inv("reset", "--env", "local", "--yes", env={"DATABASE_URL": staging_db.url})
    assert result.code == 0, result.err
    assert "keep" in staging_db.tables(), "reset --env local dropped the exported DATABASE_URL's schema"
    assert db.tables() == []
    assert "envs/local.env" in target_line(result.err, "local", db.name)


def test_process_disposable_makes_no_environment_resettable(bare: Project, staging_db: Database) -> None:
    _staging_file(bare)
    _keep(staging_db)
    shell = {"STAGING_DATABASE_URL": staging_db.url, "MIGRATE_DISPOSABLE": "true"}
    reset = bare.run("reset", "--env", "staging", "--yes", env=shell)
    assert reset.code == 6, reset.out + reset.err
    assert "keep" in staging_db.tables()
    bare.write("lanconnect", "001_a1.sql", A1)
    migrate = bare.run("migrate", "--env", "staging", "--yes", env={**shell, "MIGRATION_RESET_SCHEMA": "true"})
    assert migrate.code == 6, migrate.out + migrate.err
    assert "keep" in staging_db.tables()
    assert versions(staging_db) == []


def test_reset_without_a_terminal_needs_yes_and_names_its_target(project: Project, db: Database) -> None:
    project.env_file("local", f"DATABASE_URL={db.url}\nMIGRATE_DISPOSABLE=true\nMAX_WAIT_TIME=5\n")
    _keep(db)
    refused = project.run("reset", "--env", "local")
    assert refused.code == 6, refused.out + refused.err
    assert "--yes" in refused.err
    assert db.name in refused.err
    assert "keep" in db.tables()
    project.write("lanconnect", "001_a1.sql", A1)
    refused = project.run("migrate", "--env", "local", env={"MIGRATION_RESET_SCHEMA": "true"})
    assert refused.code == 6, refused.out + refused.err
    assert "keep" in db.tables() and versions(db) == []
    accepted = project.run("reset", "--env", "local", "--yes")
    assert accepted.code == 0, accepted.err
    assert db.tables() == []


def test_reset_on_a_terminal_shows_the_target_and_asks(project: Project, db: Database) -> None:
    project.env_file("local", f"DATABASE_URL={db.url}\nMIGRATE_DISPOSABLE=true\nMAX_WAIT_TIME=5\n")
    _keep(db)
    primary, secondary = os.openpty()
    try:
        os.write(primary, b"no\n")
        completed = subprocess.run([sys.executable, "-m", "migrate", "reset", "--env", "local"], cwd=project.root,
                                   env=project.environ(), stdin=secondary, capture_output=True, text=True, timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert completed.returncode == 6, completed.stdout + completed.stderr
    assert db.name in completed.stderr
    assert "yes" in completed.stderr.lower()  # the question
    assert "keep" in db.tables()


@pytest.fixture
def remote_server() -> Iterator[tuple[PasswordServer, str]]:
    """A password cluster reached over this machine's non-loopback address (a stand-in for a remote server)."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to stand in for a remote server")
    with password_server(listen=f"127.0.0.1,{address}",
                         hba_extra=f"host all all {address}/32 scram-sha-256") as started:
        yield started, address


def test_destructive_commands_refuse_a_remote_server_named_only_by_the_shell(
        bare: Project, remote_server: tuple[PasswordServer, str]) -> None:
    server, address = remote_server
    with fresh_database(server.server()) as remote:
        _keep(remote)
        url = server.url(remote.name, host=address)
        _local_names_no_server(bare)  # local.env says disposable, but names no server
        reset = bare.run("reset", "--env", "local", "--yes", env={"DATABASE_URL": url})
        assert reset.code == 6, reset.out + reset.err
        assert "keep" in remote.tables(), "reset --env local dropped a remote database's schema"
        assert address in reset.err and remote.name in reset.err  # the refusal names the target
        assert_no_fragment(STAGING_PASSWORD, reset.out, reset.err)
        bare.write("lanconnect", "001_a1.sql", A1)
        migrate = bare.run("migrate", "--env", "local", "--yes", env={"DATABASE_URL": url,
                                                                       "MIGRATION_RESET_SCHEMA": "true"})
        assert migrate.code == 6, migrate.out + migrate.err
        assert "keep" in remote.tables()
        # the same server, named by an environment file that marks it disposable, may be reset
        bare.env_file("scratch", f"DATABASE_URL={url}\nMIGRATE_DISPOSABLE=true\nMAX_WAIT_TIME=5\n")
        allowed = bare.run("reset", "--env", "scratch", "--yes")
        assert allowed.code == 0, allowed.err
        assert remote.tables() == []


# --- the compose stack keeps reaching its server -------------------------------------------------


def test_compose_migration_init_reaches_the_server_compose_passes(
        staging_db: Database, staging_server: PasswordServer, tmp_path: Path) -> None:
    from test_compose import build_image_tree, migration_init, repo_versions, run_in_image

    command, environment = migration_init()
    assert environment["POSTGRES_HOST"] == "db"
    environment = dict(environment, POSTGRES_HOST="127.0.0.1", POSTGRES_PORT=str(staging_server.port),
                       POSTGRES_DB=staging_db.name, POSTGRES_USER="postgres", POSTGRES_PASSWORD=STAGING_PASSWORD)
    image = build_image_tree(REPO, tmp_path / "app")
    result = run_in_image(image, command, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = repo_versions()
    assert staging_db.history("lanconnect") == expected["lanconnect"]
    assert staging_db.history("client_specific") == expected["client_specific"]
    assert not (image / ".pgdata").exists(), "migration-init started an embedded server instead"
    assert "shell" in target_line(result.stderr, "local", staging_db.name)
    assert_no_fragment(STAGING_PASSWORD, result.stdout, result.stderr)


# --- README --------------------------------------------------------------------------------------


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_readme_environments_section_states_the_rule() -> None:
    section = _readme_section("Environments")
    assert "then the process environment, which wins" not in section, "README still says the shell wins"
    for piece in ("local.env", "--host", "MIGRATE_READ_TIMEOUT", "DATABASE_URL"):
        assert piece in section, piece
    assert re.search(r"(?i)empty", section), "the rule for empty values is not written down"
    readme = (REPO / "README.md").read_text()
    assert "baseline --up-to" in readme and "baseline --version" not in readme
