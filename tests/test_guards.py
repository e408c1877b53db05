"""Guards against a mistyped --env: confirmation for guarded environments, reset only where disposable."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO, Database, Project


def _guarded(project: Project, db: Database, name: str = "production", extra: str = "") -> None:
    project.env_file(name, f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=5\nMIGRATE_CONFIRM=true\n{extra}")


def _history_table_exists(db: Database) -> bool:
    return bool(db.query("SELECT to_regclass('langconnect.lanconnect_migration_versions') IS NOT NULL")[0][0])


def test_confirm_without_a_terminal_refuses_and_writes_nothing(project: Project, db: Database) -> None:
    _guarded(project, db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    result = project.run("migrate", "--env", "production")
    assert result.code == 6
    assert ("migrate: error: environment 'production' requires confirmation (MIGRATE_CONFIRM) and there is no "
            "terminal to ask; review `dry-run` and pass --yes") in result.err
    assert not _history_table_exists(db)
    assert db.tables("public") == []
    through_inv = project.inv("migrate", "--env", "production")
    assert through_inv.code == 6
    assert "there is no terminal to ask; review `dry-run` and pass --yes" in through_inv.err
    assert not _history_table_exists(db)


def test_confirm_with_yes_applies(project: Project, db: Database) -> None:
    _guarded(project, db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    result = project.run("migrate", "--env", "production", "--yes")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied")]


def test_confirm_with_nothing_to_apply_does_not_ask(project: Project, db: Database) -> None:
    _guarded(project, db)
    assert project.run("migrate", "--env", "production").code == 0


def _run_on_a_terminal(project: Project, answer: str, *args: str) -> tuple[int, str, str]:
    """`python -m migrate ARGS` with stdin on a pseudo-terminal that already holds `answer`."""
    primary, secondary = os.openpty()
    try:
        os.write(primary, answer.encode() + b"\n")
        completed = subprocess.run([sys.executable, "-m", "migrate", *args], cwd=project.root,
                                   env=project.environ(PYTHONPATH=str(REPO)), stdin=secondary,
                                   capture_output=True, text=True, timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    return completed.returncode, completed.stdout, completed.stderr


def test_confirm_on_a_terminal_shows_the_plan_and_applies_after_yes(project: Project, db: Database) -> None:
    _guarded(project, db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    code, out, err = _run_on_a_terminal(project, "yes", "migrate", "--env", "production")
    assert code == 0, err
    assert "migrate would apply 1 migration(s), in this order:" in err
    assert "Apply 1 migration(s) to production? Type yes: " in err
    assert "[1/1] lanconnect 001_a.sql" in out
    assert db.history() == [("001", "applied")]


def test_confirm_on_a_terminal_refuses_any_other_answer(project: Project, db: Database) -> None:
    _guarded(project, db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    code, _, err = _run_on_a_terminal(project, "y", "migrate", "--env", "production")
    assert code == 6
    assert "migrate: error: not confirmed: nothing was applied to 'production'" in err
    assert not _history_table_exists(db)


def _seed(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS langconnect.a (id int);")
    assert project.run("migrate").code == 0
    db.execute("CREATE TABLE langconnect.handmade (id int)")


def test_reset_is_refused_on_an_environment_not_marked_disposable(project: Project, db: Database) -> None:
    project.env_file("staging", f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=5\n")
    _seed(project, db)
    result = project.run("reset", "--env", "staging")
    assert result.code == 6
    assert result.err.strip().splitlines()[-1] == (
        "migrate: error: reset drops schema 'langconnect' and is refused for environment 'staging': it is not "
        "marked disposable (set MIGRATE_DISPOSABLE=true in envs/staging.env only if its data may be thrown "
        "away); nothing was changed")
    assert db.tables() == ["a", "client_migration_versions", "handmade", "lanconnect_migration_versions",
                           "migration_attempts"]


def test_reset_drops_and_recreates_the_app_schema_on_a_disposable_environment(
        project: Project, db: Database) -> None:
    _seed(project, db)
    (project.root / "envs" / "local.env").write_text(f"DATABASE_URL={db.url}\nMIGRATE_DISPOSABLE=true\n")
    result = project.inv("reset", "--env", "local", "--yes")  # no terminal here: --yes confirms
    assert result.code == 0, result.err
    assert "Schema langconnect dropped and recreated (empty)" in result.out
    assert db.tables() == []
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'langconnect'") == [(1,)]
    assert project.run("migrate").code == 0
    assert db.tables() == ["a", "client_migration_versions", "lanconnect_migration_versions", "migration_attempts"]


def test_migration_reset_schema_is_refused_unless_disposable(project: Project, db: Database) -> None:
    _seed(project, db)
    result = project.run("migrate", env={"MIGRATION_RESET_SCHEMA": "true"})
    assert result.code == 6
    assert "MIGRATION_RESET_SCHEMA=true drops schema 'langconnect' and is refused for environment 'local'" \
        in result.err
    assert "handmade" in db.tables()


def test_migration_reset_schema_resets_first_on_a_disposable_environment(project: Project, db: Database) -> None:
    _seed(project, db)
    (project.root / "envs" / "local.env").write_text(f"DATABASE_URL={db.url}\nMIGRATE_DISPOSABLE=true\n")
    result = project.run("migrate", "--yes", env={"MIGRATION_RESET_SCHEMA": "true"})
    assert result.code == 0, result.err
    assert "[1/1] lanconnect 001_a.sql" in result.out
    assert db.tables() == ["a", "client_migration_versions", "lanconnect_migration_versions", "migration_attempts"]


def test_the_shipped_environments_are_guarded() -> None:
    from migrate.settings import load_settings

    environ = {"STAGING_DATABASE_URL": "postgresql://u@h/d", "PRODUCTION_DATABASE_URL": "postgresql://u@h/d"}
    local, staging, production = (load_settings(name, REPO, environ) for name in ("local", "staging", "production"))
    assert (local.safety.disposable, staging.safety.disposable, production.safety.disposable) == (True, False, False)
    assert production.safety.confirm is True


def _checksum_of_001(db: Database) -> str:
    return db.query("SELECT checksum FROM langconnect.lanconnect_migration_versions WHERE version = '001'")[0][0]


def test_repair_on_a_guarded_environment_asks_before_it_writes(project: Project, db: Database) -> None:
    _guarded(project, db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    assert project.run("migrate", "--env", "production", "--yes").code == 0
    stored = _checksum_of_001(db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int); -- reviewed\n")
    refused = project.inv("repair", "--env", "production")
    assert refused.code == 6
    assert refused.err.strip().splitlines()[-1] == (
        "migrate: error: environment 'production' requires confirmation (MIGRATE_CONFIRM) and there is no "
        "terminal to ask; review `repair --dry-run` and pass --yes")
    assert _checksum_of_001(db) == stored
    code, out, err = _run_on_a_terminal(project, "no", "repair", "--env", "production")
    assert code == 6
    assert "lanconnect 001 (001_a.sql): would re-align checksum sha256:" in err
    assert "Change 1 history row(s) on production? Type yes: " in err
    assert "migrate: error: not confirmed: no history row was changed on 'production'" in err
    assert _checksum_of_001(db) == stored
    code, out, err = _run_on_a_terminal(project, "yes", "repair", "--env", "production")
    assert code == 0, err
    assert "Repaired 1 history row(s)." in out
    assert _checksum_of_001(db) != stored
    assert project.run("repair", "--env", "production").code == 0  # nothing to change: no question


def test_baseline_on_a_guarded_environment_asks_before_it_writes(project: Project, db: Database) -> None:
    _guarded(project, db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE public.a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE public.b (id int);")
    refused = project.run("baseline", "--up-to", "2", "--env", "production")
    assert refused.code == 6
    assert refused.err.strip().endswith("requires confirmation (MIGRATE_CONFIRM) and there is no terminal to ask; "
                                        "pass --yes")
    assert db.query("SELECT count(*) FROM langconnect.lanconnect_migration_versions") == [(0,)]
    code, _, err = _run_on_a_terminal(project, "nope", "baseline", "--up-to", "2", "--env", "production")
    assert code == 6
    assert ("Mark 2 lanconnect version(s) up to 2 as applied without running them on production? Type yes: "
            in err)
    assert "migrate: error: not confirmed: nothing was recorded on 'production'" in err
    assert db.query("SELECT count(*) FROM langconnect.lanconnect_migration_versions") == [(0,)]
    accepted = project.inv("baseline", "--up-to", "2", "--env", "production", "--yes")
    assert accepted.code == 0, accepted.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.tables("public") == []


def test_reset_on_a_disposable_guarded_environment_asks(project: Project, db: Database) -> None:
    _guarded(project, db, "scratch", "MIGRATE_DISPOSABLE=true\n")
    _seed_on(project, "scratch")
    code, _, err = _run_on_a_terminal(project, "no", "reset", "--env", "scratch")
    assert code == 6
    assert "Drop schema langconnect on scratch? Type yes: " in err
    assert "migrate: error: not confirmed: nothing was changed on 'scratch'" in err
    assert "a" in db.tables()
    assert project.run("reset", "--env", "scratch", "--yes").code == 0
    assert db.tables() == []


def _seed_on(project: Project, env: str) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS langconnect.a (id int);")
    assert project.run("migrate", "--env", env, "--yes").code == 0
