"""inv new: the next number of a track, a slugged name, a template that lints clean and applies twice."""

from __future__ import annotations

import pytest
from conftest import Database, Project

from migrate.files.authoring import quote_schema, slugify


def test_new_takes_the_next_number_after_the_highest(files_project: Project) -> None:
    files_project.write("lanconnect", "001_a.sql", "SELECT 1;")
    files_project.write("lanconnect", "003_c.sql", "SELECT 1;")
    files_project.write("client_specific", "007_x.sql", "SELECT 1;")
    result = files_project.inv("new", "Add user preferences!")
    assert result.code == 0, result.err
    assert result.out.strip() == "migrations/lanconnect/004_add_user_preferences.sql"
    text = (files_project.root / "migrations/lanconnect/004_add_user_preferences.sql").read_text()
    assert text.startswith("-- 004: Add user preferences!\n-- Track lanconnect, created ")
    assert "\nSET search_path = langconnect, public;\n" in text


def test_new_in_the_client_track_and_through_python_m_migrate(files_project: Project) -> None:
    files_project.write("client_specific", "007_x.sql", "SELECT 1;")
    result = files_project.run("new", "add", "billing", "plans", "--track", "client_specific")
    assert result.code == 0, result.err
    assert result.out.strip() == "migrations/client_specific/008_add_billing_plans.sql"


def test_first_file_of_an_empty_track_is_001_and_the_folder_is_created(files_project: Project) -> None:
    result = files_project.run("new", "create collections")
    assert result.code == 0, result.err
    assert result.out.strip() == "migrations/lanconnect/001_create_collections.sql"


def test_wider_numbers_keep_their_width(files_project: Project) -> None:
    files_project.write("lanconnect", "0099_a.sql", "SELECT 1;")
    result = files_project.run("new", "next")
    assert result.out.strip() == "migrations/lanconnect/0100_next.sql"


def test_template_uses_the_environments_schema(files_project: Project) -> None:
    files_project.env_file("local", "MIGRATE_SCHEMA=Tenant-A\n")
    result = files_project.run("new", "x")
    text = (files_project.root / result.out.strip()).read_text()
    assert 'SET search_path = "Tenant-A", public;' in text
    assert '-- CREATE TABLE IF NOT EXISTS "Tenant-A".example (' in text


def test_new_refuses_a_description_already_used_in_the_track(files_project: Project) -> None:
    files_project.write("lanconnect", "004_add_user_preferences.sql", "SELECT 1;")
    result = files_project.run("new", "add user preferences")
    assert result.code == 4
    assert result.err.strip() == (
        "migrate: error: migrations/lanconnect/004_add_user_preferences.sql already describes "
        "'add_user_preferences' in track lanconnect; choose another description "
        "(or edit that file if it was never applied)"
    )
    assert sorted(p.name for p in (files_project.root / "migrations/lanconnect").iterdir()) == [
        "004_add_user_preferences.sql"]


def test_the_same_description_in_the_other_track_is_fine(files_project: Project) -> None:
    files_project.write("client_specific", "001_add_user_preferences.sql", "SELECT 1;")
    result = files_project.run("new", "add user preferences")
    assert result.code == 0, result.err
    assert result.out.strip() == "migrations/lanconnect/001_add_user_preferences.sql"


@pytest.mark.parametrize("args, message", [
    (("new", "???"), "the description '???' has no letters or digits to name the file"),
    (("new", "x", "--track", "clients"), "unknown track 'clients': use one of lanconnect, client_specific"),
    (("new",), "the description '' has no letters or digits to name the file"),
])
def test_bad_input_is_a_usage_error(files_project: Project, args: tuple[str, ...], message: str) -> None:
    result = files_project.run(*args)
    assert result.code == 2
    assert message in result.err
    assert not (files_project.root / "migrations" / "lanconnect").exists() or not any(
        (files_project.root / "migrations" / "lanconnect").iterdir())


def test_slugify_and_quote_schema() -> None:
    assert slugify("  Add Übersicht: v2 (fast)  ") == "add_ubersicht_v2_fast"
    assert len(slugify("x" * 200)) == 60
    assert quote_schema("langconnect") == "langconnect"
    assert quote_schema("user") == '"user"'


def test_new_file_lints_clean_and_its_example_applies_twice(project: Project, db: Database) -> None:
    created = project.run("new", "add example")
    assert created.code == 0, created.err
    path = project.root / created.out.strip()
    lint = project.run("lint", str(path))
    assert lint.code == 0 and lint.out.strip() == "Lint: 1 file(s) clean.", lint.out + lint.err
    # the commented example, switched on, is valid and idempotent SQL
    lines = path.read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("-- CREATE TABLE")))
    path.write_text("\n".join(lines[:start] + [line[3:] for line in lines[start:]]) + "\n")
    project.write("lanconnect", "000_schema.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;")
    assert project.run("lint", str(path)).code == 0
    applied = project.run("migrate")
    assert applied.code == 0, applied.err
    assert db.history("lanconnect") == [("000", "applied"), ("001", "applied")]
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(path.read_text())  # the second run
    finally:
        connection.close()
    columns = db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'langconnect' "
                       "AND table_name = 'example' ORDER BY ordinal_position")
    assert columns == [("id",), ("created_at",), ("note",)]
