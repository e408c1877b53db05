"""The resolution rule piece by piece, without a server: which source wins for each setting.

README "Environments" states the rule as a table; these tests hold each row of it, plus the strict
DATABASE_URL parser (what is clean, what is refused, and that a refusal repeats nothing of the URL).
The end-to-end cases against real servers are in test_env_resolution.py, test_env_empty.py and
test_env_urls.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.errors import ConfigError
from migrate.settings import (
    FROM_EMBEDDED,
    FROM_FILE,
    FROM_FLAGS,
    FROM_NOWHERE,
    FROM_SHELL,
    Target,
    UrlProblem,
    load_settings,
    parse_database_url,
    require_target,
)


def _root(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "envs").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (tmp_path / "envs" / name.replace("__", ".")).write_text(text)
    return tmp_path


# --- DATABASE_URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("postgresql://app:s%2Fe%40c%3Ar%23e%3Ft%25%27%20x@db.example:6432/app?sslmode=require",
     {"user": "app", "password": "s/e@c:r#e?t%' x", "host": "db.example", "port": "6432", "dbname": "app",
      "sslmode": "require"}),
    ("postgres://u@[::1]:5433/d", {"user": "u", "host": "::1", "port": "5433", "dbname": "d"}),
    ("postgresql://u@h1:5432,h2:5433/d?target_session_attrs=read-write",
     {"user": "u", "host": "h1,h2", "port": "5432,5433", "dbname": "d", "target_session_attrs": "read-write"}),
    ("postgresql://postgres@/db?host=/tmp/pg&port=5432", {"user": "postgres", "host": "/tmp/pg", "port": "5432",
                                                          "dbname": "db"}),
    ("postgresql://u:pass:with:colons@h/d", {"user": "u", "password": "pass:with:colons", "host": "h", "dbname": "d"}),
    ("host=db.internal dbname=app user=app password='it''s'", None),
    ("host=db.internal port=5432 dbname=app user=app password='a b\\'c'",
     {"host": "db.internal", "port": "5432", "dbname": "app", "user": "app", "password": "a b'c"}),
])
def test_clean_urls_parse(url: str, expected: dict[str, str] | None) -> None:
    if expected is None:  # libpq's '' inside quotes is not an escape: refuse rather than guess
        with pytest.raises(UrlProblem):
            parse_database_url(url)
        return
    assert parse_database_url(url) == expected


@pytest.mark.parametrize("url,reason", [
    ("postgresql://u:Zq8/Hv@Jx3Ku@db:5432/app", "after the host part"),
    ("postgresql://u:Wk5:S3cr3tJm#Yb@db:5432/app", "space or a #"),
    ("postgresql://u:Fy2?Nd%Qg'Lp@db:5432/app", "after the host part"),
    ("postgresql://u:Bx4 Tm6 Rv9@db:5432/app", "space or a #"),
    ("postgresql://u:a@b@db:5432/app", "more than one @"),
    ("postgresql://u:bad%zzpw@db/app", "must be percent-encoded"),
    ("postgresql://u@db:Xq9/app", "not a number"),
    ("postgresql://u@db:99999/app", "not a number"),
    ("mysql://u@db/app", "does not start with postgresql://"),
    ("postgresql://", "names no host"),
    ("postgresql://:@/", "names no host"),
    ("postgresql:///app", "names no host"),
    ("postgresql://u@db:5432", "names no database"),
    ("postgresql://u@db:5432/", "names no database"),
    ("dbname=app", "names no host"),
])
def test_unclean_or_partial_urls_are_refused_with_a_fixed_reason(url: str, reason: str) -> None:
    with pytest.raises(UrlProblem) as problem:
        parse_database_url(url)
    assert reason in str(problem.value)
    for piece in ("Zq8", "Hv", "Jx3", "S3cr3t", "Nd%", "Tm6", "zzpw", "Xq9"):
        if piece in url:
            assert piece not in str(problem.value)


def test_a_refused_url_names_its_source_and_the_advice_but_nothing_of_itself(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="DATABASE_URL=${STAGING_DATABASE_URL}\n")
    with pytest.raises(ConfigError) as error:
        load_settings("staging", root, {"STAGING_DATABASE_URL": "postgresql://app:Zq8/Hv@Jx3Ku@db/app"})
    message = error.value.message
    assert message.startswith("envs/staging.env: DATABASE_URL is not a clean postgresql://")
    assert "percent-encode" in message and "POSTGRES_PASSWORD" in message
    assert not any(piece in message for piece in ("Zq8", "Jx3Ku", "Hv@", "app:"))


# --- the connection: one source, whole -----------------------------------------------------------------


def test_an_unset_reference_is_an_error_even_when_the_shell_names_a_server(tmp_path: Path) -> None:
    """Issue 13 case 1 by another road: `${STAGING_DATABASE_URL}` unset must not fall back to the shell's URL."""
    root = _root(tmp_path, staging__env="DATABASE_URL=${STAGING_DATABASE_URL}\n")
    with pytest.raises(ConfigError, match=r"^envs/staging.env: DATABASE_URL needs \$\{STAGING_DATABASE_URL\}"):
        load_settings("staging", root, {"DATABASE_URL": "postgresql://u@localhost/local_db",
                                        "STAGING_DATABASE_URL": ""})


def test_a_reference_may_be_set_in_the_local_file(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="DATABASE_URL=${STAGING_DATABASE_URL}\n",
                 staging__local__env="STAGING_DATABASE_URL=postgresql://app@staging-db/app\n")
    settings = load_settings("staging", root, {"DATABASE_URL": "postgresql://u@localhost/local_db"})
    assert settings.target.connection["host"] == "staging-db"
    assert settings.origin == (FROM_FILE, "envs/staging.env")


def test_local_file_naming_the_key_needs_no_reference_resolved(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="DATABASE_URL=${STAGING_DATABASE_URL}\n",
                 staging__local__env="DATABASE_URL=postgresql://app@mine/app\n")
    settings = load_settings("staging", root, {})
    assert settings.target.connection["host"] == "mine"
    assert settings.origin == (FROM_FILE, "envs/staging.local.env")


def test_local_env_embedded_only_when_nothing_names_a_server(tmp_path: Path) -> None:
    root = _root(tmp_path, local__env="MIGRATE_EMBEDDED=true\nMIGRATE_DISPOSABLE=true\n")
    embedded = load_settings("local", root, {})
    assert embedded.target.uses_embedded and embedded.origin.kind == FROM_EMBEDDED
    assert "MIGRATE_EMBEDDED=true" in embedded.target_line()
    shell = load_settings("local", root, {"POSTGRES_HOST": "db", "POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "app"})
    assert not shell.target.uses_embedded
    assert dict(shell.target.connection) == {"host": "db", "port": "5432", "dbname": "app", "user": "postgres",
                                             "password": "pw"}
    assert shell.origin.kind == FROM_SHELL
    assert shell.target_line() == ("environment local: postgresql://postgres:***@db:5432/app (from the shell "
                                   "environment: POSTGRES_HOST, POSTGRES_DB, POSTGRES_PASSWORD)")


def test_empty_values_never_override(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="DATABASE_URL=postgresql://u@db/app\nMAX_WAIT_TIME=7\nMIGRATE_SCHEMA=app\n",
                 x__local__env="DATABASE_URL=\nMAX_WAIT_TIME=\n")
    settings = load_settings("x", root, {"MAX_WAIT_TIME": "", "MIGRATE_SCHEMA": "", "MIGRATE_PROTECTED_SCHEMAS": "",
                                         "DATABASE_URL": "", "PGHOST": ""})
    assert settings.target.connection["host"] == "db"
    assert settings.target.max_wait == 7
    assert settings.schema == "app"
    assert "auth" in settings.lint.protected_schemas  # an empty list does not switch the protection off


def test_ordinary_settings_take_the_process_environment_over_the_files(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="DATABASE_URL=postgresql://u@db/app\nMAX_WAIT_TIME=7\nMIGRATE_STATEMENT_TIMEOUT=1min\n")
    settings = load_settings("x", root, {"MAX_WAIT_TIME": "30", "MIGRATE_STATEMENT_TIMEOUT": "2h",
                                         "MIGRATE_READ_TIMEOUT": "3"})
    assert (settings.target.max_wait, settings.target.read_wait) == (30, 3)
    assert settings.target.statement_timeout == "2h"  # not a guard: a long migration may need more


def test_nothing_names_a_server_is_refused_when_connecting_only(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="MIGRATE_SCHEMA=app\n")
    settings = load_settings("staging", root, {"PGDATABASE": "d", "PGUSER": "u"})  # no host anywhere
    assert settings.origin.kind == FROM_NOWHERE
    with pytest.raises(ConfigError) as error:
        require_target(settings)
    assert error.value.message == (
        "environment 'staging' names no database server: set DATABASE_URL (or POSTGRES_HOST) in envs/staging.env "
        "or envs/staging.local.env, or in the process environment, or give --host")


def test_flags_win_and_are_named(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="DATABASE_URL=postgresql://u:pw@db/app\n",
                 local__env="MIGRATE_EMBEDDED=true\n")
    settings = load_settings("x", root, {"DATABASE_URL": "postgresql://v@elsewhere/other"},
                             {"host": "flag-host", "password": "secret"})
    assert dict(settings.target.connection) == {"user": "u", "password": "secret", "host": "flag-host",
                                                "port": "5432", "dbname": "app"}
    assert settings.origin == (FROM_FLAGS, "flags --host --password over envs/x.env")
    local = load_settings("local", root, {}, {"dbname": "scratch"})
    assert local.target.uses_embedded and local.target.connection["dbname"] == "scratch"
    with pytest.raises(ConfigError, match="gives --port but no server: add --host"):
        load_settings("local", root, {}, {"port": "5433"})


# --- guards: stricter, never weaker ---------------------------------------------------------------------


@pytest.mark.parametrize("shell,confirm,tls", [
    ({}, True, True),
    ({"MIGRATE_CONFIRM": "false", "MIGRATE_REQUIRE_TLS": "0"}, True, True),
    ({"MIGRATE_CONFIRM": "", "MIGRATE_REQUIRE_TLS": ""}, True, True),
])
def test_the_shell_cannot_switch_a_files_guard_off(tmp_path: Path, shell: dict[str, str], confirm: bool,
                                                   tls: bool) -> None:
    root = _root(tmp_path, p__env="DATABASE_URL=postgresql://u@db/app\nMIGRATE_CONFIRM=true\nMIGRATE_REQUIRE_TLS=true\n")
    settings = load_settings("p", root, shell)
    assert (settings.safety.confirm, settings.safety.require_tls) == (confirm, tls)
    assert settings.target.connection["sslmode"] == "require"


def test_the_shell_can_switch_a_guard_on(tmp_path: Path) -> None:
    root = _root(tmp_path, s__env="DATABASE_URL=postgresql://u@db/app\n")
    settings = load_settings("s", root, {"MIGRATE_CONFIRM": "true", "MIGRATE_REQUIRE_TLS": "yes"})
    assert settings.safety.confirm and settings.safety.require_tls
    with pytest.raises(ConfigError, match="the process environment: MIGRATE_CONFIRM='perhaps' is not a boolean"):
        load_settings("s", root, {"MIGRATE_CONFIRM": "perhaps"})


@pytest.mark.parametrize("in_file,in_shell,sql_lock,run_lock", [
    ("", "", None, 60.0),
    ("", "MIGRATE_SQL_LOCK_TIMEOUT=2s MIGRATE_LOCK_TIMEOUT=5", "2s", 5.0),
    ("MIGRATE_SQL_LOCK_TIMEOUT=1s\nMIGRATE_LOCK_TIMEOUT=10\n", "MIGRATE_SQL_LOCK_TIMEOUT=0 MIGRATE_LOCK_TIMEOUT=600",
     "1s", 10.0),
    ("MIGRATE_SQL_LOCK_TIMEOUT=1min\nMIGRATE_LOCK_TIMEOUT=10\n", "MIGRATE_SQL_LOCK_TIMEOUT=1500 MIGRATE_LOCK_TIMEOUT=0",
     "1500", 0.0),
    ("MIGRATE_SQL_LOCK_TIMEOUT=0\n", "MIGRATE_SQL_LOCK_TIMEOUT=250ms", "250ms", 60.0),
])
def test_lock_timeouts_take_the_shorter(tmp_path: Path, in_file: str, in_shell: str, sql_lock: str | None,
                                        run_lock: float) -> None:
    root = _root(tmp_path, p__env="DATABASE_URL=postgresql://u@db/app\n" + in_file)
    shell = dict(pair.split("=") for pair in in_shell.split())
    settings = load_settings("p", root, shell)
    assert (settings.target.lock_timeout, settings.run.run_lock_timeout) == (sql_lock, run_lock)


def test_disposable_comes_from_the_environment_files_only(tmp_path: Path) -> None:
    root = _root(tmp_path, s__env="DATABASE_URL=postgresql://u@db/app\n",
                 d__env="DATABASE_URL=postgresql://u@db/app\n", d__local__env="MIGRATE_DISPOSABLE=true\n")
    assert not load_settings("s", root, {"MIGRATE_DISPOSABLE": "true"}).safety.disposable
    assert load_settings("d", root, {"MIGRATE_DISPOSABLE": "false"}).safety.disposable


@pytest.mark.parametrize("connection,local", [
    ({"host": "127.0.0.1"}, True), ({"host": "localhost"}, True), ({"host": "::1"}, True),
    ({"host": "/var/run/postgresql"}, True), ({"host": "127.0.0.1,db.example"}, False),
    ({"host": "db.example"}, False), ({"host": "10.0.0.5"}, False),
    ({"host": "localhost", "hostaddr": "10.0.0.5"}, False), ({}, False),
])
def test_what_counts_as_this_machine(connection: dict[str, str], local: bool) -> None:
    assert Target(connection=connection).is_local is local
    assert Target(embedded_pgdata=Path("/x")).is_local


def test_the_shipped_env_files_fit_the_rule() -> None:
    """local names no server (embedded, or the server compose or the shell names); staging and production
    name theirs through ${...}, which must be set: an exported DATABASE_URL never stands in for them."""
    from conftest import REPO

    shell = {"DATABASE_URL": "postgresql://me@127.0.0.1/mine"}
    local = load_settings("local", REPO, {})
    assert local.target.uses_embedded and local.safety.disposable
    assert load_settings("local", REPO, shell).origin.kind == FROM_SHELL
    for env in ("staging", "production"):
        with pytest.raises(ConfigError, match=rf"envs/{env}.env: DATABASE_URL needs \${{{env.upper()}_DATABASE_URL}}"):
            load_settings(env, REPO, shell)
        named = load_settings(env, REPO, {**shell, f"{env.upper()}_DATABASE_URL": "postgresql://app@db.example/app"})
        assert named.origin.kind == FROM_FILE and named.target.connection["host"] == "db.example"
        assert named.safety.require_tls and not named.safety.disposable


# --- through the doors ----------------------------------------------------------------------------------


def test_exported_database_url_with_an_unset_environment_variable_is_refused(tmp_path: Path) -> None:
    from conftest import Project

    root = tmp_path / "project"
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    _root(root, staging__env="DATABASE_URL=${STAGING_DATABASE_URL}\n")
    project = Project(root, "")
    result = project.run("status", "--env", "staging", env={"DATABASE_URL": "postgresql://u@127.0.0.1:1/local"})
    assert result.code == 2
    assert result.err.strip() == ("migrate: error: envs/staging.env: DATABASE_URL needs ${STAGING_DATABASE_URL}, "
                                  "which is not set; export STAGING_DATABASE_URL or set it in envs/staging.local.env")


def test_an_environment_naming_no_server_refuses_to_connect_but_lints(tmp_path: Path) -> None:
    from conftest import Project

    root = tmp_path / "project"
    project = Project(root, "")
    project.write("lanconnect", "001_a.sql", "SET search_path = langconnect, public;\n"
                                             "CREATE TABLE IF NOT EXISTS langconnect.a (id int);\n")
    _root(root, staging__env="MIGRATE_SCHEMA=langconnect\n")
    result = project.run("status", "--env", "staging", env={"PGDATABASE": "postgres", "PGPORT": "5432"})
    assert result.code == 2
    assert result.err.strip() == ("migrate: error: environment 'staging' names no database server: set DATABASE_URL "
                                  "(or POSTGRES_HOST) in envs/staging.env or envs/staging.local.env, or in the process "
                                  "environment, or give --host")
    assert project.run("lint", "--env", "staging").code == 0


def test_read_only_commands_say_what_they_wait_for_and_which_setting_to_raise(tmp_path: Path) -> None:
    import time

    from conftest import Project
    from pgcluster import free_port

    root = tmp_path / "project"
    project = Project(root, "")
    project.write("lanconnect", "001_a.sql", "SELECT 1;\n")
    port = free_port()
    _root(root, staging__env=f"DATABASE_URL=postgresql://app:pw@127.0.0.1:{port}/app\nMAX_WAIT_TIME=180\n")
    for args in (("status",), ("repair", "--dry-run"), ("history",)):
        began = time.monotonic()
        result = project.run(*args, "--env", "staging", env={"MIGRATE_READ_TIMEOUT": "1"})
        assert time.monotonic() - began < 5, args
        assert result.code == 3, result.err
        where = f"postgresql://app:***@127.0.0.1:{port}/app"
        assert f"migrate: waiting up to 1 s for the database at {where} (" in result.err
        last = result.err.strip().splitlines()[-1]
        assert last.startswith(f"migrate: error: database at {where} not ready after 1 s")
        assert result.err.strip().endswith("check that the server is running, or raise MIGRATE_READ_TIMEOUT")


def test_baselines_old_version_option_is_refused_not_a_silent_success(tmp_path: Path) -> None:
    from conftest import Project

    project = Project(tmp_path, "")
    result = project.run("baseline", "--version", "003")
    assert (result.code, result.out) == (2, "")
    assert result.err.strip() == ("migrate: error: --version prints the tool's version and takes nothing else; "
                                  "baseline's option is --up-to V")
    alone = project.run_process("--version")
    assert (alone.code, alone.err) == (0, "")
    from migrate.history.recorder import TOOL_VERSION

    assert alone.out == f"{TOOL_VERSION}\n"


def test_compose_staging_never_falls_back_to_the_stacks_db(db: object, tmp_path: Path) -> None:
    """migration-init with MIGRATE_ENV=staging and no STAGING_DATABASE_URL (compose passes it empty) stops
    with exit 2 naming the file and the variable; the stack's POSTGRES_* server is not touched."""
    from conftest import REPO, Database
    from test_compose import build_image_tree, migration_init, pointed_at, run_in_image

    assert isinstance(db, Database)
    command, environment = migration_init({"POSTGRES_PASSWORD": "compose-test-password", "MIGRATE_ENV": "staging"})
    assert command[-3:] == ["--env", "staging", "--yes"] and environment["STAGING_DATABASE_URL"] == ""
    image = build_image_tree(REPO, tmp_path / "app")
    result = run_in_image(image, command, pointed_at(environment, db))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == ("migrate: error: envs/staging.env: DATABASE_URL needs ${STAGING_DATABASE_URL}, "
                                     "which is not set; export STAGING_DATABASE_URL or set it in "
                                     "envs/staging.local.env")
    assert db.tables() == []


def test_the_earlier_scripts_variables_without_a_host_are_a_partial_target(tmp_path: Path) -> None:
    """The earlier script filled POSTGRES_HOST with localhost; now the server is named or the run refused
    (not the embedded server either: the variables meant some server)."""
    root = _root(tmp_path, local__env="MIGRATE_EMBEDDED=true\n")
    settings = load_settings("local", root, {"POSTGRES_DB": "app", "POSTGRES_PASSWORD": "pw", "PGUSER": "me"})
    assert not settings.target.uses_embedded
    with pytest.raises(ConfigError) as error:
        require_target(settings)
    assert error.value.message == (
        "environment 'local': the process environment sets POSTGRES_DB, POSTGRES_PASSWORD but no POSTGRES_HOST; "
        "name the server (POSTGRES_HOST, e.g. localhost for this machine, or DATABASE_URL) or unset them")
    assert load_settings("local", root, {"PGUSER": "me", "PGDATABASE": "x"}).target.uses_embedded  # libpq's own


def test_libpq_variables_that_would_redirect_a_named_target_are_refused(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="DATABASE_URL=postgresql://app@staging-db/app\n")
    with pytest.raises(ConfigError) as error:
        load_settings("staging", root, {"PGHOSTADDR": "10.0.0.9"})
    assert error.value.message == (
        "the process environment sets PGHOSTADDR, which libpq would use to reach another server than "
        "envs/staging.env names; unset it (or name the server in the process environment instead)")
    shell = load_settings("staging", _root(tmp_path / "b", staging__env=""), {"PGHOST": "db", "PGSERVICE": "svc"})
    assert shell.origin.kind == FROM_SHELL  # the shell names the server and the service together: its own choice
