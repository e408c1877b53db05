"""The pure core, without a server: every plan state from files x history rows, and how files are classified.

These run in milliseconds; they pin build_plan, validate_plan and the statement classifier so the
layers above them can move without a database in the loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from migrate.errors import ValidationError
from migrate.files.sqlfiles import MigrationFile, MigrationVersion, checksum_of
from migrate.files.statements import parse_file
from migrate.history.tables import HistoryRow
from migrate.plan import (
    ADDED,
    APPLIED,
    CHANGED,
    FAILED,
    MISSING,
    PENDING,
    build_plan,
    build_repair_actions,
    build_repair_skips,
    include_added,
    mark_interrupted,
    validate_plan,
)
from migrate.tracks import build_tracks

ROOT = Path("/project")
TRACKS = build_tracks(ROOT / "migrations")


def _file(track: str, name: str, text: str = "SELECT 1;\n") -> MigrationFile:
    version, _, rest = name.partition("_")
    return MigrationFile(track, version, int(version), rest[:-4], ROOT / "migrations" / track, name, text,
                         checksum_of(text.encode()))


def _version(track: str, *names: str) -> MigrationVersion:
    files = tuple(_file(track, name, f"SELECT {index};\n") for index, name in enumerate(names))
    return MigrationVersion(track, files[0].version, files[0].number, files)


def _row(track: str, version: str, status: str = APPLIED, checksum: str | None = None,
         filename: str | None = None) -> HistoryRow:
    return HistoryRow(track, version, status, checksum=checksum, filename=filename)


def _states(plan) -> list[tuple[str, str, str]]:  # noqa: ANN001
    return [(item.track.name, item.version, item.state) for item in plan.items]


def test_every_state_from_files_and_rows() -> None:
    v1, v2, v3, v4 = (_version("lanconnect", f"00{n}_v{n}.sql") for n in range(1, 5))
    history = {"lanconnect": [
        _row("lanconnect", "001", checksum=v1.checksum),             # applied, same file
        _row("lanconnect", "002", checksum="sha256:other"),          # applied, file edited -> changed
        _row("lanconnect", "003", status=FAILED),                    # failed -> retried
        _row("lanconnect", "009", checksum="sha256:gone"),           # no file -> missing
    ]}
    plan = build_plan(TRACKS, {"lanconnect": [v1, v2, v3, v4]}, history, ROOT)
    assert _states(plan) == [("lanconnect", "001", APPLIED), ("lanconnect", "002", CHANGED),
                             ("lanconnect", "003", FAILED), ("lanconnect", "004", PENDING),
                             ("lanconnect", "009", MISSING)]
    assert [item.version for item in plan.to_apply()] == ["003", "004"]
    assert any("009" in warning and "matches no file" in warning for warning in plan.warnings)


def test_a_row_without_checksum_is_applied_and_adopts_the_files_checksum() -> None:
    v1 = _version("lanconnect", "001_a.sql")
    plan = build_plan(TRACKS, {"lanconnect": [v1]}, {"lanconnect": [_row("lanconnect", "001")]}, ROOT)
    assert _states(plan) == [("lanconnect", "001", APPLIED)]
    assert plan.items[0].checksum_to_adopt == v1.checksum


def test_versions_match_rows_by_number_and_order_numerically() -> None:
    versions = [_version("lanconnect", "0002_b.sql"), _version("lanconnect", "9_c.sql"),
                _version("lanconnect", "00010_d.sql")]
    plan = build_plan(TRACKS, {"lanconnect": versions}, {"lanconnect": [_row("lanconnect", "2")]}, ROOT)
    assert [(item.version, item.state) for item in plan.items] == [("0002", APPLIED), ("9", PENDING),
                                                                    ("00010", PENDING)]


def test_pending_below_the_highest_applied_is_out_of_order() -> None:
    v1, v2 = _version("lanconnect", "001_a.sql"), _version("lanconnect", "002_b.sql")
    plan = build_plan(TRACKS, {"lanconnect": [v1, v2]},
                      {"lanconnect": [_row("lanconnect", "002", checksum=v2.checksum)]}, ROOT)
    assert plan.items[0].state == PENDING and plan.items[0].out_of_order
    assert any("out of order" in warning for warning in plan.warnings)


def test_tracks_keep_their_order_and_their_own_rows() -> None:
    core, client = _version("lanconnect", "001_a.sql"), _version("client_specific", "001_b.sql")
    plan = build_plan(TRACKS, {"client_specific": [client], "lanconnect": [core]},
                      {"client_specific": [_row("client_specific", "001", checksum=client.checksum)]}, ROOT)
    assert _states(plan) == [("lanconnect", "001", PENDING), ("client_specific", "001", APPLIED)]


def test_a_file_added_under_an_applied_number_changes_the_versions_checksum() -> None:
    alone = _version("lanconnect", "001_a.sql")
    grown = _version("lanconnect", "001_a.sql", "001_b.sql")
    plan = build_plan(TRACKS, {"lanconnect": [grown]},
                      {"lanconnect": [_row("lanconnect", "001", checksum=alone.checksum)]}, ROOT)
    assert plan.items[0].state == CHANGED
    with pytest.raises(ValidationError, match="001_a.sql, migrations/lanconnect/001_b.sql: lanconnect version 001"):
        validate_plan(plan, ROOT)


def test_validate_plan_passes_without_changed_versions() -> None:
    plan = build_plan(TRACKS, {"lanconnect": [_version("lanconnect", "001_a.sql")]}, {}, ROOT)
    validate_plan(plan, ROOT)  # raises on a changed version only
    assert plan.by_state(PENDING)[0].version == "001"


@pytest.mark.parametrize(("text", "mode"), [
    ("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n", "transaction"),
    ("CREATE INDEX CONCURRENTLY i ON t (id);\n", "no transaction: CREATE INDEX CONCURRENTLY (statement 1, line 1)"),
    ("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n", "no transaction: manages its own transactions "
                                                  "(statement 1, line 1)"),
    ("-- migrate:no-transaction\nCREATE TABLE t (id int);\n", "no transaction: marker '-- migrate:no-transaction'"),
    ("-- transaction:false\nSELECT 1;\n", "no transaction: marker '-- transaction:false'"),
    ("VACUUM;\n", "no transaction: VACUUM (statement 1, line 1)"),
    ("\\set x 1\nSELECT :x;\n", "psql, one transaction (psql meta-command \\set on line 1)"),
    ("COPY t FROM stdin;\n1\n\\.\n", "psql, one transaction (COPY ... FROM stdin on line 1)"),
    ("DO $$ BEGIN COMMIT; END $$;\n", "no transaction: DO block with COMMIT (statement 1, line 1)"),
])
def test_statement_classification(text: str, mode: str) -> None:
    script = parse_file(_file("lanconnect", "001_x.sql", text), ROOT)
    assert script.mode == mode


def test_statements_keep_their_line_and_column() -> None:
    script = parse_file(_file("lanconnect", "001_x.sql", "-- header\nSELECT 1;\n\n  SELECT\n  2;\n"), ROOT)
    assert [(s.index, s.line, s.column, s.text) for s in script.statements] == [
        (1, 2, 1, "SELECT 1"), (2, 4, 3, "SELECT\n  2")]


def test_syntax_error_names_file_line_and_column() -> None:
    expected = r"^migrations/lanconnect/001_x.sql:2:13: syntax error at or near \"WHERE\"; fix the SQL"
    with pytest.raises(ValidationError, match=expected):
        parse_file(_file("lanconnect", "001_x.sql", "SELECT 1;\nSELECT FROM WHERE;\n"), ROOT)


# --- case 9: a file added under an applied version is its own state -----------------------------------------------

def _ran_with(version: MigrationVersion, *names: str, checksum: bool = True) -> HistoryRow:
    """The row the tool wrote when `version` was applied with only the files `names`."""
    ran = MigrationVersion(version.track, version.version, version.number,
                           tuple(f for f in version.files if f.name in names))
    return _row(version.track, version.version, checksum=ran.checksum if checksum else None,
                filename=", ".join(names))


def test_a_file_added_under_an_applied_version_is_added() -> None:
    grown = _version("lanconnect", "001_a.sql", "001_b.sql", "001_c.sql")
    plan = build_plan(TRACKS, {"lanconnect": [grown]}, {"lanconnect": [_ran_with(grown, "001_a.sql", "001_b.sql")]},
                      ROOT)
    [item] = plan.items
    assert item.state == ADDED
    assert [f.name for f in item.added_files] == ["001_c.sql"]
    assert not item.needs_apply and item.checksum_to_adopt is None
    with pytest.raises(ValidationError, match=r"^migrations/lanconnect/001_c.sql: added under lanconnect version 001, "
                                              r"which was applied without it, so it has never run; rename it .*"
                                              r"`inv migrate --run-added`"):
        validate_plan(plan, ROOT)


@pytest.mark.parametrize(("row_files", "edited"), [
    (("001_a.sql",), True),              # the recorded file was edited as well: changed
    (("001_a.sql", "001_gone.sql"), False),  # a recorded file is gone: changed
    ((), False),                         # no file names recorded: nothing tells which files ran
])
def test_an_edit_beside_an_added_file_stays_changed(row_files: tuple[str, ...], edited: bool) -> None:
    grown = _version("lanconnect", "001_a.sql", "001_b.sql")
    row = _row("lanconnect", "001", checksum="sha256:" + "0" * 64 if edited else grown.files[0].checksum,
               filename=", ".join(row_files) or None)
    plan = build_plan(TRACKS, {"lanconnect": [grown]}, {"lanconnect": [row]}, ROOT)
    assert plan.items[0].state == CHANGED


def test_a_row_without_checksum_names_the_files_it_ran() -> None:
    grown = _version("lanconnect", "001_a.sql", "001_b.sql")
    plan = build_plan(TRACKS, {"lanconnect": [grown]},
                      {"lanconnect": [_ran_with(grown, "001_a.sql", checksum=False)]}, ROOT)
    assert plan.items[0].state == ADDED
    assert plan.items[0].checksum_to_adopt is None  # adopting every file's checksum would record 001_b as run


def test_run_added_makes_only_the_added_files_work_to_run() -> None:
    grown, later = _version("lanconnect", "001_a.sql", "001_b.sql"), _version("lanconnect", "002_c.sql")
    plan = include_added(build_plan(TRACKS, {"lanconnect": [grown, later]},
                                    {"lanconnect": [_ran_with(grown, "001_a.sql")]}, ROOT))
    validate_plan(plan, ROOT)
    added, pending = plan.to_apply()
    assert (added.state, [f.name for f in added.files_to_run], added.out_of_order) == (ADDED, ["001_b.sql"], False)
    assert added.migration == grown  # recorded with all its files
    assert (pending.version, [f.name for f in pending.files_to_run]) == ("002", ["002_c.sql"])


def test_repair_leaves_an_added_version_alone_and_says_why() -> None:
    grown = _version("lanconnect", "001_a.sql", "001_b.sql")
    plan = build_plan(TRACKS, {"lanconnect": [grown]}, {"lanconnect": [_ran_with(grown, "001_a.sql")]}, ROOT)
    assert build_repair_actions(plan) == []
    [skip] = build_repair_skips(plan)
    assert (skip.version, skip.files) == ("001", "001_b.sql")
    assert "rename it to a new version number, or run it with `migrate --run-added`" in skip.reason


# --- status of versions interrupted mid-file (the attempt log's latest attempt is `started`) -------------------

def test_only_versions_not_applied_are_interrupted() -> None:
    v1, v2, v3 = (_version("lanconnect", f"00{n}_v{n}.sql") for n in range(1, 4))
    history = {"lanconnect": [_row("lanconnect", "001", checksum=v1.checksum), _row("lanconnect", "002", FAILED)]}
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plan = mark_interrupted(build_plan(TRACKS, {"lanconnect": [v1, v2, v3]}, history, ROOT),
                            {("lanconnect", "001"): started, ("lanconnect", "002"): started,
                             ("lanconnect", "003"): started, ("client_specific", "003"): started})
    assert [(item.version, item.state, item.interrupted) for item in plan.items] == [
        ("001", APPLIED, False), ("002", FAILED, True), ("003", PENDING, True)]
    assert plan.items[2].interrupted_at == started and plan.items[2].needs_apply
