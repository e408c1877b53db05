"""Issue 13, case 3: empty never weakens.

Contract (see test_env_resolution.py for the whole of it): an empty process variable never overrides
a file's value; MIGRATE_REQUIRE_TLS, MIGRATE_CONFIRM, MIGRATE_SQL_LOCK_TIMEOUT and MIGRATE_LOCK_TIMEOUT
can be made stricter by the process environment but never weaker; MIGRATE_DISPOSABLE is read from the
environment file only. CI systems and orchestrators pass defined-but-empty variables all the time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Database, Project
from env_support import history_tables_exist, machine_server_watched, run_bounded, run_lock_held, versions


def _with_sslmode_disable(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


# --- MIGRATE_REQUIRE_TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_process_cannot_switch_off_required_tls(project: Project, db: Database, value: str) -> None:
    project.env_file("production", f"DATABASE_URL={_with_sslmode_disable(db.url)}\nMIGRATE_REQUIRE_TLS=true\n"
                                   "MAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    control = project.run("migrate", "--env", "production", "--yes")
    assert control.code == 2 and "requires TLS" in control.err, control.err  # the file alone refuses plain text
    result = project.run("migrate", "--env", "production", "--yes", env={"MIGRATE_REQUIRE_TLS": value})
    assert result.code == 2, f"MIGRATE_REQUIRE_TLS={value!r} let production connect in plain text: {result.err}"
    assert "requires TLS" in result.err
    assert not history_tables_exist(db) and db.tables("public") == []


def test_process_can_require_tls_where_the_file_does_not(project: Project, db: Database) -> None:
    project.env_file("staging", f"DATABASE_URL={_with_sslmode_disable(db.url)}\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    result = project.run("migrate", "--env", "staging", env={"MIGRATE_REQUIRE_TLS": "true"})
    assert result.code == 2, result.err
    assert "requires TLS" in result.err
    assert not history_tables_exist(db)


# --- MIGRATE_CONFIRM -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "false"])
def test_process_cannot_switch_off_confirmation(project: Project, db: Database, value: str) -> None:
    project.env_file("production", f"DATABASE_URL={db.url}\nMIGRATE_CONFIRM=true\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    result = project.run("migrate", "--env", "production", env={"MIGRATE_CONFIRM": value})
    assert result.code == 6, f"MIGRATE_CONFIRM={value!r} applied to production without --yes: {result.out}"
    assert "requires confirmation (MIGRATE_CONFIRM)" in result.err
    assert db.tables("public") == [] and versions(db) == []
    through_inv = project.inv("migrate", "--env", "production", env={"MIGRATE_CONFIRM": value})
    assert through_inv.code == 6
    assert db.tables("public") == []


# --- MIGRATE_SQL_LOCK_TIMEOUT ----------------------------------------------------------------------


RECORD_LOCK_TIMEOUT = "CREATE TABLE public.seen AS SELECT current_setting('lock_timeout') AS lock_timeout;\n"


@pytest.mark.parametrize("value,expected", [("", "1s"), ("0", "1s"), ("10s", "1s"), ("500ms", "500ms")])
def test_process_can_shorten_the_sql_lock_timeout_but_never_remove_or_lengthen_it(
        project: Project, db: Database, value: str, expected: str) -> None:
    project.env_file("production", f"DATABASE_URL={db.url}\nMIGRATE_SQL_LOCK_TIMEOUT=1s\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_seen.sql", RECORD_LOCK_TIMEOUT)
    result = project.run("migrate", "--env", "production", env={"MIGRATE_SQL_LOCK_TIMEOUT": value})
    assert result.code == 0, result.err
    assert db.query("SELECT lock_timeout FROM public.seen") == [(expected,)], \
        f"MIGRATE_SQL_LOCK_TIMEOUT={value!r} in the process changed production's 1s lock timeout"


# --- MIGRATE_LOCK_TIMEOUT (the run lock) ---------------------------------------------------------


@pytest.mark.parametrize("value", ["", "120"])
def test_process_cannot_lengthen_the_run_lock_timeout(project: Project, db: Database, tmp_path: Path,
                                                     value: str) -> None:
    project.env_file("production", f"DATABASE_URL={db.url}\nMIGRATE_LOCK_TIMEOUT=1\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    with run_lock_held(db, db.url, tmp_path):
        result = run_bounded(project, "migrate", "--env", "production", env={"MIGRATE_LOCK_TIMEOUT": value},
                             timeout=10)
    assert not result.timed_out, f"MIGRATE_LOCK_TIMEOUT={value!r} replaced the file's 1 s (still waiting at 10 s)"
    assert result.code == 5, result.err
    assert result.seconds < 8


def test_process_can_shorten_the_run_lock_timeout(project: Project, db: Database, tmp_path: Path) -> None:
    project.env_file("production", f"DATABASE_URL={db.url}\nMIGRATE_LOCK_TIMEOUT=60\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    with run_lock_held(db, db.url, tmp_path):
        result = run_bounded(project, "migrate", "--env", "production", env={"MIGRATE_LOCK_TIMEOUT": "1"},
                             timeout=10)
    assert result.code == 5, result.err
    assert result.seconds < 8


# --- MIGRATE_DISPOSABLE ----------------------------------------------------------------------------


def test_empty_disposable_does_not_override_the_files_true(project: Project, db: Database) -> None:
    project.env_file("local", f"DATABASE_URL={db.url}\nMIGRATE_DISPOSABLE=true\nMAX_WAIT_TIME=5\n")
    db.execute("CREATE SCHEMA langconnect; CREATE TABLE langconnect.scratch (id int)")
    result = project.run("reset", "--env", "local", "--yes", env={"MIGRATE_DISPOSABLE": ""})
    assert result.code == 0, result.err
    assert db.tables() == []


# --- an empty connection variable never hides the file's server -----------------------------------


@pytest.mark.parametrize("empty", [
    {"DATABASE_URL": ""},
    {"DATABASE_URL": "", "POSTGRES_HOST": "", "POSTGRES_DB": "", "PGHOST": "", "PGDATABASE": ""},
])
def test_empty_connection_variables_do_not_hide_the_files_database(
        project: Project, db: Database, empty: dict[str, str]) -> None:
    project.env_file("staging", f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_probe.sql", "CREATE TABLE IF NOT EXISTS langconnect.t13_probe (id int);")
    with machine_server_watched() as states:
        result = project.run("migrate", "--env", "staging", env=empty)
    assert states[0] == states[1], "the run wrote into the machine server's postgres database"
    assert result.code == 0, result.err
    assert versions(db) == [("001", "applied")]
