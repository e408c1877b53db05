"""inv wait / python -m migrate wait: fast retries, permanent errors at once, timeout exit 3."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project
from pgcluster import Cluster, free_port


@pytest.fixture
def bare_project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    (root / "envs" / "local.env").write_text("MAX_WAIT_TIME=30\n")
    return Project(root, "")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    created = Cluster()
    yield created
    created.remove()


@pytest.fixture
def password_cluster() -> Iterator[Cluster]:
    created = Cluster(password="right-pw-9f3")
    created.start()
    yield created
    created.remove()


def test_wait_returns_soon_after_a_server_that_starts_late(bare_project: Project, cluster: Cluster) -> None:
    started_at: list[float] = []

    def start_later() -> None:
        time.sleep(2)
        cluster.start()
        started_at.append(time.monotonic())

    thread = threading.Thread(target=start_later)
    thread.start()
    began = time.monotonic()
    result = bare_project.run("wait", env={"DATABASE_URL": cluster.url()})
    ended = time.monotonic()
    thread.join()
    assert result.code == 0, result.err
    assert "Database ready" in result.out
    assert ended - began >= 2
    # retries are at most 1 s apart: we return within about a second of the server being up
    assert ended - started_at[0] < 1.5


def test_wait_times_out_with_exit_3(bare_project: Project) -> None:
    port = free_port()
    result = bare_project.run("wait", "--timeout", "1", env={"DATABASE_URL": f"postgresql://u:pw9@127.0.0.1:{port}/d"})
    assert result.code == 3
    line = result.err.strip().splitlines()[-1]
    assert line.startswith(f"migrate: error: database at postgresql://u:***@127.0.0.1:{port}/d not ready after 1 s")
    assert "pw9" not in result.err + result.out
    inv = bare_project.inv("wait", "--timeout", "1", env={"DATABASE_URL": f"postgresql://u@127.0.0.1:{port}/d"})
    assert inv.code == 3


def test_wrong_password_fails_at_once_and_is_never_printed(bare_project: Project, password_cluster: Cluster) -> None:
    began = time.monotonic()
    result = bare_project.run("wait", env={"DATABASE_URL": password_cluster.url("wrong-pw-77")})
    assert result.code == 3
    assert time.monotonic() - began < 10  # not the 30 s MAX_WAIT_TIME
    assert 'password authentication failed for user "postgres"' in result.err
    assert "wrong-pw-77" not in result.err + result.out
    assert "postgresql://postgres:***@127.0.0.1" in result.err
    ok = bare_project.run("wait", env={"DATABASE_URL": password_cluster.url("right-pw-9f3")})
    assert ok.code == 0, ok.err
    assert "right-pw-9f3" not in ok.err + ok.out
    # the earlier script's variables carry the password too
    legacy = bare_project.run("status", env={"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(password_cluster.port),
                                             "POSTGRES_PASSWORD": "right-pw-9f3"})
    assert legacy.code == 0, legacy.err
    assert "right-pw-9f3" not in legacy.err + legacy.out
    assert "postgresql://postgres:***@127.0.0.1" in legacy.out


def test_unknown_database_fails_at_once(bare_project: Project, cluster: Cluster) -> None:
    cluster.start()
    began = time.monotonic()
    result = bare_project.run("wait", env={"DATABASE_URL": cluster.url(dbname="no_such_db")})
    assert result.code == 3
    assert time.monotonic() - began < 10
    assert 'database "no_such_db" does not exist' in result.err


def test_unknown_host_fails_at_once(bare_project: Project) -> None:
    began = time.monotonic()
    result = bare_project.run("wait", env={"DATABASE_URL": "postgresql://u@no-such-host.invalid:5432/d"})
    assert result.code == 3
    assert time.monotonic() - began < 10
    assert "no-such-host.invalid" in result.err
