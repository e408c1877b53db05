"""Checksums, repair, baseline, missing and out-of-order versions, against a real server."""

from __future__ import annotations

import json

from conftest import Database, Project

A = "CREATE TABLE integrity_a (id int);\nINSERT INTO integrity_a VALUES (1);\n"


def _applied(project: Project, db: Database, text: str = A) -> None:
    project.write("lanconnect", "001_a.sql", text)
    result = project.run("migrate")
    assert result.code == 0, result.err


def _file(project: Project, name: str = "001_a.sql", track: str = "lanconnect"):
    return project.root / "migrations" / track / name


def test_line_endings_and_bom_are_not_a_change(project: Project, db: Database) -> None:
    _applied(project, db)
    recorded = db.history_rows()[0]["checksum"]
    assert recorded.startswith("sha256:") and len(recorded) == len("sha256:") + 64
    _file(project).write_bytes(A.replace("\n", "\r\n").encode())
    status = project.run("status")
    assert status.code == 0, status.err
    assert "changed" not in status.out and "Total: 1 applied" in status.out
    _file(project).write_bytes(b"\xef\xbb\xbf" + A.encode())
    assert project.run("migrate").code == 0
    assert db.history_rows()[0]["checksum"] == recorded


def test_edited_file_is_changed_and_blocks_migrate_with_exit_4(project: Project, db: Database) -> None:
    _applied(project, db)
    _file(project).write_text(A + "INSERT INTO integrity_a VALUES (2);\n")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE integrity_b (id int);")
    status = project.run("status")
    assert status.code == 0
    assert "changed" in status.out
    result = project.run("migrate")
    assert result.code == 4
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("migrate: error: migrations/lanconnect/001_a.sql: lanconnect version 001 was applied")
    assert "restore the file(s) as applied" in line and "run `inv repair`" in line
    assert db.history() == [("001", "applied")]
    assert "integrity_b" not in db.tables("public")


ADDED_ERROR = ("migrate: error: migrations/lanconnect/001_b_more.sql: added under lanconnect version 001, which was "
               "applied without it, so it has never run; rename it to a new version number, or run it now with "
               "`inv migrate --run-added` (python -m migrate migrate --run-added), which runs only the added file(s) "
               "and records the version with all its files; nothing was applied")


def test_file_added_under_an_applied_number_is_added_and_stops_migrate(project: Project, db: Database) -> None:
    _applied(project, db)
    project.write("lanconnect", "001_b_more.sql", "CREATE TABLE integrity_more (id int);")
    project.write("lanconnect", "002_next.sql", "CREATE TABLE integrity_next (id int);")
    status = project.run("status", "--json")
    [item] = [i for i in json.loads(status.out)["migrations"] if i["version"] == "001"]
    assert (item["state"], item["added_files"]) == ("added", ["migrations/lanconnect/001_b_more.sql"])
    assert json.loads(status.out)["totals"]["added"] == 1
    assert "added: 001_b_more.sql never ran" in project.run("status").out
    for command in ("migrate", "dry-run"):
        result = project.run(command)
        assert result.code == 4, result.err
        assert result.err.strip().splitlines()[-1] == ADDED_ERROR
    assert {"integrity_more", "integrity_next"}.isdisjoint(db.tables("public"))


def test_repair_never_records_an_added_file(project: Project, db: Database) -> None:
    _applied(project, db)
    before = db.history_rows()[0]
    project.write("lanconnect", "001_b_more.sql", "CREATE TABLE integrity_more (id int);")
    result = project.run("repair", "--yes")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "lanconnect 001 (001_b_more.sql): left alone: added under an applied version, never run: repair never "
        "records a file that did not run; rename it to a new version number, or run it with `migrate --run-added`",
        "No history row changed."]
    after = db.history_rows()[0]
    assert (after["filename"], after["checksum"]) == (before["filename"], before["checksum"]) == (
        "001_a.sql", before["checksum"])


def test_run_added_runs_only_the_added_file_and_records_the_whole_version(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS runs (file text);\n"
                                             "INSERT INTO runs VALUES ('001_a');")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "001_b_more.sql", "INSERT INTO runs VALUES ('001_b');")
    project.write("lanconnect", "002_next.sql", "INSERT INTO runs VALUES ('002');")
    dry = project.run("dry-run", "--run-added")
    assert dry.code == 0, dry.err
    assert "migrations/lanconnect/001_b_more.sql" in dry.out and "001_a.sql" not in dry.out
    result = project.run("migrate", "--run-added")
    assert result.code == 0, result.err
    assert db.query("SELECT file FROM runs ORDER BY file") == [("001_a",), ("001_b",), ("002",)]
    rows = {row["version"]: row for row in db.history_rows()}
    assert rows["001"]["filename"] == "001_a.sql, 001_b_more.sql"
    status = json.loads(project.run("status", "--json").out)
    versions = {item["version"]: item for item in status["migrations"]}
    assert rows["001"]["checksum"] == versions["001"]["checksum"]
    assert [item["state"] for item in status["migrations"]] == ["applied", "applied"]
    again = project.run("migrate", "--run-added")
    assert again.code == 0 and db.query("SELECT count(*) FROM runs") == [(3,)]


def test_inv_migrate_run_added(project: Project, db: Database) -> None:
    _applied(project, db)
    project.write("lanconnect", "001_b_more.sql", "CREATE TABLE integrity_more (id int);")
    assert project.inv("migrate").code == 4
    result = project.inv("migrate", "--run-added")
    assert result.code == 0, result.err
    assert "integrity_more" in db.tables("public")
    assert db.history_rows()[0]["filename"] == "001_a.sql, 001_b_more.sql"


def test_rows_without_checksum_adopt_it_once(project: Project, db: Database) -> None:
    _applied(project, db)
    expected = db.history_rows()[0]["checksum"]
    db.execute("UPDATE langconnect.lanconnect_migration_versions SET checksum = NULL")
    first = project.run("migrate")
    assert first.code == 0, first.err
    assert first.err.count("adopted the current checksum") == 1
    assert "lanconnect: adopted the current checksum for 1 version(s) recorded without one (001)" in first.err
    assert db.history_rows()[0]["checksum"] == expected
    second = project.run("migrate")
    assert second.code == 0 and "adopted" not in second.err


def test_repair_realigns_checksums_and_clears_failed_rows(project: Project, db: Database) -> None:
    _applied(project, db)
    _file(project).write_text(A + "-- reviewed comment\n")
    project.write("lanconnect", "002_bad.sql", "CREATE TABLE integrity_bad (id int);\nSELECT * FROM nope;\n")
    dry = project.inv("repair", "--dry-run")
    assert dry.code == 0, dry.err
    assert "lanconnect 001 (001_a.sql): would re-align checksum sha256:" in dry.out
    assert "nothing was written" in dry.out
    assert project.run("migrate").code == 4
    fixed = project.inv("repair")
    assert fixed.code == 0, fixed.err
    assert "lanconnect 001 (001_a.sql): re-align checksum sha256:" in fixed.out
    assert "Repaired 1 history row(s)." in fixed.out
    failed = project.run("migrate")
    assert failed.code == 1
    assert db.history() == [("001", "applied"), ("002", "failed")]
    cleared = project.run("repair")
    assert cleared.code == 0, cleared.err
    assert "lanconnect 002 (002_bad.sql): delete the failed row, so the version is pending again" in cleared.out
    assert db.history() == [("001", "applied")]
    assert "pending" in project.run("status").out
    assert "Nothing to repair" in project.run("repair").out


def test_baseline_marks_versions_applied_without_running_them(project: Project, db: Database) -> None:
    for number in (1, 2, 3):
        project.write("lanconnect", f"00{number}_t{number}.sql", f"CREATE TABLE baseline_t{number} (id int);")
    result = project.inv("baseline", "--up-to", "2")
    assert result.code == 0, result.err
    assert "lanconnect 001 (001_t1.sql): marked applied (not run)" in result.out
    rows = db.history_rows()
    assert [(r["version"], r["status"], r["filename"], r["description"]) for r in rows] == [
        ("001", "applied", "001_t1.sql", "Baseline 001_t1.sql (not run)"),
        ("002", "applied", "002_t2.sql", "Baseline 002_t2.sql (not run)"),
    ]
    assert all(r["checksum"].startswith("sha256:") for r in rows)
    assert db.tables("public") == []
    migrated = project.run("migrate")
    assert migrated.code == 0, migrated.err
    assert db.tables("public") == ["baseline_t3"]
    again = project.run("baseline", "--up-to", "2")
    assert again.code == 0 and "already applied, left alone" in again.out


def test_baseline_refuses_versions_recorded_differently(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_t1.sql", "SELECT * FROM no_such_table;")
    project.write("lanconnect", "002_t2.sql", "CREATE TABLE baseline_t2 (id int);")
    assert project.run("migrate").code == 1
    result = project.run("baseline", "--up-to", "002")
    assert result.code == 4
    assert ("migrate: error: lanconnect version 001 is already recorded differently (status failed)"
            in result.err)
    assert db.history() == [("001", "failed")]
    bad = project.run("baseline", "--up-to", "2", "--track", "nope")
    assert bad.code == 2 and "--track 'nope': unknown track" in bad.err
    none = project.run("baseline")
    assert none.code == 2 and "baseline needs --up-to V" in none.err


def test_baseline_other_track(project: Project, db: Database) -> None:
    project.write("client_specific", "001_c.sql", "CREATE TABLE baseline_c (id int);")
    result = project.run("baseline", "--up-to", "1", "--track", "client_specific")
    assert result.code == 0, result.err
    assert db.history("client_specific") == [("001", "applied")]
    assert db.history("lanconnect") == []


def test_missing_file_and_foreign_rows_warn_but_never_fail(project: Project, db: Database) -> None:
    _applied(project, db)
    _file(project).unlink()
    db.execute("INSERT INTO langconnect.client_migration_versions (version, description) "
               "VALUES ('900', 'inserted by a file')")
    status = project.run("status")
    assert status.code == 0, status.err
    assert "missing" in status.out
    assert "warning: lanconnect version 001: history row (applied" in status.err
    assert "warning: client_specific version 900" in status.err
    assert project.run("migrate").code == 0


def test_out_of_order_pending_is_shown_then_applied(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE ooo_1 (id int);")
    project.write("lanconnect", "003_c.sql", "CREATE TABLE ooo_3 (id int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_b.sql", "CREATE TABLE ooo_2 (id int);")
    status = project.run("status")
    assert "pending (out-of-order)" in status.out
    assert "lanconnect version 002 is pending but a higher version (3) is already applied" in status.err
    dry = project.run("dry-run")
    assert "out-of-order" in dry.out
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "out of order" in result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
