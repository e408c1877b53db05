"""inv lint: every rule caught in a bad file and quiet in its fixed form; markers; the doors.

Lint reads files only, so these tests need no database; the `migrate` integration
(warnings by default, fatal with MIGRATE_LINT=strict) runs against the real servers.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, Database, Project

from migrate.checks.lint import RULES, Finding, find_files_to_lint, lint_file, lint_files, read_any_file
from migrate.settings import LintOptions, Settings

SEARCH_PATH = "SET search_path = langconnect, public;\n"

GUARDED_TYPE = """\
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN
        CREATE TYPE mood AS ENUM ('happy', 'sad');
    END IF;
END
$$;
"""
GUARDED_CONSTRAINT = """\
DO $$
BEGIN
    ALTER TABLE t ADD CONSTRAINT t_id_positive CHECK (id > 0);
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;
"""
TRIGGER = "CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();\n"
POLICY = "CREATE POLICY t_read ON t FOR SELECT USING (true);\n"

# rule id -> (a file that breaks it, the same file fixed); SET search_path is prepended to both
# unless the rule is about it.
RULE_CASES: dict[str, tuple[str, str]] = {
    "idempotent-create-table": ("CREATE TABLE t (id int);", "CREATE TABLE IF NOT EXISTS t (id int);"),
    "idempotent-create-index": ("CREATE INDEX t_id_idx ON t (id);",
                                "CREATE INDEX IF NOT EXISTS t_id_idx ON t (id);"),
    "idempotent-create-schema": ("CREATE SCHEMA app;", "CREATE SCHEMA IF NOT EXISTS app;"),
    "idempotent-create-extension": ("CREATE EXTENSION vector;", "CREATE EXTENSION IF NOT EXISTS vector;"),
    "idempotent-create-sequence": ("CREATE SEQUENCE s;", "CREATE SEQUENCE IF NOT EXISTS s;"),
    "idempotent-add-column": ("ALTER TABLE t ADD COLUMN note text;",
                              "ALTER TABLE t ADD COLUMN IF NOT EXISTS note text;"),
    "idempotent-create-function": ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
                                   "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"),
    "idempotent-create-view": ("CREATE VIEW v AS SELECT 1 AS one;", "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;"),
    "idempotent-create-trigger": (TRIGGER, "DROP TRIGGER IF EXISTS t_touch ON t;\n" + TRIGGER),
    "idempotent-create-policy": (POLICY, "DROP POLICY IF EXISTS t_read ON t;\n" + POLICY),
    "idempotent-create-type": ("CREATE TYPE mood AS ENUM ('happy', 'sad');", GUARDED_TYPE),
    "idempotent-add-constraint": ("ALTER TABLE t ADD CONSTRAINT t_id_positive CHECK (id > 0);", GUARDED_CONSTRAINT),
    "idempotent-drop": ("DROP VIEW v;", "DROP VIEW IF EXISTS v;"),
    "schema-protected": ("CREATE TABLE IF NOT EXISTS auth.profiles (id int);",
                         "-- migrate:allow-schema auth\nCREATE TABLE IF NOT EXISTS auth.profiles (id int);"),
    "safety-create-index-concurrently": ("CREATE INDEX IF NOT EXISTS t_id_idx ON t (id);",
                                         "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);"),
    "safety-add-column-not-null": ("ALTER TABLE t ADD COLUMN IF NOT EXISTS n int NOT NULL;",
                                   "ALTER TABLE t ADD COLUMN IF NOT EXISTS n int NOT NULL DEFAULT 0;"),
    "safety-alter-column-type": ("ALTER TABLE t ALTER COLUMN n TYPE bigint;",
                                 "ALTER TABLE t ALTER COLUMN n SET DEFAULT 0;"),
    "safety-drop-column": ("ALTER TABLE t DROP COLUMN IF EXISTS n;", "ALTER TABLE t ADD COLUMN IF NOT EXISTS n int;"),
    "safety-drop-table": ("DROP TABLE IF EXISTS t;", "DROP VIEW IF EXISTS t;"),
    "safety-search-path": ("CREATE TABLE IF NOT EXISTS t (id int);",
                           SEARCH_PATH + "CREATE TABLE IF NOT EXISTS t (id int);"),
    "lint-unknown-rule": ("-- migrate:lint-ignore idempotent-create-tabel\nCREATE TABLE t (id int);",
                          "-- migrate:lint-ignore idempotent-create-table\nCREATE TABLE t (id int);"),
    "lint-skipped": ("\\set ON_ERROR_STOP 1\nSELECT 1;", "SELECT 1;"),
    "syntax-error": ("CREATE TABLE t (id int;", "CREATE TABLE IF NOT EXISTS t (id int);"),
    "plpgsql-syntax-error": ("DO $$\nBEGIN\n  IF true THEN\n    NULL;\n  END;\nEND\n$$;",
                             "DO $$\nBEGIN\n  IF true THEN\n    NULL;\n  END IF;\nEND\n$$;"),
    "psql-meta-command-refused": ("\\set label 'x'\n\\connect other\nSELECT 1;", "\\set label 'x'\nSELECT 1;"),
}


def settings_for(root: Path, protected_schemas: tuple[str, ...] | None = None, **changes: object) -> Settings:
    values: dict[str, object] = {"env_name": "test", "root": root, "env_file": root / "envs" / "test.env",
                                 "migrations_dir": root / "migrations"}
    if protected_schemas is not None:
        values["lint"] = LintOptions(protected_schemas=protected_schemas)
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def lint_text(root: Path, text: str, name: str = "004_change.sql", **changes: object) -> list[Finding]:
    path = root / "migrations" / "lanconnect" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return lint_file(settings_for(root, **changes), read_any_file(path, root))


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def with_search_path(rule: str, text: str) -> str:
    return text if rule == "safety-search-path" else SEARCH_PATH + text


def test_every_rule_has_a_case() -> None:
    assert set(RULE_CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_rule_catches_the_bad_file(tmp_path: Path, rule: str) -> None:
    findings = lint_text(tmp_path, with_search_path(rule, RULE_CASES[rule][0]))
    assert rule in rules(findings), [f.format() for f in findings]
    found = next(f for f in findings if f.rule == rule)
    assert found.severity == RULES[rule].severity
    assert found.format().startswith(f"migrations/lanconnect/004_change.sql:{found.line}:{found.column} {rule} ")


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_rule_is_quiet_on_the_fixed_file(tmp_path: Path, rule: str) -> None:
    findings = lint_text(tmp_path, with_search_path(rule, RULE_CASES[rule][1]))
    assert rule not in rules(findings), [f.format() for f in findings]


def test_finding_line_names_file_line_column_rule_and_fix(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + "\nCREATE TABLE langconnect.items (id int);\n")
    assert [f.format() for f in findings] == [
        "migrations/lanconnect/004_change.sql:3:14 idempotent-create-table error: "
        "CREATE TABLE langconnect.items has no IF NOT EXISTS (write CREATE TABLE IF NOT EXISTS)"
    ]


def test_shipped_example_migrations_lint_clean() -> None:
    settings = settings_for(REPO)
    result = lint_files(settings, find_files_to_lint(settings))
    assert len(result.files) >= 4
    assert [f.format() for f in result.findings] == []


def test_lint_ignore_on_the_line_before_silences_only_that_statement(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        -- the audit table is recreated on purpose
        -- migrate:lint-ignore idempotent-create-table, safety-drop-table
        CREATE TABLE audit (id int);
        CREATE TABLE other (id int);
        DROP TABLE IF EXISTS gone;
        """))
    assert [(f.rule, f.line) for f in findings] == [("idempotent-create-table", 5), ("safety-drop-table", 6)]


def test_lint_ignore_at_the_top_silences_the_whole_file(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, "-- 004: recreate\n-- migrate:lint-ignore idempotent-create-table\n"
                         + SEARCH_PATH + "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n")
    assert findings == []


def test_unqualified_names_follow_the_files_search_path(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, "SET search_path = storage, public;\nCREATE TABLE IF NOT EXISTS buckets2 (id int);")
    assert [(f.rule, f.line) for f in findings] == [("schema-protected", 2)]
    assert "changes the protected schema storage" in findings[0].message
    assert "-- migrate:allow-schema storage" in findings[0].fix


def test_protected_schema_rule_covers_alter_drop_trigger_policy_and_grant(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        ALTER TABLE auth.users ADD COLUMN IF NOT EXISTS nickname text;
        DROP FUNCTION IF EXISTS storage.search(text);
        DROP TRIGGER IF EXISTS on_signup ON auth.users;
        CREATE TRIGGER on_signup AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION langconnect.f();
        DROP POLICY IF EXISTS read_own ON storage.objects;
        CREATE POLICY read_own ON storage.objects FOR SELECT USING (true);
        GRANT SELECT ON auth.users TO authenticated;
        CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;
        """))
    assert [(f.rule, f.line) for f in findings] == [("schema-protected", line) for line in range(2, 10)]


def test_reading_a_protected_schema_is_allowed(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        CREATE TABLE IF NOT EXISTS profiles (user_id uuid REFERENCES auth.users (id));
        CREATE OR REPLACE VIEW people AS SELECT id FROM auth.users;
        INSERT INTO profiles (user_id) SELECT id FROM auth.users ON CONFLICT DO NOTHING;
        """))
    assert findings == []


def test_allow_schema_marker_allows_only_the_named_schemas(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, "-- migrate:allow-schema storage\n" + SEARCH_PATH + textwrap.dedent("""\
        DROP POLICY IF EXISTS read_own ON storage.objects;
        CREATE POLICY read_own ON storage.objects FOR SELECT USING (true);
        CREATE TABLE IF NOT EXISTS auth.extra (id int);
        """))
    assert [(f.rule, f.line) for f in findings] == [("schema-protected", 5)]


def test_protected_schemas_are_configurable_per_environment(tmp_path: Path) -> None:
    from migrate.settings import load_settings

    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "test.env").write_text("MIGRATE_PROTECTED_SCHEMAS=billing, audit\n")
    settings = load_settings("test", tmp_path, environ={})
    assert settings.lint.protected_schemas == ("billing", "audit")
    text = SEARCH_PATH + "CREATE TABLE IF NOT EXISTS billing.x (id int);\nCREATE TABLE IF NOT EXISTS auth.x (id int);\n"
    findings = lint_text(tmp_path, text, protected_schemas=settings.lint.protected_schemas)
    assert [(f.rule, f.line) for f in findings] == [("schema-protected", 2)]


def test_do_block_statements_are_checked_unless_guarded(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        DO $$
        BEGIN
            PERFORM 1 FROM pg_type WHERE typname = 'level';
            IF NOT FOUND THEN
                CREATE TYPE level AS ENUM ('low', 'high');
            END IF;
            CREATE TYPE colour AS ENUM ('red');
            CREATE TABLE IF NOT EXISTS auth.sneaky (id int);
        END
        $$;
        """))
    assert [(f.rule, f.line, f.column) for f in findings] == [
        ("idempotent-create-type", 8, 5), ("schema-protected", 9, 5)]


def test_an_earlier_drop_if_exists_guards_a_create_of_the_same_object_only(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        DROP FUNCTION IF EXISTS langconnect.score(int);
        CREATE FUNCTION langconnect.score(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
        CREATE FUNCTION langconnect.rank(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
        ALTER TABLE t DROP CONSTRAINT IF EXISTS t_positive;
        ALTER TABLE t ADD CONSTRAINT t_positive CHECK (id > 0);
        ALTER TABLE u ADD CONSTRAINT t_positive CHECK (id > 0);
        """))
    assert [(f.rule, f.line) for f in findings] == [("idempotent-create-function", 4),
                                                    ("idempotent-add-constraint", 7)]


def test_index_on_a_table_created_in_the_same_file_needs_no_concurrently(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + "CREATE TABLE IF NOT EXISTS t (id int);\n"
                         "CREATE INDEX IF NOT EXISTS t_id_idx ON t (id);\n"
                         "ALTER TABLE t ADD COLUMN IF NOT EXISTS n int NOT NULL;\n")
    assert findings == []


def test_unnamed_index_is_an_error_with_its_own_message(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + "CREATE TABLE IF NOT EXISTS t (id int);\nCREATE INDEX ON t (id);\n")
    assert [f.message for f in findings] == ["CREATE INDEX on t has no name, so every run adds another index"]


# --- the doors: python -m migrate lint, inv lint --------------------------------------------

def test_cli_lint_reports_and_exits_4_on_errors(files_project: Project) -> None:
    files_project.write("lanconnect", "001_ok.sql", SEARCH_PATH + "CREATE TABLE IF NOT EXISTS a (id int);\n")
    files_project.write("client_specific", "001_bad.sql", SEARCH_PATH + "DROP TABLE b;\n")
    result = files_project.run("lint")
    assert result.code == 4
    assert result.out.splitlines() == [
        "migrations/client_specific/001_bad.sql:2:1 idempotent-drop error: DROP TABLE b has no IF EXISTS "
        "(write DROP TABLE IF EXISTS)",
        "migrations/client_specific/001_bad.sql:2:1 safety-drop-table warning: DROP TABLE b loses its data "
        "(make sure the data is no longer needed; keep a backup)",
        "Lint: 1 error(s), 1 warning(s) in 2 file(s).",
    ]
    assert "migrate: error: lint found 1 error(s) in 2 file(s)" in result.err


def test_cli_lint_json_and_named_files(files_project: Project) -> None:
    files_project.write("lanconnect", "001_ok.sql", SEARCH_PATH + "CREATE TABLE IF NOT EXISTS a (id int);\n")
    bad = files_project.write("lanconnect", "002_bad.sql", "CREATE TABLE b (id int);\n")
    result = files_project.run("lint", "--json", str(bad.relative_to(files_project.root)))
    assert result.code == 4
    document = json.loads(result.out)
    assert document["files"] == ["migrations/lanconnect/002_bad.sql"]
    assert document["errors"] == 1 and document["warnings"] == 1
    assert document["findings"][1] == {
        "file": "migrations/lanconnect/002_bad.sql", "line": 1, "column": 14, "rule": "idempotent-create-table",
        "severity": "error", "message": "CREATE TABLE b has no IF NOT EXISTS",
        "fix": "write CREATE TABLE IF NOT EXISTS",
    }


def test_warnings_alone_exit_0(files_project: Project) -> None:
    files_project.write("lanconnect", "001_drop.sql", SEARCH_PATH + "DROP TABLE IF EXISTS old;\n")
    result = files_project.run("lint")
    assert result.code == 0, result.err
    assert "safety-drop-table warning" in result.out
    assert "Lint: 0 error(s), 1 warning(s) in 1 file(s)." in result.out


def test_lint_of_a_missing_file_is_a_usage_error(files_project: Project) -> None:
    result = files_project.run("lint", "nope.sql")
    assert result.code == 2
    assert "migrate: error: nope.sql: no such file or folder" in result.err


def test_inv_lint_default_and_files_after_double_dash(files_project: Project) -> None:
    files_project.write("lanconnect", "001_ok.sql", SEARCH_PATH + "CREATE TABLE IF NOT EXISTS a (id int);\n")
    clean = files_project.inv("lint")
    assert clean.code == 0, clean.err
    assert clean.out.strip() == "Lint: 1 file(s) clean."
    draft = files_project.root / "draft.sql"
    draft.write_text(SEARCH_PATH + "CREATE SCHEMA auth;\n")
    result = files_project.inv("lint", "--", "draft.sql")
    assert result.code == 4
    assert "draft.sql:2:1 idempotent-create-schema error" in result.out
    assert "draft.sql:2:1 schema-protected error: CREATE SCHEMA auth changes the protected schema auth" in result.out
    by_option = files_project.inv("lint", "--file", "draft.sql", "--json")
    assert by_option.code == 4
    assert json.loads(by_option.out)["errors"] == 2


# --- inv migrate: lint errors of pending files warn, or stop everything when strict ----------

BAD_FILE = "CREATE TABLE lint_bad (id int);\n"


def test_migrate_warns_about_lint_errors_of_pending_files_and_applies(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert ("migrate: warning: lint: migrations/lanconnect/001_bad.sql:1:14 idempotent-create-table error: "
            "CREATE TABLE lint_bad has no IF NOT EXISTS") in result.err
    assert "safety-search-path" not in result.err  # only errors are repeated by migrate
    assert db.history("lanconnect") == [("001", "applied")]
    assert "lint_bad" in db.tables("public")



def test_migrate_lints_files_it_hands_to_psql_and_skips_only_real_psql_files(project: Project, db: Database) -> None:
    """migrate lints its own parse of each file: MIGRATE_EXECUTOR=psql files are still linted,
    a file with psql meta-commands is reported as not linted, as `inv lint` does."""
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    project.write("lanconnect", "002_meta.sql", "\\set n 1\nCREATE TABLE meta_t (id int);\n")
    result = project.run("migrate", env={"MIGRATE_EXECUTOR": "psql"})
    assert result.code == 0, result.err
    assert ("migrate: warning: lint: migrations/lanconnect/001_bad.sql:1:14 idempotent-create-table error: "
            "CREATE TABLE lint_bad has no IF NOT EXISTS") in result.err
    assert [line for line in result.err.splitlines() if "lint" in line and "002_meta.sql" in line] == []
    listed = project.run("lint", "migrations/lanconnect/002_meta.sql")
    assert "lint-skipped" in listed.out, listed.out + listed.err
    assert db.history("lanconnect") == [("001", "applied"), ("002", "applied")]

def test_migrate_strict_refuses_before_anything_is_applied(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", SEARCH_PATH + "CREATE TABLE IF NOT EXISTS ok (id int);\n")
    project.write("client_specific", "001_bad.sql", BAD_FILE)
    result = project.inv("migrate", env={"MIGRATE_LINT": "strict"})
    assert result.code == 4
    assert "migrations/client_specific/001_bad.sql:1:14 idempotent-create-table" in result.err
    assert ("MIGRATE_LINT=strict: 1 lint error(s) in pending migration files, nothing was applied"
            in result.err)
    # bad input leaves the database exactly as it was: not even the history tables are created
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]
    assert db.tables("public") == []


def test_migrate_strict_lints_only_pending_files(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    assert project.run("migrate").code == 0
    project.env_file("local", (project.root / "envs" / "local.env").read_text() + "MIGRATE_LINT=strict\n")
    project.write("lanconnect", "002_ok.sql", SEARCH_PATH + "CREATE TABLE IF NOT EXISTS ok (id int);\n")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "lint" not in result.err
    assert db.history("lanconnect") == [("001", "applied"), ("002", "applied")]


def test_shipped_examples_apply_under_strict_lint(project: Project, db: Database) -> None:
    for track in ("lanconnect", "client_specific"):
        for path in sorted((REPO / "migrations" / track).glob("*.sql")):
            project.write(track, path.name, path.read_text())
    result = project.run("migrate", env={"MIGRATE_LINT": "strict"})
    assert result.code == 0, result.err
    assert {"collections", "documents", "user_preferences"} <= set(db.tables("langconnect"))


def test_bad_lint_mode_is_a_configuration_error(project: Project, db: Database) -> None:
    result = project.run("migrate", env={"MIGRATE_LINT": "loud"})
    assert result.code == 2
    assert "migrate: error: the process environment: MIGRATE_LINT='loud' is not one of warn, strict, off" in result.err
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]


def test_migrate_lint_off_skips_the_check(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    result = project.run("migrate", env={"MIGRATE_LINT": "off"})
    assert result.code == 0, result.err
    assert "lint" not in result.err
    assert db.history("lanconnect") == [("001", "applied")]


@pytest.mark.parametrize("statement", [
    "ALTER TABLE auth.users RENAME COLUMN email TO mail;",
    "ALTER SCHEMA auth RENAME TO auth_old;",
    "ALTER TRIGGER on_signup ON auth.users RENAME TO on_signup2;",
    "ALTER TABLE langconnect.x SET SCHEMA auth;",
    "ALTER FUNCTION auth.uid() SET SCHEMA langconnect;",
    "ALTER SCHEMA storage OWNER TO someone;",
    "ALTER FUNCTION auth.uid() OWNER TO someone;",
    "COMMENT ON COLUMN auth.users.email IS 'mail';",
    "COMMENT ON SCHEMA auth IS 'platform';",
    "GRANT ALL ON ALL TABLES IN SCHEMA storage TO someone;",
    "REVOKE EXECUTE ON FUNCTION auth.uid() FROM someone;",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA auth GRANT SELECT ON TABLES TO someone;",
    "ALTER SEQUENCE auth.refresh_tokens_id_seq RESTART;",
    "ALTER TYPE auth.factor_type ADD VALUE IF NOT EXISTS 'phone';",
    "CREATE RULE no_insert AS ON INSERT TO auth.users DO INSTEAD NOTHING;",
    "DROP SCHEMA IF EXISTS vault CASCADE;",
    "DROP INDEX CONCURRENTLY IF EXISTS realtime.some_idx;",
])
def test_schema_protected_covers_every_kind_of_change(tmp_path: Path, statement: str) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + statement + "\n")
    assert "schema-protected" in rules(findings), [f.format() for f in findings]


def test_readme_lint_ignore_example_is_clean_only_with_its_markers(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        -- 009: rebuild the cache table from scratch; it holds nothing worth keeping.
        -- migrate:lint-ignore safety-drop-table
        SET search_path = langconnect, public;

        DROP TABLE IF EXISTS langconnect.cache;
        CREATE TABLE IF NOT EXISTS langconnect.cache (key text PRIMARY KEY, value jsonb);

        -- tags has a few hundred rows: the rewrite is instant
        -- migrate:lint-ignore safety-alter-column-type
        ALTER TABLE langconnect.tags ALTER COLUMN label TYPE varchar(200);
        """)
    assert lint_text(tmp_path, text) == []
    unmarked = "\n".join(line for line in text.splitlines() if "lint-ignore" not in line)
    assert rules(lint_text(tmp_path, unmarked)) == ["safety-drop-table", "safety-alter-column-type"]


def test_a_syntax_error_is_a_finding_and_the_other_files_are_still_linted(files_project: Project) -> None:
    files_project.write("lanconnect", "001_broken.sql", SEARCH_PATH + "CREATE TABLE t (id int;\n")
    files_project.write("lanconnect", "002_bad.sql", SEARCH_PATH + "CREATE TABLE u (id int);\n")
    result = files_project.run("lint")
    assert result.code == 4
    assert result.out.splitlines()[:2] == [
        'migrations/lanconnect/001_broken.sql:2:23 syntax-error error: syntax error at or near ";" (fix the SQL)',
        "migrations/lanconnect/002_bad.sql:2:14 idempotent-create-table error: CREATE TABLE u has no IF NOT EXISTS "
        "(write CREATE TABLE IF NOT EXISTS)",
    ]


def test_dry_run_shows_what_strict_migrate_would_refuse(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    warned = project.run("dry-run")
    assert warned.code == 0, warned.err
    assert "migrate: warning: lint: migrations/lanconnect/001_bad.sql:1:14 idempotent-create-table" in warned.err
    strict = project.run("dry-run", env={"MIGRATE_LINT": "strict"})
    assert strict.code == 4
    assert "MIGRATE_LINT=strict: 1 lint error(s) in pending migration files" in strict.err
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]
