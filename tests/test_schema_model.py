"""The schema model drift compares (issue 15): after `migrate`, two databases built from the same files
compare equal; each hand edit on one of them, made alone, is exactly one finding naming the object, and
after its revert they compare equal again.

Both databases get the Supabase-shaped platform (supabase_fixture) and the realistic app
(tests/supabase_app), migrated by the real `migrate`. They are built once per server (module scope):
every edit is reverted before the next test reads the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Database, Project, Server, fresh_database
from supabase_fixture import copy_app, has_extension, install_platform

from migrate.checks.reach import merge_all, reach_of_file
from migrate.checks.schema_model import Finding, Model, compare, read_model

SCHEMA = "langconnect"


@dataclass
class Pair:
    """Two migrated databases: `expected` stays as the files left it, `target` is edited and reverted."""

    expected: Database
    target: Database
    attached: set[tuple[str, str, str]]
    model: Model  # the expected database's model, read once
    vector: bool  # the app's pgvector file ran (the server has pgvector)

    def read(self, owners: bool = True) -> Model:
        connection = self.target.connect()
        try:
            return read_model(connection, SCHEMA, self.attached, owners=owners)
        finally:
            connection.close()


def _migrated(stack: ExitStack, server: Server, root: Path, vector: bool) -> Database:
    database = stack.enter_context(fresh_database(server))
    connection = database.connect()
    try:
        install_platform(connection)
    finally:
        connection.close()
    (root / "envs").mkdir(parents=True)
    copy_app(root / "migrations", vector=vector)
    (root / "envs" / "local.env").write_text(f"DATABASE_URL={database.url}\nMAX_WAIT_TIME=5\n")
    result = Project(root, database.url).run("migrate")
    assert result.code == 0, result.err
    return database


@pytest.fixture(scope="module")
def pair(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    connection = server.connect()
    try:
        vector = has_extension(connection, "vector")
    finally:
        connection.close()
    with ExitStack() as stack:
        expected = _migrated(stack, server, tmp_path_factory.mktemp("expected"), vector)
        target = _migrated(stack, server, tmp_path_factory.mktemp("target"), vector)
        files = sorted((tmp_path_factory.getbasetemp()).glob("expected*/migrations/*/*.sql"))
        attached = merge_all(reach_of_file(path.read_text()) for path in files).attachments
        connection = expected.connect()
        try:
            model = read_model(connection, SCHEMA, attached)
        finally:
            connection.close()
        yield Pair(expected, target, attached, model, vector)


def test_after_migrate_two_databases_have_the_same_model(pair: Pair) -> None:
    actual = pair.read()
    assert compare(pair.model, actual) == []
    assert actual.objects == pair.model.objects
    assert actual.not_compared == pair.model.not_compared == []
    kinds = {kind for kind, _ in actual.objects}
    assert kinds >= {"schema", "table", "column", "constraint", "index", "view", "sequence", "function", "trigger",
                     "policy", "type", "grant", "owner"}
    for key in sorted(actual.objects):
        print(key, "=>", actual.objects[key])


def test_finding_reads_as_a_line() -> None:
    finding = Finding("changed", "column", "langconnect.documents.title", "text; not null", "text")
    assert str(finding) == "changed column langconnect.documents.title"
