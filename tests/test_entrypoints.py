"""Every exit code through the real doors: `python -m migrate` and `inv`, and the earlier flags."""

from __future__ import annotations

import json

from conftest import Database, Project

from migrate.database.run_lock import lock_key


def test_earlier_scripts_flags_still_work(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    status = project.run_process("--status")
    assert status.code == 0 and "pending" in status.out
    dry = project.run_process("--dry-run")
    assert dry.code == 0 and "migrate would apply 1 migration(s)" in dry.out
    assert db.tables("public") == []
    plain = project.run_process()
    assert plain.code == 0, plain.err
    assert db.history() == [("001", "applied")]
    assert project.run_process("--status", "status").code == 2


def test_host_port_database_user_flags_override_the_environment(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    project.env_file("local", "DATABASE_URL=postgresql://nobody@127.0.0.1:1/nothing\nMAX_WAIT_TIME=1\n")
    params = db.server.params
    result = project.run_process("--host", params["host"], "--port", params.get("port", "5432"),
                         "--database", db.name, "--user", params.get("user", "postgres"))
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied")]


def test_exit_codes_through_python_m_migrate_and_inv(project: Project, db: Database) -> None:
    # 0: success
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    assert project.run_process("migrate").code == 0
    assert project.inv("migrate").code == 0
    # 2: configuration
    bad_env = project.run_process("status", "--env", "nowhere")
    assert bad_env.code == 2
    assert bad_env.err.strip() == "migrate: error: unknown environment 'nowhere': envs/nowhere.env does not exist " \
                                  "(known environments: local)"
    inv_bad_env = project.inv("status", "--env", "nowhere")
    assert inv_bad_env.code == 2 and "envs/nowhere.env does not exist" in inv_bad_env.err
    assert project.run_process("frobnicate").code == 2
    # 3: unreachable
    project.env_file("down", "DATABASE_URL=postgresql://u@127.0.0.1:1/d\nMAX_WAIT_TIME=0.5\n")
    assert project.run_process("status", "--env", "down").code == 3
    assert project.inv("status", "--env", "down").code == 3
    # 4: validation
    project.write("lanconnect", "002_b.sql", "CREATE TABL b (id int);")
    assert project.run_process("migrate").code == 4
    assert project.inv("dry-run").code == 4
    # 1: a migration failed
    project.write("lanconnect", "002_b.sql", "CREATE TABLE a (id int);")
    failed = project.inv("migrate")
    assert failed.code == 1
    assert 'relation "a" already exists' in failed.err
    assert db.history() == [("001", "applied"), ("002", "failed")]


def test_lock_held_by_another_session_times_out_with_exit_5(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    holder = db.connect()
    with holder.cursor() as cursor:
        cursor.execute("SET application_name = 'other-runner'")
        cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key("langconnect"),))
    try:
        result = project.run_process("migrate", env={"MIGRATE_LOCK_TIMEOUT": "0.5"})
    finally:
        holder.close()
    assert result.code == 5
    assert "another migration run holds the lock on schema 'langconnect'" in result.err
    assert "application 'other-runner'" in result.err
    assert db.tables("public") == []
    assert project.run_process("migrate").code == 0


def test_confirmation_guard_refuses_without_a_terminal_unless_yes(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    guarded = {"MIGRATE_CONFIRM": "true"}
    refused = project.run_process("migrate", env=guarded)
    assert refused.code == 6
    assert "requires confirmation (MIGRATE_CONFIRM)" in refused.err
    assert db.tables("public") == []
    assert project.inv("migrate", env=guarded).code == 6
    accepted = project.run_process("migrate", "--yes", env=guarded)
    assert accepted.code == 0, accepted.err
    assert db.tables("public") == ["a"]


def test_json_output_is_one_document_on_stdout(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    result = project.run_process("migrate", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["applied"][0]["version"] == "001" and document["error"] is None
    project.write("lanconnect", "002_b.sql", "SELECT 1/0;")
    failed = project.run_process("migrate", "--json")
    assert failed.code == 1
    assert json.loads(failed.out)["error"]["exit_code"] == 1
