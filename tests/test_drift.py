"""drift (issue 15), end to end through the CLI on the Supabase-shaped platform and app: after migrate there
is no drift; hand edits are reported one line each (exit 7) and vanish once reverted; pending files are
pending, not drift; a held run lock is a deploy in progress (exit 8); no shadow server is refused (exit 6);
the target is never written and the shadow is dropped; several environments at once, and status --drift.

The 25 kinds of hand edit are the model's tests (test_schema_model.py); these are about the command."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Database, Project, Server, fresh_database
from supabase_fixture import copy_app, has_extension, install_platform

from migrate.database.run_lock import lock_key

POLICY = 'storage.objects."Users read their own documents"'
POLICY_SQL = ('CREATE POLICY "Users read their own documents" ON storage.objects FOR SELECT TO authenticated '
              "USING (bucket_id = 'documents' AND owner = auth.uid())")


@pytest.fixture
def platform(db: Database) -> list[str]:
    connection = db.connect()
    try:
        return install_platform(connection)
    finally:
        connection.close()


def _app(project: Project, server: Server) -> None:
    connection = server.connect()
    try:
        vector = has_extension(connection, "vector")
    finally:
        connection.close()
    copy_app(project.root / "migrations", vector=vector)


def _disposable(project: Project, env: str = "local", url: str | None = None) -> None:
    (project.root / "envs" / f"{env}.env").write_text(
        f"DATABASE_URL={url or project.url}\nMAX_WAIT_TIME=5\nMIGRATE_DISPOSABLE=true\n")


def _migrated(project: Project, server: Server) -> None:
    _app(project, server)
    _disposable(project)
    done = project.run("migrate")
    assert done.code == 0, done.err


def _drift(project: Project, *args: str) -> tuple[int, dict[str, Any], str]:
    result = project.run("drift", "--json", *args)
    return result.code, json.loads(result.out), result.err


def _findings(out: str) -> list[str]:
    """The finding lines of drift's text output."""
    return [line for line in out.splitlines() if line.startswith(("extra ", "missing ", "changed "))]


def _shadows(db: Database) -> list[tuple[Any, ...]]:
    return db.query("SELECT datname FROM pg_database WHERE datname LIKE 'migrate_drift_%%'")


def _untouched(db: Database) -> tuple[Any, ...]:
    """What a write to the target would change: history rows, the attempt log, the catalog, the platform's rows."""
    return (db.history_rows("lanconnect"), db.history_rows("client_specific"),
            db.query("SELECT count(*) FROM langconnect.migration_attempts") if db.tables().count(
                "migration_attempts") else None,
            db.catalog_fingerprint(), db.query("SELECT id FROM storage.buckets ORDER BY id"),
            db.query("SELECT polname FROM pg_policy ORDER BY 1"))


def test_after_migrate_there_is_no_drift_and_the_target_is_untouched(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _migrated(project, server)
    before = _untouched(db)
    result = project.run("drift")
    assert result.code == 0, result.err
    assert _findings(result.out) == []
    lines = result.out.splitlines()
    assert lines[0].startswith(f"Environment local: {project.settings().target.label()}, schema langconnect and "
                               "what the migration files attach to the platform, compared with its ")
    assert lines[-1].startswith(f"no drift: {project.settings().target.label()} matches its ")
    assert "dropped afterwards" in lines[0]
    code, document, err = _drift(project)
    assert code == 0, err
    assert document["findings"] == [] and document["drift"] is False and document["drifted"] == 0
    assert document["pending"] == [] and document["error"] is None and document["deploy_in_progress"] is None
    assert document["shadow"]["dropped"] is True
    assert [(v["track"], v["version"]) for v in document["compared_with"]] == [
        (item["track"], item["version"]) for item in json.loads(project.run("status", "--json").out)["migrations"]]
    assert isinstance(document["not_compared"], list)
    # nothing was written: history, attempt log, catalog and rows as they were; the shadows are gone
    assert _untouched(db) == before
    assert _shadows(db) == []


def test_hand_edits_are_drift_one_line_each_until_reverted(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _migrated(project, server)
    db.execute(f"DROP POLICY {POLICY.split('.', 2)[2]} ON storage.objects")
    db.execute("ALTER TABLE langconnect.profiles ADD COLUMN nickname text")
    db.execute("GRANT DELETE ON langconnect.profiles TO anon")
    result = project.run("drift")
    assert result.code == 7, result.err
    assert sorted(_findings(result.out)) == sorted([
        f"missing policy {POLICY}",
        "extra column langconnect.profiles.nickname",
        "extra grant langconnect.profiles to anon",
    ]), result.out
    assert result.out.splitlines()[-1].startswith("drift: 3 object(s) differ from what the applied migrations "
                                                  "produce on ")
    assert result.err.splitlines()[-1] == (
        "migrate: error: drift on local: 3 object(s) differ from what its applied migrations produce; put each "
        "change in a migration (`inv new`), or undo it")
    code, document, _ = _drift(project)
    assert code == 7
    assert document["drift"] is True and document["drifted"] == 3
    by_name = {f["name"]: f for f in document["findings"]}
    policy = by_name[POLICY]
    assert (policy["state"], policy["kind"], policy["actual"], policy["counted"]) == ("missing", "policy", None, True)
    assert "documents" in policy["expected"] and "auth.uid()" in policy["expected"]
    column = by_name["langconnect.profiles.nickname"]
    assert (column["state"], column["expected"]) == ("extra", None)
    assert "text" in column["actual"]
    # reverted: no drift again
    db.execute(POLICY_SQL)
    db.execute("ALTER TABLE langconnect.profiles DROP COLUMN nickname")
    db.execute("REVOKE DELETE ON langconnect.profiles FROM anon")
    again = project.run("drift")
    assert again.code == 0, (again.out, again.err)
    assert _findings(again.out) == []


def test_pending_files_are_listed_as_pending_never_as_drift(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _migrated(project, server)
    project.write("lanconnect", "007_tags.sql", """
        CREATE TABLE IF NOT EXISTS langconnect.tags (id bigint PRIMARY KEY, name text NOT NULL);
    """)
    result = project.run("drift")
    assert result.code == 0, (result.out, result.err)
    assert _findings(result.out) == []
    assert "pending lanconnect 007 (007_tags.sql): not applied on the target yet, not drift" in result.out.splitlines()
    assert "(1 pending migration(s), not drift" in result.out.splitlines()[-1]
    code, document, _ = _drift(project)
    assert code == 0
    assert [(p["track"], p["version"], p["state"]) for p in document["pending"]] == [("lanconnect", "007", "pending")]
    assert "007" not in [v["version"] for v in document["compared_with"] if v["track"] == "lanconnect"]
    # the same table made by hand before its migration ran is drift: the target has what no applied file made
    db.execute("CREATE TABLE langconnect.tags (id bigint PRIMARY KEY, name text NOT NULL)")
    made = project.run("drift")
    assert made.code == 7
    assert "extra table langconnect.tags" in _findings(made.out)


def test_a_changed_applied_file_is_compared_as_it_is_now_and_says_so(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _migrated(project, server)
    path = project.root / "migrations" / "client_specific" / "001_client_settings.sql"
    path.write_text(path.read_text() + "\nCOMMENT ON SCHEMA langconnect IS 'edited after it was applied';\n")
    result = project.run("drift")
    assert result.code == 7, (result.out, result.err)
    assert _findings(result.out) == ["missing comment schema langconnect"]
    [note] = [line for line in result.out.splitlines() if line.startswith("note changed-file: ")]
    assert note.startswith("note changed-file: client_specific version 001 "
                           "(migrations/client_specific/001_client_settings.sql) was edited after it was applied")
    assert "the shadow ran the file as it is now" in note


def test_a_held_run_lock_is_a_deploy_in_progress(project: Project, db: Database, server: Server,
                                                 platform: list[str]) -> None:
    _migrated(project, server)
    db.execute("ALTER TABLE langconnect.profiles ADD COLUMN nickname text")  # drift that must not be reported
    holder = db.connect()  # held as a migration run holds it: a session advisory lock on the schema's key
    try:
        with holder.cursor() as cursor:
            cursor.execute("SET application_name = 'migrate deploy'")
            cursor.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (lock_key("langconnect"),))
            pid = cursor.fetchone()[1]
        result = project.run("drift")
        assert result.code == 8, result.err
        assert result.out == ""
        [line] = [line for line in result.err.splitlines() if line.startswith("migrate: error: ")]
        assert line.startswith(f"migrate: error: a deploy is in progress on {project.settings().target.label()}: a "
                               f"migration run holds the run lock on schema 'langconnect' (held by pid {pid} from ")
        assert "application 'migrate deploy'" in line
        assert line.endswith("drift was not measured on half a deploy: run it again when the deploy is done")
        code, document, _ = _drift(project)
        assert code == 8
        assert document["error"]["exit_code"] == 8 and document["findings"] == []
        assert f"held by pid {pid}" in document["deploy_in_progress"]
        assert _shadows(db) == []  # stopped before any shadow was built
    finally:
        holder.close()
    assert project.run("drift").code == 7  # the deploy is over: now the drift is measured


def test_no_shadow_server_is_refused_before_the_target_is_read(project: Project, db: Database, server: Server,
                                                               platform: list[str]) -> None:
    _migrated(project, server)
    (project.root / "envs" / "staging.env").write_text(f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\n")
    result = project.run("drift", "--env", "staging", "--json")
    assert result.code == 6, result.err
    message = json.loads(result.out)["error"]["message"]
    assert message.startswith("drift needs a shadow database on a server where cluster-wide effects")
    assert "Set MIGRATE_SHADOW_URL in envs/staging.env" in message
    assert _shadows(db) == []


def test_the_doors_python_m_migrate_and_inv(project: Project, db: Database, server: Server,
                                            platform: list[str]) -> None:
    _migrated(project, server)
    db.execute("COMMENT ON TABLE langconnect.profiles IS 'by hand'")
    result = project.run_process("drift")
    assert result.code == 7, result.err
    assert _findings(result.out) == ["extra comment table langconnect.profiles"]
    assert result.err.startswith("migrate: environment local: ")
    done = project.inv("drift", "--json", "--ignore-owner")
    assert done.code == 7, done.err
    document = json.loads(done.out)
    assert document["owners_compared"] is False
    assert [(f["state"], f["kind"], f["name"]) for f in document["findings"]] == [
        ("extra", "comment", "table langconnect.profiles")]


def test_an_owner_changed_by_hand_is_drift_unless_owners_are_ignored(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _migrated(project, server)
    db.execute("ALTER TABLE langconnect.profiles OWNER TO anon")  # a role with no grant of its own on it
    try:
        result = project.run("drift")
        assert result.code == 7, result.out
        assert "changed owner table langconnect.profiles" in _findings(result.out)
        ignored = project.run("drift", "--ignore-owner")
        assert ignored.code == 0, ignored.out
        assert ignored.out.splitlines()[-1].endswith("owners not compared (--ignore-owner))")
    finally:
        db.execute("ALTER TABLE langconnect.profiles OWNER TO CURRENT_USER")


def test_several_environments_and_status_drift(project: Project, db: Database, server: Server,
                                               platform: list[str]) -> None:
    _migrated(project, server)
    with fresh_database(server) as other:
        connection = other.connect()
        try:
            install_platform(connection)
        finally:
            connection.close()
        _disposable(project, "staging", other.url)
        assert project.run("migrate", "--env", "staging").code == 0
        other.execute("ALTER TABLE langconnect.profiles ADD COLUMN nickname text")
        (project.root / "envs" / "production.env").write_text(
            "DATABASE_URL=postgresql://postgres@127.0.0.1:1/postgres\nMAX_WAIT_TIME=0.3\nMIGRATE_DISPOSABLE=true\n")
        result = project.run("drift", "--env", "local,staging")
        assert result.code == 7, result.err
        sections = result.out.split("== ")
        assert sections[1].startswith("local ==") and sections[2].startswith("staging ==")
        assert "extra column langconnect.profiles.nickname" in _findings(sections[2])
        assert _findings(sections[1]) == []
        assert result.out.splitlines()[-1] == "drift: local: none; staging: 1 object"
        # an environment that cannot be reached: its own exit code, unless another one drifted
        everything = project.run("drift", "--env", "all", "--json")
        assert everything.code == 7
        document = json.loads(everything.out)
        assert [(e["name"], e["status"], e["summary"]) for e in document["environments"]] == [
            ("local", "none", "none"), ("staging", "drift", "1 object"),
            ("production", "not-checked", "not checked: unreachable")]
        assert document["exit_code"] == 7
        other.execute("ALTER TABLE langconnect.profiles DROP COLUMN nickname")
        assert project.run("drift", "--env", "all").code == 3
        assert project.run("drift", "--env", "local,staging").code == 0
        other.execute("ALTER TABLE langconnect.profiles ADD COLUMN nickname text")
        # status --env all --drift: a drift row, status's own exit code
        status = project.run("status", "--env", "all", "--drift")
        assert status.code == 0, status.err
        [row] = [line for line in status.out.splitlines() if line.startswith("drift ")]
        assert row.split() == ["drift", "none", "1", "object", "not", "checked:", "unreachable"]
        assert "  staging: " in status.out and "; drift: 1 object" in status.out
        listed = json.loads(project.run("status", "--env", "all", "--drift", "--json").out)
        assert [e["drift"]["summary"] for e in listed["environments"]] == [
            "none", "1 object", "not checked: unreachable"]
        assert listed["environments"][1]["drift"]["drift"]["findings"][0]["name"] == "langconnect.profiles.nickname"
        assert _shadows(db) == [] and _shadows(other) == []
