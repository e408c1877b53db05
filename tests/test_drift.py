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


def _existing(db: Database, *names: str) -> list[tuple[Any, ...]]:
    """Which of these shadow databases still exist (by name: other tests on the server build shadows too)."""
    assert names and all(name.startswith("migrate_drift_") for name in names)
    return db.query("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(names),))


def _shadow_named(out: str) -> str:
    """The shadow database drift's first line names."""
    return out.split(" built on shadow database ", 1)[1].split(" ", 1)[0]


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
    assert _existing(db, _shadow_named(result.out), document["shadow"]["database"]) == []


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


def test_a_policy_added_by_hand_on_a_platform_table_is_drift(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    """storage.objects is the platform's, but the files attach policies to it: one added there by hand (Supabase
    Studio: anon reads every file) is drift, though the shadow's platform is copied from this very target."""
    _migrated(project, server)
    db.execute('CREATE POLICY "anyone reads everything" ON storage.objects FOR SELECT TO anon USING (true)')
    result = project.run("drift")
    assert result.code == 7, (result.out, result.err)
    assert _findings(result.out) == ['extra policy storage.objects."anyone reads everything"']
    db.execute('DROP POLICY "anyone reads everything" ON storage.objects')
    again = project.run("drift")
    assert again.code == 0, (again.out, again.err)


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
    status = project.run("status", "--drift")  # one environment: status's table, then a drift line
    assert status.code == 0, status.err
    assert status.out.splitlines()[-1] == "Drift: none"
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
        assert "created shadow database" not in result.err  # stopped before any shadow was built
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
    assert "created shadow database" not in result.err


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
        names = [e["drift"]["drift"]["shadow"]["database"] for e in listed["environments"] if "drift" in e["drift"]]
        assert len(names) == 2 and _existing(db, *names) == []


def test_a_version_whose_file_is_gone_is_noted_and_what_it_made_shows_as_extra(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_things.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n"
                  "CREATE TABLE IF NOT EXISTS langconnect.things (id bigint PRIMARY KEY);\n")
    gone = project.write("lanconnect", "002_more.sql", "CREATE TABLE IF NOT EXISTS langconnect.more (id bigint);\n")
    _disposable(project)
    assert project.run("migrate").code == 0
    gone.unlink()
    result = project.run("drift")
    assert result.code == 7, result.err
    assert _findings(result.out) == ["extra table langconnect.more"]
    [note] = [line for line in result.out.splitlines() if line.startswith("note missing-file: ")]
    assert note == ("note missing-file: lanconnect version 002 is recorded (applied) but no file has that version: "
                    "what it created cannot be expected, so it shows as extra; restore the file to compare it")


def test_a_migration_that_fails_on_the_shadow_stops_drift_naming_it(project: Project, db: Database, server: Server,
                                                                     platform: list[str]) -> None:
    # it needs rows the target had when it ran; the shadow holds the platform's structure only
    db.execute("INSERT INTO auth.users (id, email) VALUES (gen_random_uuid(), 'first@example.com')")
    project.write("lanconnect", "001_owner.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM auth.users) THEN
            RAISE EXCEPTION 'sign up the first user before this runs';
          END IF;
        END $$;
    """)
    _disposable(project)
    assert project.run("migrate").code == 0
    result = project.run("drift", "--json")
    assert result.code == 4, result.err
    message = json.loads(result.out)["error"]["message"]
    assert message.startswith("migrations/lanconnect/001_owner.sql:4:5: ERROR P0001: sign up the first user before "
                              "this runs")
    assert message.endswith("the shadow holds the platform's structure and no rows: a file that needs rows the target "
                            "had, or anything else the shadow lacks, fails there (MIGRATE_SHADOW_SETUP can describe "
                            "the platform)")
    assert "lanconnect version 001 fails on the shadow database, so the expected state could not be built" in message
    name = result.err.split("drift: created shadow database ", 1)[1].split(" ", 1)[0]
    assert _existing(db, name) == []  # dropped, also after the failure


def test_a_shadow_server_of_another_major_version_is_refused(project: Project, db: Database, server: Server) -> None:
    from conftest import _embedded_server

    embedded = _embedded_server()  # PostgreSQL 18
    if server.kind == "embedded":
        pytest.skip("the target is on the embedded server too: same major version")
    project.write("lanconnect", "001_things.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n"
                  "CREATE TABLE IF NOT EXISTS langconnect.things (id bigint PRIMARY KEY);\n")
    _disposable(project)
    assert project.run("migrate").code == 0
    (project.root / "envs" / "local.env").write_text(
        f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_SHADOW_URL={embedded.url('postgres')}\n"
        "MIGRATE_SHADOW_DISPOSABLE=true\n")
    major = db.query("SELECT current_setting('server_version_num')::int / 10000")[0][0]
    result = project.run("drift")
    assert result.code == 2, result.err
    assert result.err.splitlines()[-1].startswith(
        "migrate: error: the shadow's server (postgresql://postgres@/postgres?host=")
    assert f"runs PostgreSQL 18 and the target PostgreSQL {major}: PostgreSQL prints some definitions differently " \
           "across major versions" in result.err
    assert result.err.splitlines()[-1].endswith("nothing was compared")
    assert "created shadow database" not in result.err


def test_a_deploy_that_starts_or_runs_while_drift_reads_the_target_is_caught(
        project: Project, db: Database, server: Server, platform: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from migrate.checks import schema_model

    _migrated(project, server)
    real = schema_model.read_model
    holder = db.connect()
    target_db = db.name

    def lock_taken_meanwhile(connection: Any, *args: Any, **kwargs: Any) -> Any:
        model = real(connection, *args, **kwargs)
        if connection.info.dbname == target_db:  # the target's read, not the shadow's: a run takes the lock now
            with holder.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key("langconnect"),))
        return model

    monkeypatch.setattr(schema_model, "read_model", lock_taken_meanwhile)
    try:
        result = project.run("drift")
        assert result.code == 8, result.err
        assert "(it started while drift read the database); drift was not measured on half a deploy" in result.err
    finally:
        holder.close()
    # a whole deploy (a real migrate run) between the history read and the catalog read
    project.write("lanconnect", "007_tags.sql", "CREATE TABLE IF NOT EXISTS langconnect.tags (id bigint);\n")

    def deployed_meanwhile(connection: Any, *args: Any, **kwargs: Any) -> Any:
        if connection.info.dbname == target_db:
            ran = project.run_process("migrate")
            assert ran.code == 0, ran.err
        return real(connection, *args, **kwargs)

    monkeypatch.setattr(schema_model, "read_model", deployed_meanwhile)
    result = project.run("drift")
    assert result.code == 8, result.err
    assert result.err.splitlines()[-1].startswith(
        f"migrate: error: a deploy is in progress on {project.settings().target.label()}: versions were applied while "
        "drift read the database (lanconnect 007)")
    monkeypatch.setattr(schema_model, "read_model", real)
    assert project.run("drift").code == 0  # 007 is applied now, and its table is expected


def test_what_the_files_create_outside_the_model_is_listed_as_not_compared(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_outside.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE SCHEMA IF NOT EXISTS billing;
        CREATE TABLE IF NOT EXISTS billing.invoices (id bigint PRIMARY KEY);
        CREATE OR REPLACE FUNCTION public.app_helper() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
        CREATE TABLE IF NOT EXISTS langconnect.things (id bigint PRIMARY KEY);
    """)
    _disposable(project)
    assert project.run("migrate").code == 0
    db.execute("ALTER TABLE billing.invoices ADD COLUMN by_hand text")  # outside the model: not seen, but said so
    result = project.run("drift")
    assert result.code == 0, (result.out, result.err)
    [line] = [line for line in result.out.splitlines() if line.startswith("not compared: ")]
    assert "schema billing (the migration files create it; only schema langconnect and what they attach to platform " \
           "tables are compared)" in line
    assert "public.app_helper (the migration files create it outside schema langconnect)" in line
    document = json.loads(project.run("drift", "--json").out)
    assert "public.app_helper (the migration files create it outside schema langconnect)" in document["not_compared"]
    assert "2 object(s) not compared: see above" in result.out.splitlines()[-1]


def test_on_a_shared_shadow_server_a_cluster_level_version_is_not_run_and_not_counted(
        project: Project, db: Database, server: Server) -> None:
    role = "drift_test_reader"
    project.write("lanconnect", "001_things.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n"
                  "CREATE TABLE IF NOT EXISTS langconnect.things (id bigint PRIMARY KEY);\n")
    project.write("lanconnect", "002_reader.sql", f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} NOLOGIN; END IF;
        END $$;
        CREATE TABLE IF NOT EXISTS langconnect.reports (id bigint);
    """)
    _disposable(project)
    try:
        assert project.run("migrate").code == 0
        (project.root / "envs" / "staging.env").write_text(
            f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_SHADOW_URL={server.url('postgres')}\n")
        result = project.run("drift", "--env", "staging")
        assert result.code == 0, (result.out, result.err)
        assert _findings(result.out) == [
            "extra table langconnect.reports (not counted: lanconnect version 002 was not run on the shadow "
            "(cluster-level note))"]
        [note] = [line for line in result.out.splitlines() if line.startswith("note cluster-level: ")]
        assert note.startswith(f"note cluster-level: lanconnect version 002 was not run on the shadow: its "
                               f"cluster-wide statement(s) CREATE ROLE {role} in a DO block (line 1) cannot run on "
                               "the shared shadow server ")
        assert "(1 finding(s) not counted: the shadow explains them)" in result.out.splitlines()[-1]
        document = json.loads(project.run("drift", "--env", "staging", "--json").out)
        assert document["shadow"]["disposable"] is False and document["drift"] is False
        [finding] = document["findings"]
        assert (finding["counted"], finding["cause"]) == (
            False, "lanconnect version 002 was not run on the shadow (cluster-level note)")
    finally:
        db.execute(f"DROP ROLE IF EXISTS {role}")


def test_the_readme_ci_recipe_is_a_valid_github_workflow_running_inv_drift(tmp_path: Any) -> None:
    import re
    import subprocess
    import sys

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    found = re.search(r"```yaml\n(# \.github/workflows/drift\.yml\n.*?)```", readme, re.S)
    assert found is not None, "README's drift CI recipe is gone"
    workflow = tmp_path / "drift.yml"
    workflow.write_text(found.group(1))
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                              str(workflow)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "run: inv drift --env production --json > drift.json" in found.group(1)
    assert "schedule:" in found.group(1)


def test_a_real_migrate_run_in_progress_is_a_deploy_in_progress(project: Project, db: Database, server: Server,
                                                                 platform: list[str]) -> None:
    import subprocess
    import sys
    import time

    _migrated(project, server)
    project.write("lanconnect", "007_slow.sql", """
        SELECT pg_sleep(4);
        CREATE TABLE IF NOT EXISTS langconnect.slow (id bigint);
    """)
    run = subprocess.Popen([sys.executable, "-m", "migrate", "migrate"], cwd=project.root, env=project.environ(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        key = lock_key("langconnect") & 0xFFFFFFFFFFFFFFFF
        deadline = time.monotonic() + 20
        held = ("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::bigint::oid "
                "AND objid = %s::bigint::oid AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())")
        while not db.query(held, (key >> 32, key & 0xFFFFFFFF)):
            assert time.monotonic() < deadline and run.poll() is None, "migrate never took the run lock"
            time.sleep(0.05)
        result = project.run("drift")
        assert result.code == 8, (result.out, result.err)
        assert "migrate: error: a deploy is in progress on " in result.err
    finally:
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert project.run("drift").code == 0  # the deploy is done: 007 applied, and expected
