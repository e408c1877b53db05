"""Issue 13, case 9: the tool prints its own version; baseline's option is `--up-to`.

Contract (see test_env_resolution.py for the whole of it): `python -m migrate --version` and the Invoke
task `inv version` print the same string, equal to the `tool_version` recorded in history rows and
attempts (e.g. `migrate 0.1.0`); baseline marks versions with `--up-to V` through both doors.
"""

from __future__ import annotations

from conftest import Database, Project


def test_version_through_both_doors_is_the_recorded_tool_version(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    assert project.run("migrate").code == 0
    recorded = {row["tool_version"] for row in db.history_rows()}
    recorded |= {row[0] for row in db.query("SELECT DISTINCT tool_version FROM langconnect.migration_attempts")}
    assert len(recorded) == 1
    tool_version = recorded.pop()
    python_door = project.run("--version")
    assert python_door.code == 0, python_door.err
    assert python_door.out.strip() == tool_version
    inv_door = project.inv("version")
    assert inv_door.code == 0, inv_door.err
    assert inv_door.out.strip() == tool_version


def test_baseline_takes_up_to(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE public.a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE public.b (id int);")
    project.write("lanconnect", "003_c.sql", "CREATE TABLE public.c (id int);")
    project.write("client_specific", "001_x.sql", "CREATE TABLE public.x (id int);")
    result = project.run("baseline", "--up-to", "002")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    through_inv = project.inv("baseline", "--up-to", "001", "--track", "client_specific")
    assert through_inv.code == 0, through_inv.err
    assert db.history("client_specific") == [("001", "applied")]
    assert db.tables("public") == []  # nothing ran
    applied = project.run("migrate")
    assert applied.code == 0, applied.err
    assert db.tables("public") == ["c"]
