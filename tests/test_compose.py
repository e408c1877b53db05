"""The docker compose stack, checked honestly on machines without a Docker engine.

- docker-compose.yml validates against the compose specification (check-jsonschema's vendored
  copy, no network), and its start-up order is db (healthy) -> migration-init (exit 0) -> app.
- The migration-init command and environment are read from the compose file, interpolated the
  way compose does, and run in a copy of the image's /app built by following the Dockerfile's
  COPY lines and .dockerignore, against a real test database.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Database
from psycopg2.extensions import parse_dsn

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_VARIABLES = {"POSTGRES_PASSWORD": "compose-test-password"}  # the one variable compose requires
CONNECTION_KEYS = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")
INTERPOLATION = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(path.read_text())


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        current = variables.get(name)
        unset = current is None or (operator is not None and operator.startswith(":") and current == "")
        if operator in (":-", "-"):
            return argument if unset else current
        if operator in (":?", "?"):
            if unset:
                raise AssertionError(f"compose would refuse to start: {name}: {argument}")
            return current
        return current or ""

    return INTERPOLATION.sub(replace, value)


def migration_init(variables: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The migration-init service's command and environment, after compose's interpolation."""
    service = load_compose()["services"]["migration-init"]
    variables = variables if variables is not None else COMPOSE_VARIABLES
    command = [interpolate(str(part), variables) for part in service["command"]]
    environment = {key: interpolate(str(value), variables) for key, value in service["environment"].items()}
    return command, environment


# --- the image's /app, as the Dockerfile and .dockerignore define it -------------------------


def dockerignore_patterns(context: Path) -> list[tuple[bool, str]]:
    patterns = []
    for line in (context / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def is_ignored(relative: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder covers its files."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negated, pattern in patterns:
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negated
    return ignored


def dockerfile_copies(context: Path) -> list[tuple[str, str]]:
    copies = []
    for line in (context / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            assert not any(w.startswith("--from") for w in words), line
            *sources, destination = words[1:]
            copies.extend((source, destination) for source in sources)
    return copies


def build_image_tree(context: Path, target: Path) -> Path:
    """Copy what the Dockerfile's COPY lines take from the build context into `target` (/app)."""
    patterns = dockerignore_patterns(context)
    for source, destination in dockerfile_copies(context):
        source_path = context / source.rstrip("/")
        files = [source_path] if source_path.is_file() else sorted(p for p in source_path.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(context).as_posix()
            if is_ignored(relative, patterns):
                continue
            if source_path.is_file():
                out = target / destination / path.name if destination.endswith("/") else target / destination
            else:
                out = target / destination / path.relative_to(source_path)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)
    return target


def run_in_image(image: Path, command: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the container's command in its WORKDIR with only the container's environment for the tool."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PG", "POSTGRES_", "MIGRATE_", "DATABASE_URL", "MAX_WAIT", "PYTHONPATH",
                                 "STAGING_", "PRODUCTION_"))}
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    return subprocess.run(argv, cwd=image, env={**base, **environment}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def pointed_at(environment: dict[str, str], db: Database) -> dict[str, str]:
    """The compose environment with its connection keys pointed at the test database."""
    assert set(CONNECTION_KEYS) <= set(environment), "migration-init must get its connection from these keys"
    assert environment["POSTGRES_HOST"] == "db"
    params = parse_dsn(db.url)
    return dict(environment, POSTGRES_HOST=params["host"], POSTGRES_PORT=params.get("port", "5432"),
                POSTGRES_DB=params["dbname"], POSTGRES_USER=params.get("user", "postgres"),
                POSTGRES_PASSWORD=params.get("password") or "unused-with-trust-auth")


def repo_versions() -> dict[str, list[tuple[str, str]]]:
    return {track: sorted((p.name.split("_")[0], "applied") for p in (REPO / "migrations" / track).glob("*.sql"))
            for track in ("lanconnect", "client_specific")}


# --- the compose file --------------------------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=60)


def test_compose_file_validates_against_the_compose_specification(tmp_path: Path) -> None:
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout
    # The validator really checks: a wrong condition is refused.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("service_completed_successfully", "service_finished"))
    refused = check_jsonschema(broken)
    assert refused.returncode == 1
    assert "'service_finished' is not one of" in refused.stdout


def test_start_up_order_is_db_healthy_then_migration_init_success_then_app() -> None:
    services = load_compose()["services"]
    assert services["app"]["depends_on"] == {"migration-init": {"condition": "service_completed_successfully"}}
    assert services["migration-init"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migration-init"]["restart"] == "no"  # a failed run must not loop and mask the error
    test = services["db"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert "pg_isready --host=127.0.0.1" in test[1] and '--command="SELECT 1"' in test[1]
    assert "pgvector" in services["db"]["image"]


def test_migration_init_runs_the_tool_with_wait_and_no_password_in_the_file() -> None:
    service = load_compose()["services"]["migration-init"]
    assert service["build"] == "."
    assert service["command"][:4] == ["python", "-m", "migrate", "migrate"]
    assert service["environment"]["MAX_WAIT_TIME"] == "${MAX_WAIT_TIME:-180}"
    for name in ("db", "migration-init", "app"):
        environment = load_compose()["services"][name]["environment"]
        assert environment["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?"), name
    with pytest.raises(AssertionError, match="compose would refuse to start: POSTGRES_PASSWORD"):
        migration_init(variables={})
    command, environment = migration_init()
    assert command == ["python", "-m", "migrate", "migrate", "--env", "local", "--yes"]
    assert environment["MAX_WAIT_TIME"] == "180"
    assert migration_init({**COMPOSE_VARIABLES, "MIGRATE_ENV": "production"})[0][5] == "production"


def test_dockerfile_is_small_non_root_and_bakes_in_no_secret(tmp_path: Path) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    assert re.search(r"pip install .*-r requirements\.txt", dockerfile)
    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.MULTILINE)
    for line in dockerfile.splitlines():
        if line.split()[:1] in (["ENV"], ["ARG"]):
            assert not re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", line), line
    assert {source for source, _ in dockerfile_copies(REPO)} == {
        "requirements.txt", "migrate/", "migrations/", "envs/", "tasks.py"}
    # bytecode is baked in after the code is copied: PYTHONDONTWRITEBYTECODE=1 would otherwise have every
    # container start compile migrate/ again (bench/RESULTS.md)
    compiled = re.search(r"^RUN python -m compileall -q migrate$", dockerfile, re.MULTILINE)
    assert compiled and compiled.start() > dockerfile.index("COPY migrate/")
    # A developer's secrets next to the code never reach the image.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "requirements.txt", "tasks.py"):
        shutil.copy2(REPO / name, context / name)
    for folder in ("migrate", "migrations", "envs"):
        shutil.copytree(REPO / folder, context / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (context / "envs" / "production.local.env").write_text("PRODUCTION_DATABASE_URL=postgresql://x:S3cr3t-Xq@h/db\n")
    (context / ".env").write_text("POSTGRES_PASSWORD=S3cr3t-Xq\n")
    (context / "migrate" / "__pycache__").mkdir()
    (context / "migrate" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"")
    image = build_image_tree(context, tmp_path / "app")
    files = sorted(p.relative_to(image).as_posix() for p in image.rglob("*") if p.is_file())
    assert "envs/production.local.env" not in files and ".env" not in files
    assert not any("__pycache__" in f for f in files)
    assert {"tasks.py", "requirements.txt", "envs/local.env", "envs/production.env", "migrate/cli.py",
            "migrate/__main__.py"} <= set(files)
    assert not any("S3cr3t-Xq" in p.read_text(errors="replace") for p in image.rglob("*") if p.is_file())


# --- the exact migration-init command against a real database ---------------------------------


def test_migration_init_command_applies_every_migration(db: Database, tmp_path: Path) -> None:
    command, environment = migration_init()
    image = build_image_tree(REPO, tmp_path / "app")
    result = run_in_image(image, command, pointed_at(environment, db))
    assert result.returncode == 0, result.stderr
    expected = repo_versions()
    assert db.history("lanconnect") == expected["lanconnect"]
    assert db.history("client_specific") == expected["client_specific"]
    assert f"Applied {len(expected['lanconnect']) + len(expected['client_specific'])} migration(s)." in result.stdout
    again = run_in_image(image, command, pointed_at(environment, db))  # every stack start runs it again
    assert again.returncode == 0, again.stderr
    assert "Nothing to apply: the database is up to date." in again.stdout


def test_migration_init_command_fails_and_records_a_broken_migration(db: Database, tmp_path: Path) -> None:
    command, environment = migration_init()
    image = build_image_tree(REPO, tmp_path / "app")
    last = max(int(v) for v, _ in repo_versions()["lanconnect"])
    broken = f"{last + 1:03d}_broken.sql"
    (image / "migrations" / "lanconnect" / broken).write_text(
        "SET search_path = langconnect, public;\n"
        "CREATE TABLE langconnect.half_done (id int);\n"
        "INSERT INTO langconnect.no_such_table VALUES (1);\n"
    )
    result = run_in_image(image, command, pointed_at(environment, db))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"migrations/lanconnect/{broken}:3" in result.stderr
    assert 'relation "langconnect.no_such_table" does not exist' in result.stderr
    rows = {row["version"]: row for row in db.history_rows("lanconnect")}
    assert rows[f"{last + 1:03d}"]["status"] == "failed"
    assert "no_such_table" in rows[f"{last + 1:03d}"]["error_message"]
    assert all(row["status"] == "applied" for version, row in rows.items() if int(version) <= last)
    assert db.history("client_specific") == []  # stopped at the first failure
    assert "half_done" not in db.tables()  # rolled back
    # Fix the file and start the stack again: the failed version is retried, then the app may start.
    (image / "migrations" / "lanconnect" / broken).write_text("CREATE TABLE langconnect.half_done (id int);\n")
    fixed = run_in_image(image, command, pointed_at(environment, db))
    assert fixed.returncode == 0, fixed.stderr
    assert db.history("lanconnect")[-1] == (f"{last + 1:03d}", "applied")
    assert db.history("client_specific") == repo_versions()["client_specific"]


def _healthcheck_shell() -> str:
    """The db healthcheck as the container's shell receives it (compose turns $$ into $)."""
    test = load_compose()["services"]["db"]["healthcheck"]["test"]
    return interpolate(test[1], COMPOSE_VARIABLES)


def _system_server_on_5432() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def _run_healthcheck(command: str, database: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES_"))}
    environ.update(POSTGRES_USER="postgres", POSTGRES_DB=database, POSTGRES_PASSWORD="unused-with-trust-auth")
    return subprocess.run(["sh", "-c", command], env=environ, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(shutil.which("pg_isready") is None or shutil.which("psql") is None,
                    reason="needs pg_isready and psql (postgresql-client)")
@pytest.mark.skipif(not _system_server_on_5432(), reason="needs a PostgreSQL at 127.0.0.1:5432, as in the db container")
def test_db_healthcheck_command_passes_on_a_ready_server_and_fails_otherwise(tmp_path: Path) -> None:
    command = _healthcheck_shell()
    ready = _run_healthcheck(command, "postgres")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    # pg_isready alone says "accepting connections" for a database that does not exist; the query does not.
    missing = _run_healthcheck(command, "no_such_database_here")
    assert missing.returncode != 0
    assert 'database "no_such_database_here" does not exist' in missing.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    down = _run_healthcheck(command.replace("--port=5432", f"--port={free_port}"), "postgres")
    assert down.returncode != 0
