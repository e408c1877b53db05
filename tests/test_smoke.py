"""The happy path through every door: python -m migrate and inv."""

from __future__ import annotations

from conftest import Database, Project


def test_migrate_applies_both_tracks_and_status_shows_them(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS langconnect_a (id int);")
    project.write("client_specific", "001_b.sql", "CREATE TABLE IF NOT EXISTS client_b (id int);")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "[1/2] lanconnect 001_a.sql" in result.out
    assert db.history("lanconnect") == [("001", "applied")]
    assert db.history("client_specific") == [("001", "applied")]
    status = project.inv("status")
    assert status.code == 0, status.err
    assert "Total: 2 applied" in status.out
