"""--json: one document on stdout with the keys README documents; logs stay on stderr."""

from __future__ import annotations

import json

from conftest import Database, Project

ITEM_KEYS = {"track", "version", "state", "out_of_order", "files", "checksum", "recorded_checksum", "applied_at",
             "execution_ms", "error", "added_files", "interrupted", "interrupted_at"}


def _files(project: Project) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE IF NOT EXISTS public.b (id int);")
    project.write("client_specific", "001_c.sql", "CREATE TABLE IF NOT EXISTS public.c (id int);")


def test_status_json(project: Project) -> None:
    _files(project)
    assert project.run("migrate").code == 0
    project.write("lanconnect", "003_d.sql", "SELECT 1;")
    result = project.run("status", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert set(document) == {"environment", "database", "migrations", "totals", "warnings"}
    assert document["totals"] == {"applied": 3, "pending": 1, "failed": 0, "changed": 0, "added": 0, "missing": 0}
    first = document["migrations"][0]
    assert set(first) == ITEM_KEYS
    assert (first["track"], first["version"], first["state"], first["files"]) == (
        "lanconnect", "001", "applied", ["migrations/lanconnect/001_a.sql"])
    assert isinstance(first["execution_ms"], int) and first["applied_at"]
    assert [(m["track"], m["version"], m["state"]) for m in document["migrations"]] == [
        ("lanconnect", "001", "applied"), ("lanconnect", "002", "applied"), ("lanconnect", "003", "pending"),
        ("client_specific", "001", "applied")]


def test_dry_run_json(project: Project) -> None:
    _files(project)
    project.write("lanconnect", "004_idx.sql", "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_idx ON public.a (id);")
    result = project.inv("dry-run", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [(m["track"], m["version"], m["mode"]) for m in document["to_apply"]] == [
        ("lanconnect", "001", "transaction"), ("lanconnect", "002", "transaction"),
        ("lanconnect", "004", "no transaction: CREATE INDEX CONCURRENTLY (statement 1, line 1)"),
        ("client_specific", "001", "transaction")]


def test_migrate_json_success(project: Project, db: Database) -> None:
    _files(project)
    result = project.run("migrate", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert set(document) == {"environment", "database", "applied", "pending_before", "failed", "not_attempted",
                             "adopted_checksums", "error", "warnings", "lint"}
    assert [(a["track"], a["version"], a["state"], a["mode"]) for a in document["applied"]] == [
        ("lanconnect", "001", "applied", "transaction"), ("lanconnect", "002", "applied", "transaction"),
        ("client_specific", "001", "applied", "transaction")]
    assert all(isinstance(a["execution_ms"], int) for a in document["applied"])
    assert (document["pending_before"], document["failed"], document["not_attempted"], document["error"]) == (
        3, None, [], None)
    assert "created langconnect.lanconnect_migration_versions" in result.err


def test_migrate_json_failure_names_the_failed_version_and_what_was_not_attempted(
        project: Project, db: Database) -> None:
    _files(project)
    project.write("lanconnect", "002_b.sql", "CREATE TABLE public.b (id int);\nSELECT 1/0;\n")
    result = project.run("migrate", "--json")
    assert result.code == 1
    document = json.loads(result.out)
    assert [a["version"] for a in document["applied"]] == ["001"]
    failed = document["failed"]
    assert (failed["track"], failed["version"], failed["state"]) == ("lanconnect", "002", "failed")
    assert failed["error"].startswith("migrations/lanconnect/002_b.sql:2:1: ERROR 22012: division by zero")
    assert [(m["track"], m["version"]) for m in document["not_attempted"]] == [("client_specific", "001")]
    assert document["error"]["exit_code"] == 1
    assert result.out.count("\"environment\"") == 1  # exactly one document
    assert db.history() == [("001", "applied"), ("002", "failed")]


def test_an_error_before_any_document_still_prints_one(project: Project) -> None:
    project.env_file("down", "DATABASE_URL=postgresql://postgres@127.0.0.1:1/postgres\nMAX_WAIT_TIME=0.3\n")
    for runner in (project.run_process, project.inv):
        result = runner("status", "--env", "down", "--json")
        assert result.code == 3
        document = json.loads(result.out)
        assert document["error"]["exit_code"] == 3
        assert document["error"]["message"].startswith("database at postgresql://postgres@127.0.0.1:1/postgres")


def test_every_json_command_prints_the_error_document_through_both_doors(project: Project) -> None:
    """One error edge: a failure before any document (here an environment that does not exist, and a
    server that does not answer) still gives one JSON document, from `python -m migrate` and from `inv`."""
    # disposable, so verify may put its shadow there: it gets as far as connecting, as the others do
    project.env_file("down", "DATABASE_URL=postgresql://postgres@127.0.0.1:1/postgres\nMAX_WAIT_TIME=0.3\n"
                             "MIGRATE_DISPOSABLE=true\n")
    commands = [("migrate",), ("status",), ("dry-run",), ("verify",), ("history",), ("lint",)]
    for command in commands:
        for runner, door in ((project.run_process, "python -m migrate"), (project.inv, "inv")):
            missing = runner(*command, "--env", "nowhere", "--json")
            assert missing.code == 2, (door, command, missing.err)
            assert json.loads(missing.out) == {"error": {"exit_code": 2, "message": missing.err.strip()[
                len("migrate: error: "):]}}, (door, command)
            if command != ("lint",):  # lint reads files only
                down = runner(*command, "--env", "down", "--json")
                assert down.code == 3, (door, command, down.err)
                assert json.loads(down.out)["error"]["exit_code"] == 3, (door, command)
    for runner in (project.run_process, project.inv):  # several environments: the same edge
        many = runner("status", "--env", "local,no such", "--json")
        assert many.code == 2 and json.loads(many.out)["error"]["exit_code"] == 2
