"""status across environments: one table, unreachable and misconfigured columns, who is behind whom."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import Database, Project, Server, fresh_database


@pytest.fixture
def other_db(server: Server) -> Iterator[Database]:
    with fresh_database(server) as database:
        yield database


def _environments(project: Project, other: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE IF NOT EXISTS public.b (id int);")
    project.write("client_specific", "001_c.sql", "CREATE TABLE IF NOT EXISTS public.c (id int);")
    assert project.run("migrate").code == 0
    project.env_file("staging", f"DATABASE_URL={other.url}\nMAX_WAIT_TIME=5\n")
    project.env_file("production", "DATABASE_URL=postgresql://postgres@127.0.0.1:1/postgres\nMAX_WAIT_TIME=5\n")
    project.env_file("qa", "DATABASE_URL=${QA_DATABASE_URL}\n")


def test_status_all_shows_every_environment_and_who_is_behind(project: Project, other_db: Database) -> None:
    _environments(project, other_db)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    other_db.execute("CREATE SCHEMA langconnect; CREATE TABLE langconnect.lanconnect_migration_versions "
                     "(version varchar(255) PRIMARY KEY, status text NOT NULL DEFAULT 'applied', "
                     "description text, error_message text, applied_at timestamp DEFAULT now()); "
                     "INSERT INTO langconnect.lanconnect_migration_versions (version) VALUES ('001')")
    result = project.inv("status", "--env", "all", "--timeout", "0.5")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["track", "version", "file(s)", "local", "staging", "production", "qa"]
    assert lines[2].split() == ["lanconnect", "001", "001_a.sql", "applied", "applied", "unreachable",
                                "misconfigured"]
    assert lines[3].split() == ["lanconnect", "002", "002_b.sql", "applied", "pending", "unreachable",
                                "misconfigured"]
    assert lines[4].split() == ["client_specific", "001", "001_c.sql", "applied", "pending", "unreachable",
                                "misconfigured"]
    assert "  production: unreachable: database at postgresql://postgres@127.0.0.1:1/postgres" in result.out
    assert ("  qa: misconfigured: envs/qa.env: DATABASE_URL needs ${QA_DATABASE_URL}, which is not set"
            in result.out)
    assert "staging is behind local by 2 migration(s): lanconnect 002, client_specific 001" in result.out
    assert "local is behind" not in result.out


def test_status_of_a_comma_list_as_json(project: Project, other_db: Database) -> None:
    _environments(project, other_db)
    result = project.run("status", "--env", "local,staging,production", "--json", "--timeout", "0.5")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [(e["name"], e["status"]) for e in document["environments"]] == [
        ("local", "ok"), ("staging", "ok"), ("production", "unreachable")]
    assert document["environments"][0]["totals"] == {"applied": 3, "pending": 0, "failed": 0, "changed": 0,
                                                     "added": 0, "missing": 0}
    assert document["environments"][2]["totals"] is None
    assert "127.0.0.1:1" in document["environments"][2]["error"]
    assert document["migrations"][0] == {"track": "lanconnect", "version": "001", "files": ["001_a.sql"],
                                         "states": {"local": "applied", "staging": "pending",
                                                    "production": None}}
    assert document["behind"] == [{"environment": "staging", "behind": "local", "versions": [
        {"track": "lanconnect", "version": "001"}, {"track": "lanconnect", "version": "002"},
        {"track": "client_specific", "version": "001"}]}]
    # status is read-only everywhere: staging got no history tables
    assert other_db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'langconnect'") == []


def test_a_bad_environment_name_in_the_list_is_a_usage_error(project: Project) -> None:
    result = project.run("status", "--env", "local,no/pe")
    assert result.code == 2
    assert "invalid environment name 'no/pe' in --env 'local,no/pe'" in result.err
