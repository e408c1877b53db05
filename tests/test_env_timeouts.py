"""Issue 13, case 5: read-only commands fail fast; migrate keeps MAX_WAIT_TIME.

Contract (see test_env_resolution.py for the whole of it): status, dry-run and history give up after
MIGRATE_READ_TIMEOUT seconds (default about 10 s) and say what they were waiting for (the target);
migrate keeps waiting up to MAX_WAIT_TIME, as the compose stack needs. The environment here mirrors
the shipped envs/staging.env: MAX_WAIT_TIME=180.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project
from env_support import Outcome, no_traceback, run_bounded
from pgcluster import free_port

UNROUTABLE = "10.255.255.1"  # no route answers: a SYN goes nowhere (or the network says so at once)
UNRESOLVABLE = "staging-db.no-such-host.invalid"


@pytest.fixture
def staging(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    (root / "migrations" / "client_specific").mkdir(parents=True)
    (root / "migrations" / "lanconnect" / "001_a.sql").write_text("CREATE TABLE IF NOT EXISTS public.a (id int);\n")
    (root / "envs" / "staging.env").write_text("DATABASE_URL=${STAGING_DATABASE_URL}\nMAX_WAIT_TIME=180\n"
                                               "MIGRATE_LOCK_TIMEOUT=60\n")
    return Project(root, "")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server, a black-holing proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def _url(host: str, port: int) -> str:
    return f"postgresql://app:pw@{host}:{port}/app"


def _assert_gave_up_fast(result: Outcome, limit: float, what: str, host: str) -> None:
    assert not result.timed_out, f"{what}: still waiting after {result.seconds:.0f} s"
    assert result.code == 3, f"{what}: exit {result.code}\n{result.err}"
    assert result.seconds < limit, f"{what}: took {result.seconds:.1f} s"
    assert host in result.err, f"{what}: does not say what it was waiting for:\n{result.err}"
    assert no_traceback(result.err)


@pytest.mark.parametrize("command", ["status", "dry-run", "history"])
def test_read_only_commands_give_up_after_migrate_read_timeout_on_a_closed_port(
        staging: Project, command: str) -> None:
    port = free_port()
    result = run_bounded(staging, command, "--env", "staging", timeout=8,
                         env={"STAGING_DATABASE_URL": _url("127.0.0.1", port), "MIGRATE_READ_TIMEOUT": "2"})
    _assert_gave_up_fast(result, 8, f"{command} against a closed port", f"127.0.0.1:{port}")


@pytest.mark.parametrize("command,host", [("status", UNROUTABLE), ("history", UNROUTABLE),
                                          ("dry-run", UNRESOLVABLE)])
def test_read_only_commands_give_up_on_an_unroutable_or_unresolvable_name(
        staging: Project, command: str, host: str) -> None:
    result = run_bounded(staging, command, "--env", "staging", timeout=8,
                         env={"STAGING_DATABASE_URL": _url(host, 5432), "MIGRATE_READ_TIMEOUT": "2"})
    _assert_gave_up_fast(result, 8, f"{command} against {host}", host)


def test_status_gives_up_on_a_server_that_never_answers(staging: Project, silent_port: int) -> None:
    result = run_bounded(staging, "status", "--env", "staging", timeout=8,
                         env={"STAGING_DATABASE_URL": _url("127.0.0.1", silent_port), "MIGRATE_READ_TIMEOUT": "2"})
    _assert_gave_up_fast(result, 8, "status against a silent server", f"127.0.0.1:{silent_port}")


def test_inv_status_gives_up_after_migrate_read_timeout(staging: Project) -> None:
    port = free_port()
    result = run_bounded(staging, "status", "--env", "staging", timeout=8, door="inv",
                         env={"STAGING_DATABASE_URL": _url("127.0.0.1", port), "MIGRATE_READ_TIMEOUT": "2"})
    _assert_gave_up_fast(result, 8, "inv status against a closed port", f"127.0.0.1:{port}")


def test_default_read_timeout_is_short_not_max_wait_time(staging: Project) -> None:
    port = free_port()
    result = run_bounded(staging, "status", "--env", "staging", timeout=22,
                         env={"STAGING_DATABASE_URL": _url("127.0.0.1", port)})
    _assert_gave_up_fast(result, 20, "status with the default read timeout", f"127.0.0.1:{port}")
    assert result.seconds >= 3, "the default should still give a restarting server a few seconds"


def test_migrate_keeps_max_wait_time(staging: Project) -> None:
    port = free_port()
    (staging.root / "envs" / "staging.env").write_text("DATABASE_URL=${STAGING_DATABASE_URL}\nMAX_WAIT_TIME=4\n")
    result = run_bounded(staging, "migrate", "--env", "staging", timeout=30,
                         env={"STAGING_DATABASE_URL": _url("127.0.0.1", port), "MIGRATE_READ_TIMEOUT": "1"})
    assert result.code == 3, result.err
    assert result.seconds >= 3.5, "migrate gave up before MAX_WAIT_TIME (it must wait for a starting server)"
    assert f"127.0.0.1:{port}" in result.err
