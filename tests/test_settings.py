"""Environments: files, precedence, the three ways to name a database, errors, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.errors import ConfigError
from migrate.settings import load_settings


def _root(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "envs").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "envs" / name.replace("__", ".")).write_text(text)
    return tmp_path


def test_layers_file_then_local_file_then_process_environment(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="MIGRATE_SCHEMA=from_file\nMAX_WAIT_TIME=10\nMIGRATIONS_DIR=m1\n"
                 "DATABASE_URL=postgresql://u@h/db\n",
                 staging__local__env="MAX_WAIT_TIME=20\nMIGRATIONS_DIR=m2\n")
    settings = load_settings("staging", root, {"MIGRATIONS_DIR": "m3"})
    assert settings.schema == "from_file"
    assert settings.target.max_wait == 20
    assert settings.migrations_dir == root / "m3"


def test_database_url_wins_over_postgres_and_pg_variables(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="")
    settings = load_settings("x", root, {"DATABASE_URL": "postgresql://app:pw@db:6000/appdb", "PGHOST": "pg",
                                         "POSTGRES_HOST": "old-host"})
    assert dict(settings.target.connection) == {"user": "app", "password": "pw", "host": "db", "port": "6000",
                                         "dbname": "appdb"}


def test_the_files_server_wins_over_the_shells_whole(tmp_path: Path) -> None:
    """The connection comes from one source: a file naming a server takes none of the shell's connection keys."""
    root = _root(tmp_path, x__env="POSTGRES_HOST=old-host\n")
    settings = load_settings("x", root, {"DATABASE_URL": "postgresql://app:pw@db:6000/appdb", "PGHOST": "pg",
                                         "POSTGRES_PASSWORD": "from-shell", "PGPORT": "7000"})
    assert dict(settings.target.connection) == {"host": "old-host", "port": "5432", "dbname": "postgres",
                                                "user": "postgres"}
    assert settings.origin == ("file", "envs/x.env")


def test_earlier_scripts_postgres_variables_with_its_defaults(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="POSTGRES_HOST=db.internal\nPOSTGRES_PASSWORD=s3cret\n")
    settings = load_settings("x", root, {})
    assert dict(settings.target.connection) == {"host": "db.internal", "port": "5432", "dbname": "postgres",
                                         "user": "postgres", "password": "s3cret"}


def test_libpq_pg_variables(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="")
    settings = load_settings("x", root, {"PGHOST": "h", "PGPORT": "6543", "PGDATABASE": "d", "PGUSER": "u"})
    assert dict(settings.target.connection) == {"host": "h", "port": "6543", "dbname": "d", "user": "u"}
    assert not settings.target.uses_embedded


def test_local_uses_embedded_unless_a_database_is_named(tmp_path: Path) -> None:
    root = _root(tmp_path, local__env="MIGRATE_EMBEDDED=true\n")
    assert load_settings("local", root, {}).target.embedded_pgdata == root / ".pgdata"
    assert load_settings("local", root, {"DATABASE_URL": "postgresql://u@h/d"}).target.embedded_pgdata is None


def test_unknown_environment_names_the_missing_file(tmp_path: Path) -> None:
    root = _root(tmp_path, local__env="", staging__env="")
    with pytest.raises(ConfigError) as error:
        load_settings("prod", root, {})
    assert error.value.message == (
        "unknown environment 'prod': envs/prod.env does not exist (known environments: local, staging)")
    assert error.value.exit_code == 2


def test_unset_secret_reference_names_file_and_key(tmp_path: Path) -> None:
    root = _root(tmp_path, staging__env="DATABASE_URL=${STAGING_DATABASE_URL}\n")
    with pytest.raises(ConfigError) as error:
        load_settings("staging", root, {})
    assert error.value.message == (
        "envs/staging.env: DATABASE_URL needs ${STAGING_DATABASE_URL}, which is not set; export "
        "STAGING_DATABASE_URL or set it in envs/staging.local.env")
    settings = load_settings("staging", root, {"STAGING_DATABASE_URL": "postgresql://u:pw@h/d"})
    assert settings.target.connection["host"] == "h"


def test_tls_required_environments_refuse_sslmode_disable(tmp_path: Path) -> None:
    root = _root(tmp_path, production__env="DATABASE_URL=${PRODUCTION_DATABASE_URL}\nMIGRATE_REQUIRE_TLS=true\n")
    settings = load_settings("production", root, {"PRODUCTION_DATABASE_URL": "postgresql://u@h/d"})
    assert settings.target.connection["sslmode"] == "require"
    with pytest.raises(ConfigError) as error:
        load_settings("production", root, {"PRODUCTION_DATABASE_URL": "postgresql://u@h/d?sslmode=disable"})
    assert "requires TLS" in error.value.message and error.value.message.startswith("envs/production.env:")


def test_bad_numbers_and_flags_name_file_and_key(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="MAX_WAIT_TIME=soon\n")
    with pytest.raises(ConfigError, match=r"^envs/x.env: MAX_WAIT_TIME='soon' is not a number of seconds$"):
        load_settings("x", root, {})
    root2 = _root(tmp_path / "b", x__env="MIGRATE_CONFIRM=maybe\n")
    with pytest.raises(ConfigError, match=r"^envs/x.env: MIGRATE_CONFIRM='maybe' is not a boolean"):
        load_settings("x", root2, {})


def test_masked_dsn_never_shows_the_password(tmp_path: Path) -> None:
    root = _root(tmp_path, x__env="DATABASE_URL=postgresql://app:hunter2@db:5432/appdb?sslmode=require\n")
    settings = load_settings("x", root, {})
    assert settings.target.masked_dsn() == "postgresql://app:***@db:5432/appdb?sslmode=require"
    assert "hunter2" not in settings.target.masked_dsn()


def test_committed_staging_and_production_files_hold_no_secrets() -> None:
    from conftest import REPO

    for env in ("staging", "production"):
        text = (REPO / "envs" / f"{env}.env").read_text()
        assert f"DATABASE_URL=${{{env.upper()}_DATABASE_URL}}" in text
        assert "MIGRATE_REQUIRE_TLS=true" in text
        assert "PASSWORD" not in text
    assert "envs/*.local.env" in (REPO / ".gitignore").read_text()
