"""The realistic set: a generated project shaped like the ones users run (issue 16).

One-table sets measure the per-file machinery; real projects are different: files of 20-100 KB
holding dozens of statements, long PL/pgSQL functions, DO blocks, row-level-security policies,
an enum, comments everywhere, a few files that cannot run in a transaction (CREATE INDEX
CONCURRENTLY) and a seed file that needs psql (`\\set`, `COPY ... FROM stdin`). This module
writes such a project, deterministically (a fixed seed), over both tracks:

- lanconnect: the app schema `bench_app` (tables, functions, policies, views, triggers, seeds);
- client_specific: `bench_client`, whose tables reference the app's.

Besides the files it returns what the other runners need to run the same statements:
`floor_plan` (bench/floor.py runs a file outside a transaction statement by statement, and the
psql file through psql, as the tool must) and `dbmate_text` (dbmate's copy of the psql file:
plain INSERTs; bench/run.py gives dbmate each CONCURRENTLY statement as a migration of its own).
"""

from __future__ import annotations

import random
from typing import NamedTuple

WORDS = ("account", "invoice", "project", "member", "channel", "document", "ticket", "comment", "device",
         "session", "report", "payment", "vendor", "order", "asset", "contract", "webhook", "audit")
PROSE = ("This migration is part of the generated realistic set: it reads like a real project's file, with",
         "a header that explains why, columns that carry comments, and functions whose bodies are long.",
         "Rows are owned by a user; row-level security keeps each user to their own rows and the service",
         "role sees everything. Indexes follow the queries the application makes most often.",
         "Every statement can run again without harm (IF NOT EXISTS, CREATE OR REPLACE, guarded DO blocks).")


class GeneratedFile(NamedTuple):
    """One migration file of the set and how the floor and dbmate run it."""

    track: str
    name: str
    text: str
    statements: tuple[str, ...] | None = None  # set: outside a transaction, statement by statement
    psql: bool = False  # needs psql (meta-commands, COPY data)
    dbmate_text: str | None = None  # what dbmate runs instead (None: the same text)


def _header(rng: random.Random, title: str, lines: int) -> str:
    body = [f"-- {title}", "--"]
    for _ in range(lines):
        body.append(f"-- {rng.choice(PROSE)}")
    return "\n".join(body) + "\n\nSET search_path = bench_app, public;\n\n"


def _function(rng: random.Random, schema: str, name: str, table: str, size: int) -> str:
    """A PL/pgSQL function with a long body: declarations, branches, a loop, comments, dynamic SQL."""
    lines = [f"CREATE OR REPLACE FUNCTION {schema}.{name}(p_owner uuid, p_limit integer DEFAULT 100)",
             "RETURNS TABLE (item_id bigint, score numeric)",
             "LANGUAGE plpgsql STABLE SECURITY INVOKER",
             "SET search_path = pg_catalog, public",
             "AS $function$",
             "DECLARE",
             "    v_total   bigint := 0;",
             "    v_factor  numeric := 1.0;",
             "    v_row     record;",
             "    v_query   text;",
             "BEGIN",
             "    -- the caller may ask for everything; cap it so one call cannot scan the whole table",
             "    IF p_limit IS NULL OR p_limit > 10000 THEN",
             "        p_limit := 10000;",
             "    ELSIF p_limit < 1 THEN",
             "        RAISE EXCEPTION 'limit must be positive, got %', p_limit USING ERRCODE = '22023';",
             "    END IF;"]
    for step in range(size):
        word = rng.choice(WORDS)
        lines += [f"    -- step {step}: weigh {word} rows by their age and their state",
                  f"    SELECT count(*) INTO v_total FROM {table} t WHERE t.owner_id = p_owner AND t.kind = '{word}';",
                  f"    IF v_total > {rng.randint(10, 900)} THEN",
                  f"        v_factor := v_factor * {rng.randint(101, 199) / 100};",
                  "    ELSE",
                  f"        v_factor := v_factor + {rng.randint(1, 99) / 100};",
                  "    END IF;"]
    lines += ["    v_query := format('SELECT id, %s * extract(epoch FROM now() - created_at) FROM %s '",
              "                      'WHERE owner_id = $1 ORDER BY created_at DESC LIMIT $2', v_factor,",
              f"                      '{table}');",
              "    FOR v_row IN EXECUTE v_query USING p_owner, p_limit LOOP",
              "        item_id := v_row.id;",
              "        score := v_total * v_factor;",
              "        RETURN NEXT;",
              "    END LOOP;",
              "    RETURN;",
              "END;",
              "$function$;",
              ""]
    return "\n".join(lines) + "\n"


def _table_block(rng: random.Random, schema: str, table: str, references: str | None) -> str:
    """A table with comments, indexes, row-level security, policies, a trigger and a view."""
    name = table.split(".")[-1]
    extra = "".join(f"    {rng.choice(WORDS)}_{i} text,\n" for i in range(rng.randint(3, 8)))
    foreign = f"    parent_id bigint REFERENCES {references} (id) ON DELETE CASCADE,\n" if references else ""
    parts = [
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        "    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
        "    owner_id uuid NOT NULL DEFAULT bench_auth.uid(),\n"
        "    kind text NOT NULL DEFAULT 'account',\n"
        "    state bench_app.item_state NOT NULL DEFAULT 'draft',\n"
        "    body jsonb NOT NULL DEFAULT '{}'::jsonb,\n"
        f"{foreign}{extra}"
        "    created_at timestamptz NOT NULL DEFAULT now(),\n"
        "    updated_at timestamptz NOT NULL DEFAULT now()\n"
        ");\n",
        f"COMMENT ON TABLE {table} IS 'Rows of {name}: one per {rng.choice(WORDS)}, owned by a user.';\n",
        f"COMMENT ON COLUMN {table}.owner_id IS 'The user who owns the row (bench_auth.uid() when inserted).';\n",
        f"COMMENT ON COLUMN {table}.state IS 'Where the row is in its life: draft, active, archived.';\n",
        f"CREATE INDEX IF NOT EXISTS {name}_owner_idx ON {table} (owner_id, created_at DESC);\n",
        f"CREATE INDEX IF NOT EXISTS {name}_kind_idx ON {table} (kind) WHERE state = 'active';\n",
        f"CREATE INDEX IF NOT EXISTS {name}_body_idx ON {table} USING gin (body jsonb_path_ops);\n",
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n",
        f"DROP POLICY IF EXISTS {name}_select_own ON {table};\n",
        f"CREATE POLICY {name}_select_own ON {table} FOR SELECT USING (owner_id = bench_auth.uid());\n",
        f"DROP POLICY IF EXISTS {name}_write_own ON {table};\n",
        f"CREATE POLICY {name}_write_own ON {table} FOR ALL USING (owner_id = bench_auth.uid()) "
        "WITH CHECK (owner_id = bench_auth.uid());\n",
        f"DROP TRIGGER IF EXISTS {name}_touch ON {table};\n",
        f"CREATE TRIGGER {name}_touch BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION bench_app.touch();\n",
        f"CREATE OR REPLACE VIEW {table}_recent AS\n    SELECT id, owner_id, kind, state, created_at FROM {table}\n"
        "    WHERE created_at > now() - interval '30 days';\n",
        f"GRANT SELECT ON {table}, {table}_recent TO PUBLIC;\n",
        "DO $do$\nBEGIN\n"
        f"    -- a constraint added only once: a second run of this file must not fail\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{name}_body_object') THEN\n"
        f"        ALTER TABLE {table} ADD CONSTRAINT {name}_body_object CHECK (jsonb_typeof(body) = 'object');\n"
        "    END IF;\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{name}_kind_known') THEN\n"
        f"        ALTER TABLE {table} ADD CONSTRAINT {name}_kind_known CHECK (length(kind) BETWEEN 1 AND 64);\n"
        "    END IF;\nEND\n$do$;\n",
        f"INSERT INTO {table} (owner_id, kind, body)\n"
        f"SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g % 7), 12, '0'))::uuid, '{rng.choice(WORDS)}', "
        "jsonb_build_object('n', g)\n"
        f"FROM generate_series(1, {rng.randint(20, 80)}) AS g;\n",
    ]
    return "\n".join(parts) + "\n"


def _first_file() -> str:
    return (
        "-- The app schema, the auth stand-in and the shared pieces every later file uses.\n\n"
        "CREATE SCHEMA IF NOT EXISTS bench_app;\nCREATE SCHEMA IF NOT EXISTS bench_auth;\n"
        "CREATE SCHEMA IF NOT EXISTS bench_client;\n"
        "SET search_path = bench_app, public;\n"
        "CREATE OR REPLACE FUNCTION bench_auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$\n"
        "    SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),\n"
        "                    '00000000-0000-0000-0000-000000000000')::uuid\n$$;\n"
        "DO $do$\nBEGIN\n"
        "    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace\n"
        "                   WHERE n.nspname = 'bench_app' AND t.typname = 'item_state') THEN\n"
        "        CREATE TYPE bench_app.item_state AS ENUM ('draft', 'active');\n"
        "    END IF;\nEND\n$do$;\n"
        "CREATE OR REPLACE FUNCTION bench_app.touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND;\n$$;\n"
    )


def _regular_file(rng: random.Random, track: str, number: int, tables: list[str], target_kb: int) -> str:
    """A transactional file of about target_kb KB: tables with their pieces, then long functions."""
    schema = "bench_app" if track == "lanconnect" else "bench_client"
    text = _header(rng, f"{track} {number}: {rng.choice(WORDS)}s and what uses them", rng.randint(6, 20))
    text = text.replace("SET search_path = bench_app, public;", f"SET search_path = {schema}, public;")
    tables_here = 0
    functions = 0
    while len(text) < target_kb * 1024:
        # about as many bytes of tables (with their indexes, policies, triggers, views, seeds) as of functions
        if tables_here == 0 or (rng.random() < 0.6 and tables_here < 12):
            table = f"{schema}.{rng.choice(WORDS)}_{number:04d}_{tables_here}"
            parent = rng.choice(tables) if tables and track == "client_specific" else None
            text += _table_block(rng, schema, table, parent)
            tables.append(table)
            tables_here += 1
        else:
            text += _function(rng, schema, f"score_{number:04d}_{functions}", rng.choice(tables), rng.randint(6, 24))
            functions += 1
    return text


def _concurrent_file(rng: random.Random, number: int, tables: list[str]) -> tuple[str, tuple[str, ...]]:
    """Indexes built without blocking writes: the tool runs the file outside a transaction."""
    chosen = rng.sample(tables, k=min(len(tables), rng.randint(3, 6)))
    statements = tuple(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {t.split('.')[-1]}_upd_{number:04d} ON {t} "
                       f"(updated_at)" for t in chosen)
    text = _header(rng, f"lanconnect {number}: indexes built CONCURRENTLY (outside a transaction)", 4)
    return text + ";\n".join(statements) + ";\n", ("SET search_path = bench_app, public",) + statements


def _enum_file(number: int) -> str:
    return (f"-- lanconnect {number}: rows can be archived now\n\nSET search_path = bench_app, public;\n"
            "ALTER TYPE bench_app.item_state ADD VALUE IF NOT EXISTS 'archived';\n"
            "COMMENT ON TYPE bench_app.item_state IS 'draft -> active -> archived';\n")


def _psql_file(rng: random.Random, number: int, rows: int) -> tuple[str, str]:
    """A seed file as pg_dump writes them: psql variables and COPY data (needs psql); and dbmate's INSERTs."""
    data = [(i, rng.choice(WORDS), f"{rng.choice(WORDS)} {i} \\ {rng.randint(0, 99999)}") for i in range(1, rows + 1)]
    head = (f"-- client_specific {number}: reference data, loaded as pg_dump writes it\n\n"
            "SET search_path = bench_client, public;\n"
            "CREATE TABLE IF NOT EXISTS bench_client.catalog_entries (id integer PRIMARY KEY, kind text NOT NULL, "
            "label text NOT NULL);\n")
    copy = ("\\set entry_table bench_client.catalog_entries\n"
            "COPY :entry_table (id, kind, label) FROM stdin;\n"
            + "".join(f"{i}\t{kind}\t{label.replace(chr(92), chr(92) * 2)}\n" for i, kind, label in data) + "\\.\n"
            "COMMENT ON TABLE :entry_table IS 'seeded with COPY';\n")
    inserts = ("INSERT INTO bench_client.catalog_entries (id, kind, label) VALUES\n"
               + ",\n".join(f"({i}, '{kind}', '{label}')" for i, kind, label in data) + ";\n"
               "COMMENT ON TABLE bench_client.catalog_entries IS 'seeded with COPY';\n")
    return head + copy, head + inserts


def generate(versions: int = 240, seed: int = 16) -> list[GeneratedFile]:
    """The set's files in order: two thirds lanconnect, one third client_specific.

    Every 25th lanconnect version builds indexes CONCURRENTLY; one version extends the enum; the
    middle client_specific version is the psql seed file; the rest are 20-100 KB transactional files.
    """
    rng = random.Random(seed)
    app_count = (2 * versions) // 3
    files: list[GeneratedFile] = [GeneratedFile("lanconnect", "0001_app_schema.sql", _first_file())]
    app_tables: list[str] = []
    for number in range(2, app_count + 1):
        name = f"{number:04d}_{rng.choice(WORDS)}s.sql"
        if number % 25 == 0 and app_tables:
            text, statements = _concurrent_file(rng, number, app_tables)
            files.append(GeneratedFile("lanconnect", name.replace(".sql", "_concurrently.sql"), text, statements))
        elif number == app_count // 2:
            files.append(GeneratedFile("lanconnect", name.replace(".sql", "_archived_state.sql"), _enum_file(number)))
        else:
            files.append(GeneratedFile("lanconnect", name, _regular_file(rng, "lanconnect", number, app_tables,
                                                                         rng.randint(20, 100))))
    client_tables = list(app_tables)
    client_count = versions - app_count
    for number in range(1, client_count + 1):
        name = f"{number:04d}_{rng.choice(WORDS)}_extension.sql"
        if number == client_count // 2:
            text, inserts = _psql_file(rng, number, 1500)
            files.append(GeneratedFile("client_specific", name.replace(".sql", "_seed.sql"), text, psql=True,
                                       dbmate_text=inserts))
        else:
            files.append(GeneratedFile("client_specific", name, _regular_file(
                rng, "client_specific", number, client_tables, rng.randint(20, 100))))
    return files
