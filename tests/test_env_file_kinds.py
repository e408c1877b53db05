"""Entries named like migrations that are not regular files, through the commands that never connect.

test_env_files.py runs migrate, status and dry-run against a server; here lint and new (which read
the same folders) refuse the same entries, and the kinds that test leaves out (a broken link, a
socket) get their own line. No server is needed: a FIFO must be refused before anything waits.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from conftest import Project
from env_support import run_bounded

MAX_FILE_BYTES = 64 * 1024 * 1024  # README: a migration file is at most 64 MB


def _tracks(project: Project) -> tuple[Path, Path]:
    lanconnect = project.root / "migrations" / "lanconnect"
    client = project.root / "migrations" / "client_specific"
    lanconnect.mkdir(parents=True, exist_ok=True)
    client.mkdir(parents=True, exist_ok=True)
    (lanconnect / "001_ok.sql").write_text("SET search_path = langconnect, public;\nSELECT 1;\n")
    return lanconnect, client


def test_lint_and_new_refuse_what_migrate_refuses_one_line_each(files_project: Project) -> None:
    lanconnect, _ = _tracks(files_project)
    os.mkfifo(lanconnect / "002_pipe.sql")
    (lanconnect / "003_gone.sql").symlink_to("nowhere.sql")
    listener = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(lanconnect)  # a socket's path must be short: bind it by its name
    try:
        listener.bind("004_sock.sql")
    finally:
        os.chdir(here)
    try:
        for args in (("lint",), ("new", "add things"), ("lint", "--json")):
            result = run_bounded(files_project, *args, timeout=20)  # a FIFO read would block: bounded
            assert result.code == 4, (args, result.err)
            lines = result.err.strip().splitlines()
            assert lines == [
                "migrate: error: migrations/lanconnect/002_pipe.sql: is a FIFO (named pipe), not a regular file; "
                "only regular files inside the project can be migrations; move it out of the track folder",
                "migrate: error: migrations/lanconnect/003_gone.sql: is a symbolic link to nothing "
                "(nowhere.sql); only regular files inside the project can be migrations; move it out of the track "
                "folder",
                "migrate: error: migrations/lanconnect/004_sock.sql: is a socket, not a regular file; only "
                "regular files inside the project can be migrations; move it out of the track folder (2 more above)",
            ], args
            if "--json" in args:
                assert json.loads(result.out)["error"]["message"].endswith("(2 more above)")
        assert not (lanconnect / "005_add_things.sql").exists()
    finally:
        listener.close()


def test_a_file_at_the_size_bound_is_read_and_one_byte_more_is_refused(files_project: Project) -> None:
    lanconnect, _ = _tracks(files_project)
    big = lanconnect / "002_big.sql"
    with big.open("wb") as handle:
        handle.write(b"SELECT 1;\n")
        handle.truncate(MAX_FILE_BYTES + 1)
    result = files_project.run("new", "next")
    assert result.code == 4
    assert result.err.strip() == (
        "migrate: error: migrations/lanconnect/002_big.sql: is 64 MB, larger than the 64 MB a migration file may "
        "be; split it into smaller migrations, or load bulk data from a file psql reads (\\copy)")


def test_a_folder_without_a_migration_name_is_still_ignored(files_project: Project) -> None:
    lanconnect, _ = _tracks(files_project)
    (lanconnect / "drafts").mkdir()
    (lanconnect / "drafts" / "002_later.sql").write_text("SELECT 2;\n")
    result = files_project.run("new", "next thing")
    assert result.code == 0, result.err
    assert (lanconnect / "002_next_thing.sql").exists()
