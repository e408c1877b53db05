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

from migrate.checks.lint import lint_paths
from migrate.checks.lint_rules import RULES, Finding
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
    "schema-protected-function": (
        "CREATE OR REPLACE FUNCTION storage.owns(name text) RETURNS bool LANGUAGE sql AS 'SELECT true';",
        "CREATE OR REPLACE FUNCTION langconnect.owns(name text) RETURNS bool LANGUAGE sql AS 'SELECT true';"),
    "schema-protected-rows": ("INSERT INTO auth.users (id) VALUES ('00000000-0000-0000-0000-000000000000');",
                              "INSERT INTO storage.buckets (id, name) VALUES ('avatars', 'avatars') "
                              "ON CONFLICT (id) DO NOTHING;"),
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
# rules about the file itself: (file name, content) of the bad and the fixed file
RULE_FILE_CASES: dict[str, tuple[tuple[str, str | bytes], tuple[str, str | bytes]]] = {
    "file-name": (("change.sql", "SELECT 1;"), ("004_change.sql", "SELECT 1;")),
    "file-unreadable": (("004_change.sql", b"SELECT 1;\n-- caf\xe9\n"), ("004_change.sql", "SELECT 1;\n-- caf\xe9\n")),
}


def settings_for(root: Path, protected_schemas: tuple[str, ...] | None = None,
                 allow: tuple[str, ...] | None = None, **changes: object) -> Settings:
    values: dict[str, object] = {"env_name": "test", "root": root, "env_file": root / "envs" / "test.env",
                                 "migrations_dir": root / "migrations"}
    options = LintOptions()
    if protected_schemas is not None:
        options = options._replace(protected_schemas=protected_schemas)
    if allow is not None:
        options = options._replace(allow=allow)
    values["lint"] = options
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def lint_text(root: Path, text: str | bytes, name: str = "004_change.sql", **changes: object) -> list[Finding]:
    """Lint `text` as migrations/lanconnect/`name`, read and checked the way `inv lint FILE` does."""
    path = root / "migrations" / "lanconnect" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    return lint_paths(settings_for(root, **changes), [str(path)]).findings


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def with_search_path(rule: str, text: str) -> str:
    return text if rule == "safety-search-path" else SEARCH_PATH + text


def test_every_rule_has_a_case() -> None:
    assert set(RULE_CASES) | set(RULE_FILE_CASES) == set(RULES)


def lint_case(root: Path, rule: str, fixed: bool) -> tuple[str, list[Finding]]:
    """The file name and the findings of a rule's bad (or fixed) case."""
    if rule in RULE_FILE_CASES:
        name, content = RULE_FILE_CASES[rule][fixed]
        return name, lint_text(root, content, name=name)
    return "004_change.sql", lint_text(root, with_search_path(rule, RULE_CASES[rule][fixed]))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_catches_the_bad_file(tmp_path: Path, rule: str) -> None:
    name, findings = lint_case(tmp_path, rule, fixed=False)
    assert rule in rules(findings), [f.format() for f in findings]
    found = next(f for f in findings if f.rule == rule)
    assert found.severity == RULES[rule].severity
    assert found.format().startswith(f"migrations/lanconnect/{name}:{found.line}:{found.column} {rule} ")


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_is_quiet_on_the_fixed_file(tmp_path: Path, rule: str) -> None:
    _, findings = lint_case(tmp_path, rule, fixed=True)
    assert rule not in rules(findings), [f.format() for f in findings]


def test_finding_line_names_file_line_column_rule_and_fix(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + "\nCREATE TABLE langconnect.items (id int);\n")
    assert [f.format() for f in findings] == [
        "migrations/lanconnect/004_change.sql:3:14 idempotent-create-table error: "
        "CREATE TABLE langconnect.items has no IF NOT EXISTS (write CREATE TABLE IF NOT EXISTS)"
    ]


def test_shipped_example_migrations_lint_clean() -> None:
    settings = settings_for(REPO)
    result = lint_paths(settings, [])
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


PLATFORM_CHANGES = SEARCH_PATH + textwrap.dedent("""\
    ALTER TABLE auth.users ADD COLUMN IF NOT EXISTS nickname text;
    DROP FUNCTION IF EXISTS storage.search(text);
    DROP TRIGGER IF EXISTS on_signup ON auth.users;
    CREATE TRIGGER on_signup AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION langconnect.f();
    DROP POLICY IF EXISTS read_own ON storage.objects;
    CREATE POLICY read_own ON storage.objects FOR SELECT USING (true);
    GRANT SELECT ON auth.users TO authenticated;
    CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;
    """)


def test_protected_schema_rule_covers_alter_drop_trigger_policy_and_grant(tmp_path: Path) -> None:
    """With the allowlist emptied (MIGRATE_LINT_ALLOW=none) every change to a platform schema is an error."""
    findings = lint_text(tmp_path, PLATFORM_CHANGES, allow=())
    assert [(f.rule, f.line) for f in findings] == [("schema-protected", line) for line in range(2, 10)]


def test_by_default_the_app_may_attach_its_policies_and_triggers_to_platform_tables(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, PLATFORM_CHANGES)
    assert [(f.rule, f.line) for f in findings] == [("schema-protected", line) for line in (2, 3, 8, 9)]


def test_reading_a_protected_schema_is_allowed(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        CREATE TABLE IF NOT EXISTS profiles (user_id uuid REFERENCES auth.users (id));
        CREATE OR REPLACE VIEW people AS SELECT id FROM auth.users;
        INSERT INTO profiles (user_id) SELECT id FROM auth.users ON CONFLICT DO NOTHING;
        """))
    assert findings == []


def test_allow_schema_marker_allows_only_the_named_schemas(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, "-- migrate:allow-schema storage\n" + SEARCH_PATH + textwrap.dedent("""\
        ALTER TABLE storage.objects ADD COLUMN IF NOT EXISTS note text;
        CREATE INDEX IF NOT EXISTS objects_note_idx ON storage.objects (note);
        CREATE TABLE IF NOT EXISTS auth.extra (id int);
        """))
    findings = [f for f in findings if f.rule != "safety-create-index-concurrently"]
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
BAD_LINE = ("migrate: lint: migrations/lanconnect/001_bad.sql: 1 error, 1 warning (idempotent-create-table; "
            "inv lint migrations/lanconnect/001_bad.sql for details)")


def lint_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "lint" in line]


def test_migrate_warns_about_lint_errors_of_pending_files_and_applies(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert lint_lines(result.err) == [BAD_LINE]
    assert db.history("lanconnect") == [("001", "applied")]
    assert "lint_bad" in db.tables("public")



def test_migrate_lints_files_it_hands_to_psql_and_skips_only_real_psql_files(project: Project, db: Database) -> None:
    """migrate lints its own parse of each file: MIGRATE_EXECUTOR=psql files are still linted,
    a file with psql meta-commands is reported as not linted, as `inv lint` does."""
    project.write("lanconnect", "001_bad.sql", BAD_FILE)
    project.write("lanconnect", "002_meta.sql", "\\set n 1\nCREATE TABLE meta_t (id int);\n")
    result = project.run("migrate", env={"MIGRATE_EXECUTOR": "psql"})
    assert result.code == 0, result.err
    assert lint_lines(result.err) == [BAD_LINE]  # 002_meta.sql: only a lint-skipped warning
    listed = project.run("lint", "migrations/lanconnect/002_meta.sql")
    assert "lint-skipped" in listed.out, listed.out + listed.err
    assert db.history("lanconnect") == [("001", "applied"), ("002", "applied")]

def test_migrate_strict_refuses_before_anything_is_applied(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", SEARCH_PATH + "CREATE TABLE IF NOT EXISTS ok (id int);\n")
    project.write("client_specific", "001_bad.sql", BAD_FILE)
    result = project.inv("migrate", env={"MIGRATE_LINT": "strict"})
    assert result.code == 4
    assert lint_lines(result.err) == [
        BAD_LINE.replace("lanconnect", "client_specific"),
        "migrate: error: MIGRATE_LINT=strict: 1 lint error(s) in pending migration files, nothing was applied; fix "
        "them (see `inv lint`) or silence an intended one with -- migrate:lint-ignore RULE"]
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
    "ALTER TRIGGER on_signup ON auth.sessions RENAME TO on_signup2;",
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
    assert lint_lines(warned.err) == [BAD_LINE]
    strict = project.run("dry-run", env={"MIGRATE_LINT": "strict"})
    assert strict.code == 4
    assert "MIGRATE_LINT=strict: 1 lint error(s) in pending migration files" in strict.err
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]


# --- issue 14: the misses and the false positive --------------------------------------------

def do_block(body: str) -> str:
    """A DO block around `body` (indented by the caller), in a file that sets search_path."""
    return SEARCH_PATH + "DO $$\nBEGIN\n" + textwrap.dedent(body) + "END\n$$;\n"


@pytest.mark.parametrize(("constraint", "raised", "condition"), [
    ("UNIQUE (v)", "42P07", "duplicate_table"),
    ("EXCLUDE USING btree (v WITH =)", "42P07", "duplicate_table"),
    ("PRIMARY KEY (id)", "42P16", "invalid_table_definition"),
])
def test_an_index_backed_constraint_guarded_by_duplicate_object_is_still_an_error(
        tmp_path: Path, constraint: str, raised: str, condition: str) -> None:
    findings = lint_text(tmp_path, do_block(f"""\
        BEGIN
            ALTER TABLE t ADD CONSTRAINT t_key {constraint};
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END;
        """))
    assert [(f.rule, f.line) for f in findings] == [("idempotent-add-constraint", 5)]
    assert findings[0].message == (
        f"ALTER TABLE t ADD CONSTRAINT t_key fails when it already exists: its EXCEPTION handler catches "
        f"duplicate_object, but a second run raises {condition} ({raised})")
    assert f"EXCEPTION WHEN duplicate_object OR {condition}" in findings[0].fix
    assert "or check pg_constraint first" in findings[0].fix
    fixed = lint_text(tmp_path, do_block(f"""\
        BEGIN
            ALTER TABLE t ADD CONSTRAINT t_key {constraint};
        EXCEPTION WHEN duplicate_object OR {condition} THEN
            NULL;
        END;
        """))
    assert fixed == []


def test_a_handler_for_others_or_the_sqlstate_or_its_class_is_a_guard(tmp_path: Path) -> None:
    for handler in ("others", "SQLSTATE '42P07'", "syntax_error_or_access_rule_violation", "SQLSTATE '42000'"):
        findings = lint_text(tmp_path, do_block(f"""\
            BEGIN
                ALTER TABLE t ADD CONSTRAINT t_key UNIQUE (v);
            EXCEPTION WHEN {handler} THEN
                NULL;
            END;
            """))
        assert findings == [], handler


def test_a_handler_for_another_sqlstate_is_named_as_plpgsql_writes_it(tmp_path: Path) -> None:
    [finding] = lint_text(tmp_path, do_block("""\
        BEGIN
            ALTER TABLE t ADD CONSTRAINT t_key UNIQUE (v);
        EXCEPTION WHEN SQLSTATE '42710' THEN
            NULL;
        END;
        """))
    assert finding.message.endswith("its EXCEPTION handler catches SQLSTATE '42710', but a second run raises "
                                    "duplicate_table (42P07)")
    assert finding.fix.startswith("write EXCEPTION WHEN SQLSTATE '42710' OR duplicate_table, ")


def test_a_handler_for_the_wrong_condition_guards_no_statement_kind(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, do_block("""\
        CREATE TABLE t (id int);
        CREATE TYPE mood AS ENUM ('a');
        CREATE SCHEMA app;
        ALTER TABLE t ADD COLUMN n int;
        EXCEPTION WHEN undefined_table THEN
            NULL;
        """))
    assert [(f.rule, f.line) for f in findings] == [
        ("idempotent-create-table", 4), ("idempotent-create-type", 5), ("idempotent-create-schema", 6),
        ("idempotent-add-column", 7)]
    assert all("its EXCEPTION handler catches undefined_table" in f.message for f in findings)


@pytest.mark.parametrize("guard", [
    "IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 't_positive') THEN",
    "IF to_regclass('langconnect.t') IS NOT NULL THEN",
    "IF (SELECT count(*) FROM pg_constraint WHERE conname = 't_positive') > 0 THEN",
    "PERFORM 1 FROM pg_constraint WHERE conname = 't_positive';\nIF FOUND THEN",
])
def test_an_inverted_guard_is_not_a_guard(tmp_path: Path, guard: str) -> None:
    body = guard + "\n    ALTER TABLE t ADD CONSTRAINT t_positive CHECK (id > 0);\nEND IF;\n"
    findings = lint_text(tmp_path, do_block(body))
    assert [f.rule for f in findings] == ["idempotent-add-constraint"]
    assert findings[0].message.endswith(
        "fails when it already exists: the IF around it runs it when what it checks exists")
    assert "IF NOT EXISTS" in findings[0].fix


@pytest.mark.parametrize("guard", [
    "IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 't_positive') THEN",
    "IF to_regclass('langconnect.t_positive_idx') IS NULL THEN",
    "IF (SELECT count(*) FROM pg_constraint WHERE conname = 't_positive') = 0 THEN",
    "PERFORM 1 FROM pg_constraint WHERE conname = 't_positive';\nIF NOT FOUND THEN",
    "IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 't_positive') THEN\n    NULL;\nELSE",
    "IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 't_positive') AND current_user = 'postgres' THEN",
])
def test_a_guard_that_runs_the_statement_when_the_object_is_absent_is_a_guard(tmp_path: Path, guard: str) -> None:
    body = guard + "\n    ALTER TABLE t ADD CONSTRAINT t_positive CHECK (id > 0);\nEND IF;\n"
    assert lint_text(tmp_path, do_block(body)) == []


def test_a_drop_is_guarded_by_if_exists_and_not_by_if_not_exists(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, do_block("""\
        IF EXISTS (SELECT 1 FROM pg_type WHERE typname = 'old') THEN
            DROP TYPE old;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'older') THEN
            DROP TYPE older;
        END IF;
        """))
    assert [(f.rule, f.line) for f in findings] == [("idempotent-drop", 8)]


@pytest.mark.parametrize(("drop", "guards"), [
    ("DROP FUNCTION IF EXISTS langconnect.score(int);", False),
    ("DROP FUNCTION IF EXISTS langconnect.score();", False),
    ("DROP FUNCTION IF EXISTS langconnect.score(text);", True),
    ("DROP FUNCTION IF EXISTS langconnect.score(pg_catalog.text, integer);", False),
    ("DROP FUNCTION IF EXISTS langconnect.score;", True),  # no argument list: the only function of that name
    ("DROP FUNCTION IF EXISTS score(text);", True),
    ("DROP FUNCTION IF EXISTS other.score(text);", False),
    ("DROP PROCEDURE IF EXISTS langconnect.score(text);", True),
])
def test_drop_function_if_exists_guards_only_the_same_signature(tmp_path: Path, drop: str, guards: bool) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + drop + "\n"
                         "CREATE FUNCTION langconnect.score(label text, OUT total int) LANGUAGE sql AS 'SELECT 1';\n")
    assert rules(findings) == ([] if guards else ["idempotent-create-function"]), [f.format() for f in findings]


def test_out_and_table_parameters_are_not_part_of_the_signature(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + "DROP FUNCTION IF EXISTS f(int, text[]);\n"
                         "CREATE FUNCTION f(a integer, VARIADIC b text[]) RETURNS TABLE (x int) LANGUAGE sql "
                         "AS 'SELECT 1';\n")
    assert findings == []


@pytest.mark.parametrize("create", [
    "CREATE TEMP TABLE scratch (id int);",
    "CREATE TEMPORARY TABLE scratch (id int);",
    "CREATE TEMP TABLE scratch ON COMMIT DROP AS SELECT 1 AS id;",
    "CREATE LOCAL TEMP TABLE scratch (id int);",
])
def test_a_temporary_table_is_not_an_idempotency_error(tmp_path: Path, create: str) -> None:
    """Every file runs in a fresh session, so its temp tables are gone before any second run;
    what the file does to its own temp table (index, column, drop) is not an error either."""
    findings = lint_text(tmp_path, "SET search_path = storage, public;\n" + create + "\n"
                         "CREATE INDEX scratch_id_idx ON scratch (id);\n"
                         "ALTER TABLE scratch ADD COLUMN note text;\n"
                         "CREATE TEMP VIEW scratch_view AS SELECT id FROM scratch;\n"
                         "CREATE TEMP SEQUENCE scratch_seq;\n"
                         "DROP TABLE scratch;\n")
    assert findings == [], [f.format() for f in findings]


def test_a_permanent_table_of_the_same_name_is_still_checked(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + "CREATE TEMP TABLE scratch (id int);\nCREATE TABLE kept (id int);\n"
                         "DROP TABLE kept;\n")
    assert [(f.rule, f.line) for f in findings] == [
        ("idempotent-create-table", 3), ("idempotent-drop", 4), ("safety-drop-table", 4)]


# (statement, its RERUN_SQLSTATE kind, whether it may run inside a DO block); each runs in a schema
# holding `t (id int, v int)` and `f(int)`; a CREATE twice, a DROP of something that is not there once.
RERUN_CASES: list[tuple[str, str, bool]] = [
    ("CREATE TABLE t2 (id int)", "table", True),
    ("CREATE TABLE t3 AS SELECT 1 AS one", "table", True),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one", "materialized view", True),
    ("CREATE INDEX t_v_idx ON t (v)", "index", True),
    ("CREATE VIEW v AS SELECT 1 AS one", "view", True),
    ("CREATE SEQUENCE s", "sequence", True),
    ("CREATE SCHEMA probe_inner", "schema", True),
    ("CREATE EXTENSION plpgsql SCHEMA pg_catalog", "extension", True),
    ("CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql AS 'SELECT x'", "function", True),
    ("CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
     "trigger", True),
    ("CREATE POLICY t_read ON t USING (true)", "policy", True),
    ("CREATE TYPE mood AS ENUM ('a')", "type", True),
    ("CREATE DOMAIN positive AS int CHECK (VALUE > 0)", "type", True),
    ("ALTER TABLE t ADD COLUMN n int", "column", True),
    ("ALTER TABLE t ADD CONSTRAINT t_check CHECK (v > 0)", "constraint", True),
    ("ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (v) REFERENCES t2 (id)", "constraint", True),
    ("ALTER TABLE t ADD CONSTRAINT t_unique UNIQUE (v)", "constraint UNIQUE", True),
    ("ALTER TABLE t ADD CONSTRAINT t_exclude EXCLUDE USING btree (v WITH =)", "constraint EXCLUDE", True),
    ("ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY (id)", "constraint PRIMARY KEY", True),
    ("DROP TABLE gone", "drop table", True),
    ("DROP VIEW gone", "drop view", True),
    ("DROP MATERIALIZED VIEW gone", "drop materialized view", True),
    ("DROP SEQUENCE gone", "drop sequence", True),
    ("DROP INDEX gone", "drop index", True),
    ("DROP FUNCTION gone(int)", "drop function", True),
    ("DROP SCHEMA gone", "drop schema", True),
    ("DROP TYPE gone", "drop type", True),
    ("DROP TRIGGER gone ON t", "drop trigger", True),
    ("DROP POLICY gone ON t", "drop policy", True),
    ("DROP RULE gone ON t", "drop rule", True),
    ("DROP EXTENSION gone", "drop extension", True),
    ("DROP AGGREGATE gone(int)", "drop aggregate", True),
    ("ALTER TABLE t DROP COLUMN gone", "drop column", True),
    ("ALTER TABLE t DROP CONSTRAINT gone", "drop constraint", True),
    ("DROP ROLE migrate_lint_gone_role", "drop role", True),
    ("DROP DATABASE migrate_lint_gone_db", "drop database", False),
    ("DROP TABLESPACE migrate_lint_gone_space", "drop tablespace", False),
    ("DROP SUBSCRIPTION migrate_lint_gone_subscription", "drop subscription", False),
]


def _sqlstate(connection: object, statement: str, times: int) -> str | None:
    import psycopg2

    with connection.cursor() as cursor:  # type: ignore[attr-defined]
        for _ in range(times):
            try:
                cursor.execute(statement)
            except psycopg2.Error as error:
                return error.pgcode
    return None


def test_the_rerun_sqlstates_are_the_servers(tmp_path: Path, db: Database) -> None:
    """The SQLSTATE each kind of statement raises on a second run (a DROP: once its object is gone) is
    what PostgreSQL raises; a DO block catching exactly that condition lints clean and runs twice on the
    server, and one catching another condition is still an error. This is where the issue's
    "PRIMARY KEY re-runs fail with 42P07" turned out to be 42P16 (multiple primary keys)."""
    from migrate.checks.lint_rules import CONDITION_NAMES, RERUN_SQLSTATE

    setup = ("CREATE TABLE t (id int, v int); CREATE TABLE t2 (id int PRIMARY KEY); "
             "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x';")
    wrong: list[str] = []
    connection = db.connect()
    try:
        for number, (statement, kind, in_do) in enumerate(RERUN_CASES):
            code = RERUN_SQLSTATE[kind]
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA probe_{number}; SET search_path = probe_{number}; {setup}")
            raised = _sqlstate(connection, statement, 1 if kind.startswith("drop ") else 2)
            if raised != code:
                wrong.append(f"{statement}: the server raised {raised}, the lint expects {code}")
            condition = CONDITION_NAMES[code]
            guarded = f"DO $$\nBEGIN\n    {statement};\nEXCEPTION WHEN {condition} THEN\n    NULL;\nEND\n$$;\n"
            found = [f.rule for f in lint_text(tmp_path, SEARCH_PATH + guarded) if f.rule.startswith("idempotent-")]
            if found:
                wrong.append(f"{statement} inside EXCEPTION WHEN {condition}: {found}")
            unguarded = guarded.replace(condition, "division_by_zero")
            if not [f for f in lint_text(tmp_path, SEARCH_PATH + unguarded) if f.rule.startswith("idempotent-")]:
                wrong.append(f"{statement} inside EXCEPTION WHEN division_by_zero: no finding")
            if in_do:
                with connection.cursor() as cursor:
                    cursor.execute(f"CREATE SCHEMA probe_do_{number}; SET search_path = probe_do_{number}; {setup}")
                raised = _sqlstate(connection, guarded, 2)
                if raised is not None:
                    wrong.append(f"{statement} inside EXCEPTION WHEN {condition}: the server raised {raised}")
    finally:
        connection.close()
    assert wrong == []
    assert {kind for _, kind, _ in RERUN_CASES} == set(RERUN_SQLSTATE)


# --- issue 14: lint that knows the platform -------------------------------------------------

SUPABASE_PATTERNS = SEARCH_PATH + textwrap.dedent("""\
    CREATE OR REPLACE FUNCTION langconnect.owns_object(object_name text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
        SELECT (storage.foldername(object_name))[1] = auth.uid()::text
    $$;
    DROP POLICY IF EXISTS "avatars: owner reads" ON storage.objects;
    CREATE POLICY "avatars: owner reads" ON storage.objects FOR SELECT TO authenticated
        USING (bucket_id = 'avatars' AND langconnect.owns_object(name));
    ALTER POLICY "avatars: owner reads" ON storage.objects USING (bucket_id = 'avatars');
    COMMENT ON POLICY "avatars: owner reads" ON storage.objects IS 'each user reads their own folder';
    DROP POLICY IF EXISTS "buckets: read" ON storage.buckets;
    CREATE POLICY "buckets: read" ON storage.buckets FOR SELECT USING (true);
    DROP POLICY IF EXISTS "room members listen" ON realtime.messages;
    CREATE POLICY "room members listen" ON realtime.messages FOR SELECT TO authenticated USING (true);
    DROP TRIGGER IF EXISTS on_auth_user_created ON auth.users;
    CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users
        FOR EACH ROW EXECUTE FUNCTION langconnect.handle_new_user();
    ALTER TRIGGER on_auth_user_created ON auth.users RENAME TO on_auth_user_created_v2;
    INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', false) ON CONFLICT (id) DO NOTHING;
    UPDATE storage.buckets SET public = true WHERE id = 'avatars';
    """)


def test_the_documented_platform_patterns_lint_clean_by_default(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SUPABASE_PATTERNS)
    assert [f.format() for f in findings] == []


def test_without_the_allowlist_each_platform_pattern_is_reported(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SUPABASE_PATTERNS, allow=())
    assert [(f.rule, f.line) for f in findings] == [
        ("schema-protected", line) for line in (6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 18)] + [
        ("schema-protected-rows", 19), ("schema-protected-rows", 20)]


@pytest.mark.parametrize(("statement", "message"), [
    ("ALTER TABLE storage.objects ADD COLUMN IF NOT EXISTS note text;",
     "ALTER TABLE storage.objects changes the protected schema storage"),
    ("ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;",
     "ALTER TABLE storage.objects changes the protected schema storage"),
    ("ALTER TABLE auth.users DROP COLUMN IF EXISTS phone;", "ALTER TABLE auth.users changes the protected schema auth"),
    ("CREATE TABLE IF NOT EXISTS storage.extra (id int);",
     "CREATE TABLE storage.extra changes the protected schema storage"),
    ("DROP TYPE IF EXISTS auth.factor_type;", "DROP TYPE auth.factor_type changes the protected schema auth"),
    ("GRANT SELECT ON storage.objects TO anon;", "GRANT ON storage.objects changes the protected schema storage"),
    ("REVOKE ALL ON storage.buckets FROM anon;", "REVOKE ON storage.buckets changes the protected schema storage"),
    ("DROP POLICY IF EXISTS p ON auth.users;", "DROP POLICY p ON auth.users changes the protected schema auth"),
    ("DROP TRIGGER IF EXISTS t ON storage.objects;",
     "DROP TRIGGER t ON storage.objects changes the protected schema storage"),
    ("CREATE TRIGGER t AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION auth.on_signup();",
     "CREATE TRIGGER t ON auth.users calls auth.on_signup(), a function of the protected schema auth"),
])
def test_changing_the_platforms_structure_stays_an_error(tmp_path: Path, statement: str, message: str) -> None:
    findings = [f for f in lint_text(tmp_path, SEARCH_PATH + statement + "\n") if f.rule.startswith("schema-")]
    assert [(f.rule, f.severity, f.message) for f in findings] == [("schema-protected", "error", message)]


def test_a_platform_pattern_outside_the_allowlist_names_the_setting_that_allows_it(tmp_path: Path) -> None:
    [finding] = lint_text(tmp_path, SEARCH_PATH + "DROP POLICY IF EXISTS p ON auth.users;\n")
    assert finding.fix == ("keep to the app schema langconnect, allow it for the project with "
                           "MIGRATE_LINT_ALLOW=policy:auth.users, or add `-- migrate:allow-schema auth` to this file "
                           "if the change is intended")


def test_a_new_function_in_a_platform_schema_is_a_warning_and_replacing_the_platforms_is_an_error(
        tmp_path: Path) -> None:
    findings = lint_text(tmp_path, SEARCH_PATH + textwrap.dedent("""\
        CREATE OR REPLACE FUNCTION storage.owns(name text) RETURNS bool LANGUAGE sql AS 'SELECT true';
        CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid';
        """))
    assert [(f.rule, f.severity, f.line, f.message) for f in findings] == [
        ("schema-protected-function", "warning", 2,
         "CREATE FUNCTION storage.owns creates a function in the protected schema storage"),
        ("schema-protected", "error", 3,
         "CREATE FUNCTION auth.uid replaces the platform's function auth.uid()"),
    ]
    assert findings[0].fix == ("create it in the app schema langconnect (policies can call langconnect.owns()), "
                               "or add `-- migrate:allow-schema storage` to this file")


def test_rows_of_platform_tables_outside_the_allowlist_are_a_warning(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, "SET search_path = auth, public;\n" + textwrap.dedent("""\
        INSERT INTO users (id) VALUES ('00000000-0000-0000-0000-000000000000') ON CONFLICT DO NOTHING;
        UPDATE auth.users SET email = lower(email);
        DELETE FROM storage.objects WHERE bucket_id = 'tmp';
        TRUNCATE auth.audit_log_entries;
        WITH gone AS (DELETE FROM auth.sessions RETURNING id) SELECT count(*) FROM gone;
        INSERT INTO storage.buckets (id, name) VALUES ('avatars', 'avatars') ON CONFLICT (id) DO NOTHING;
        """))
    assert [(f.rule, f.line) for f in findings] == [("schema-protected-rows", line) for line in range(2, 7)]
    assert findings[0].message == "INSERT INTO auth.users writes rows of the platform's table auth.users"
    assert findings[0].fix == ("leave the platform's rows to the platform, or allow it for the project with "
                               "MIGRATE_LINT_ALLOW=rows:auth.users")


def test_lint_allow_setting_extends_and_narrows_the_allowlist(files_project: Project) -> None:
    from migrate.settings import DEFAULT_LINT_ALLOW

    cases = {
        "": DEFAULT_LINT_ALLOW,
        "rows:auth.users, policy:auth.*": DEFAULT_LINT_ALLOW + ("rows:auth.users", "policy:auth.*"),
        "none": (),
        "none policy:storage.objects": ("policy:storage.objects",),
        "-trigger:auth.users,-rows:storage.buckets": tuple(e for e in DEFAULT_LINT_ALLOW
                                                          if e not in ("trigger:auth.users", "rows:storage.buckets")),
    }
    for value, expected in cases.items():
        files_project.env_file("local", f"MIGRATE_LINT_ALLOW={value}\n")
        assert files_project.settings().lint.allow == expected, value


def test_lint_allow_applies_to_every_file_without_a_marker(files_project: Project) -> None:
    files_project.write("lanconnect", "001_policies.sql", SEARCH_PATH + textwrap.dedent("""\
        DROP POLICY IF EXISTS own ON auth.users;
        CREATE POLICY own ON auth.users FOR SELECT USING (id = auth.uid());
        INSERT INTO auth.users (id) VALUES ('00000000-0000-0000-0000-000000000000') ON CONFLICT DO NOTHING;
        """))
    assert files_project.run("lint").code == 4
    files_project.env_file("local", "MIGRATE_LINT_ALLOW=policy:auth.users rows:auth.*\n")
    result = files_project.run("lint")
    assert (result.code, result.out) == (0, "Lint: 1 file(s) clean.\n"), result.err
    files_project.env_file("local", "MIGRATE_LINT_ALLOW=none\n")
    narrowed = files_project.write("lanconnect", "002_bucket.sql", SEARCH_PATH + "INSERT INTO storage.buckets "
                                   "(id, name) VALUES ('a', 'a') ON CONFLICT (id) DO NOTHING;\n")
    result = files_project.run("lint", str(narrowed))
    assert result.code == 0 and "schema-protected-rows warning" in result.out


@pytest.mark.parametrize("value", ["policy:objects", "index:storage.objects", "policy:storage.objects;drop",
                                   "rows:storage."])
def test_a_bad_lint_allow_entry_is_a_configuration_error(files_project: Project, value: str) -> None:
    files_project.env_file("local", f"MIGRATE_LINT_ALLOW={value}\n")
    result = files_project.run("lint")
    assert result.code == 2
    entry = value.split(",")[0]
    assert result.err == (
        f"migrate: error: envs/local.env: MIGRATE_LINT_ALLOW holds {entry!r}, which is not an allowlist entry; "
        "write KIND:SCHEMA.TABLE with KIND policy, trigger or rows (e.g. policy:storage.objects, rows:auth.*), "
        "-KIND:SCHEMA.TABLE to remove a default, or none\n")


# --- issue 14: lint on a folder; every bad file and every problem in one run ---------------

CLEAN = SEARCH_PATH + "CREATE TABLE IF NOT EXISTS a (id int);\n"


def test_lint_of_the_migrations_folder_walks_its_track_folders(files_project: Project) -> None:
    files_project.write("lanconnect", "001_ok.sql", CLEAN)
    files_project.write("lanconnect", "0010_later.sql", CLEAN)
    files_project.write("lanconnect", "002_ok.sql", CLEAN)
    files_project.write("client_specific", "001_bad.sql", SEARCH_PATH + "CREATE TABLE b (id int);\n")
    result = files_project.run("lint", "--json", "migrations")
    assert result.code == 4
    assert json.loads(result.out)["files"] == [
        "migrations/lanconnect/001_ok.sql", "migrations/lanconnect/002_ok.sql", "migrations/lanconnect/0010_later.sql",
        "migrations/client_specific/001_bad.sql"]
    text = files_project.run("lint", "migrations")
    assert text.out.splitlines() == [
        "migrations/client_specific/001_bad.sql:2:14 idempotent-create-table error: CREATE TABLE b has no IF NOT "
        "EXISTS (write CREATE TABLE IF NOT EXISTS)",
        "Lint: 1 error(s), 0 warning(s) in 4 file(s).",
    ]
    track = files_project.run("lint", "migrations/lanconnect")
    assert (track.code, track.out) == (0, "Lint: 3 file(s) clean.\n")
    trailing = files_project.run("lint", "migrations/", "migrations/client_specific/001_bad.sql")
    assert trailing.out.endswith("in 4 file(s).\n")  # a file named twice is linted once


def test_lint_of_a_folder_walks_its_subfolders(files_project: Project) -> None:
    files_project.write("lanconnect", "001_ok.sql", CLEAN)
    nested = files_project.root / "drafts" / "2024" / "q3"
    nested.mkdir(parents=True)
    (nested / "001_draft.sql").write_text(CLEAN)
    (files_project.root / "drafts" / "notes.txt").write_text("not SQL")
    result = files_project.run("lint", "--json", "drafts")
    assert result.code == 0, result.err
    assert json.loads(result.out)["files"] == ["drafts/2024/q3/001_draft.sql"]


@pytest.mark.parametrize("layout", ["empty folder", "empty track folders", "only a README and a down file"])
def test_lint_of_a_folder_without_sql_files_is_an_error(files_project: Project, layout: str) -> None:
    folder = files_project.root / "migrations"
    folder.mkdir()
    if layout != "empty folder":
        (folder / "lanconnect").mkdir()
        (folder / "client_specific").mkdir()
    if layout == "only a README and a down file":
        (folder / "lanconnect" / "README.md").write_text("# notes\n")
        (folder / "lanconnect" / "001_x.down.sql").write_text("DROP TABLE IF EXISTS x;\n")
    result = files_project.run("lint", "migrations")
    assert (result.code, result.out) == (2, "")
    assert result.err == ("migrate: error: migrations: no .sql file in this folder or below it; name migration "
                          "files, a track folder or the migrations folder\n")
    default = files_project.run("lint")
    assert (default.code, default.out) == (2, "")
    assert default.err == ("migrate: error: no migration file in migrations/lanconnect or "
                           "migrations/client_specific: write one with `inv new`, or point MIGRATIONS_DIR at them\n")


def test_every_bad_file_and_every_problem_is_reported_in_one_run(files_project: Project) -> None:
    files_project.write("lanconnect", "001_broken.sql", SEARCH_PATH + "CREATE TABLE t (id int;\n")
    files_project.write("lanconnect", "002_two.sql", SEARCH_PATH + "CREATE TABLE u (id int);\nDROP VIEW v;\n")
    (files_project.root / "migrations" / "lanconnect" / "003_latin1.sql").write_bytes(b"SELECT 1;\n-- caf\xe9\n")
    files_project.write("lanconnect", "004_empty.sql", "")
    files_project.write("client_specific", "notes.sql", CLEAN)
    files_project.write("client_specific", "001_ok.sql", CLEAN)
    expected = [
        'migrations/lanconnect/001_broken.sql:2:23 syntax-error error: syntax error at or near ";" (fix the SQL)',
        "migrations/lanconnect/002_two.sql:2:14 idempotent-create-table error: CREATE TABLE u has no IF NOT EXISTS "
        "(write CREATE TABLE IF NOT EXISTS)",
        "migrations/lanconnect/002_two.sql:3:1 idempotent-drop error: DROP VIEW v has no IF EXISTS "
        "(write DROP VIEW IF EXISTS)",
        "migrations/lanconnect/003_latin1.sql:2:7 file-unreadable error: the file is not UTF-8 (byte 0xe9) "
        "(re-save it as UTF-8)",
        "migrations/lanconnect/004_empty.sql:1:1 syntax-error error: the migration file holds no SQL statement, "
        "only comments (write its SQL or delete it)",
        "migrations/client_specific/notes.sql:1:1 file-name error: notes.sql is not a migration file name, so "
        "migrate refuses the track (rename it to <digits>_<description>.sql such as 004_add_user_preferences.sql, "
        "or end it in .down.sql to have it ignored)",
        "Lint: 6 error(s), 0 warning(s) in 6 file(s).",
    ]
    for args in ((), ("migrations",)):
        result = files_project.run("lint", *args)
        assert result.code == 4
        assert result.out.splitlines() == expected, args
        assert result.err == ("migrate: error: lint found 6 error(s) in 6 file(s); fix them, or silence an intended "
                              "one with -- migrate:lint-ignore RULE\n")


# --- issue 14: quiet runs; every finding in the --json documents ------------------------------

NOISY = SEARCH_PATH + textwrap.dedent("""\
    CREATE TABLE noisy (id int);
    CREATE TYPE noisy_mood AS ENUM ('a');
    DROP TABLE IF EXISTS gone;
    """)
WARNED = "CREATE TABLE IF NOT EXISTS warned (id int);\n"  # no search_path: a warning only
NOISY_LINE = ("migrate: lint: migrations/lanconnect/001_noisy.sql: 2 errors, 1 warning (idempotent-create-table, "
              "idempotent-create-type; inv lint migrations/lanconnect/001_noisy.sql for details)")


def write_noisy_set(project: Project) -> None:
    project.write("lanconnect", "001_noisy.sql", NOISY)
    project.write("lanconnect", "002_warned.sql", WARNED)
    project.write("client_specific", "001_clean.sql", CLEAN)


@pytest.mark.parametrize("command", ["migrate", "dry-run"])
def test_a_run_prints_one_lint_line_per_file_with_errors(project: Project, db: Database, command: str) -> None:
    write_noisy_set(project)
    result = project.run(command)
    assert result.code == 0, result.err
    assert lint_lines(result.err) == [NOISY_LINE]
    assert "warning: lint" not in result.err and "error:" not in result.err
    strict = project.run(command, env={"MIGRATE_LINT": "strict"})
    assert strict.code == (0 if command == "migrate" else 4)  # migrate applied everything the first time
    if command == "dry-run":
        assert lint_lines(strict.err) == [NOISY_LINE, "migrate: error: MIGRATE_LINT=strict: 2 lint error(s) in "
                                          "pending migration files, nothing was applied; fix them (see `inv lint`) "
                                          "or silence an intended one with -- migrate:lint-ignore RULE"]


EXPECTED_FINDINGS = [
    {"file": "migrations/lanconnect/001_noisy.sql", "line": 2, "column": 14, "rule": "idempotent-create-table",
     "severity": "error", "message": "CREATE TABLE noisy has no IF NOT EXISTS",
     "fix": "write CREATE TABLE IF NOT EXISTS"},
    {"file": "migrations/lanconnect/001_noisy.sql", "line": 3, "column": 1, "rule": "idempotent-create-type",
     "severity": "error", "message": "CREATE TYPE noisy_mood fails when it already exists",
     "fix": "wrap it in a DO block that checks pg_type first, or put DROP TYPE IF EXISTS noisy_mood before it"},
    {"file": "migrations/lanconnect/001_noisy.sql", "line": 4, "column": 1, "rule": "safety-drop-table",
     "severity": "warning", "message": "DROP TABLE gone loses its data",
     "fix": "make sure the data is no longer needed; keep a backup"},
    {"file": "migrations/lanconnect/002_warned.sql", "line": 1, "column": 1, "rule": "safety-search-path",
     "severity": "warning", "message": "the file never sets search_path, so unqualified names depend on the session",
     "fix": "start the file with SET search_path = langconnect, public;"},
]
EXPECTED_LINT = {"files": ["migrations/lanconnect/001_noisy.sql", "migrations/lanconnect/002_warned.sql",
                           "migrations/client_specific/001_clean.sql"],
                 "findings": EXPECTED_FINDINGS, "errors": 2, "warnings": 2}


def test_the_json_documents_of_migrate_dry_run_and_lint_carry_every_finding(project: Project, db: Database) -> None:
    write_noisy_set(project)
    linted = project.run("lint", "--json")
    assert linted.code == 4
    assert json.loads(linted.out) == EXPECTED_LINT
    planned = project.run("dry-run", "--json")
    assert planned.code == 0, planned.err
    assert json.loads(planned.out)["lint"] == EXPECTED_LINT
    refused = project.run("dry-run", "--json", env={"MIGRATE_LINT": "strict"})
    assert refused.code == 4
    document = json.loads(refused.out)
    assert document["error"]["exit_code"] == 4 and document["error"]["message"].startswith("MIGRATE_LINT=strict")
    assert document["lint"] == EXPECTED_LINT
    refused = project.run("migrate", "--json", env={"MIGRATE_LINT": "strict"})
    assert refused.code == 4
    assert json.loads(refused.out)["lint"] == EXPECTED_LINT
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]
    applied = project.run("migrate", "--json")
    assert applied.code == 0, applied.err
    document = json.loads(applied.out)
    assert len(document["applied"]) == 3 and document["lint"] == EXPECTED_LINT
    assert lint_lines(applied.err) == [NOISY_LINE]  # the line on stderr, the findings in the document
    nothing = json.loads(project.run("migrate", "--json").out)
    assert nothing["lint"] == {"files": [], "findings": [], "errors": 0, "warnings": 0}
    project.write("lanconnect", "003_more.sql", NOISY.replace("noisy", "more"))
    off = project.run("migrate", "--json", env={"MIGRATE_LINT": "off"})
    assert off.code == 0 and json.loads(off.out)["lint"] is None and lint_lines(off.err) == []


def test_a_failing_run_still_carries_its_lint_findings(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_fails.sql", SEARCH_PATH + "CREATE TABLE fails (id int);\nSELECT 1 / 0;\n")
    result = project.run("migrate", "--json")
    assert result.code == 1
    document = json.loads(result.out)
    assert document["error"]["exit_code"] == 1
    assert [f["rule"] for f in document["lint"]["findings"]] == ["idempotent-create-table"]


def test_a_run_with_nothing_pending_never_loads_lint(project: Project, db: Database) -> None:
    """The no-op start-up path stays light: lint, its rules and pglast load only when a file is pending."""
    import subprocess
    import sys

    write_noisy_set(project)
    assert project.run("migrate").code == 0
    probe = ("import sys\nfrom migrate.cli import main\ncode = main(['migrate', '--json'])\n"
             "print(sorted(m for m in sys.modules if m.startswith(('migrate.checks.lint', 'pglast'))), code)")
    completed = subprocess.run([sys.executable, "-c", probe], cwd=project.root, env=project.environ(),
                               capture_output=True, text=True, timeout=60)
    assert completed.stdout.splitlines()[-1] == "[] 0", completed.stdout + completed.stderr
