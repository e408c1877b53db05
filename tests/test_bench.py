"""The benchmark's smoke run: it runs end to end and prints its table (no timing assertions)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO, Server


def test_inv_bench_quick_runs_every_runner_and_prints_the_table(server: Server) -> None:
    if server.kind != "embedded":
        pytest.skip("the smoke run needs one server; it runs against the embedded one")
    dsn = " ".join(f"{key}={value}" for key, value in server.params.items())
    inv = shutil.which("inv") or "inv"
    result = subprocess.run([inv, "bench", "--quick", "--dsn", dsn],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "| set | action | tool ms | reference (psql/file) ms |" in out
    assert "tool/floor" in out and "tool/start-up" in out
    for action in ("apply", "noop", "status"):
        assert f"| N=5 | {action} |" in out
    assert "## Peak memory" in out and "## Targets" in out
    assert "- command: `python bench/run.py --quick --dsn 'host=" in out
    assert "round 3: N=5 done" in result.stderr


@pytest.mark.parametrize("rows", [
    [],
    [["001", "001_a.sql", "applied", "2026-01-01 00:00:00", "3 ms"], ["002", "002_b.sql", "pending", "", ""]],
    [["0010", "0010_a_much_longer_file_name.sql, 0010_b.sql", "failed: 42P01: relation missing", "", "12 ms"]],
])
def test_status_table_is_the_text_tabulate_prints(rows: list[list[str]]) -> None:
    """report.format_table replaced tabulate for speed (bench/RESULTS.md); the text is the same."""
    from tabulate import tabulate

    from migrate.report.text import format_table

    headers = ["version", "file(s)", "state", "applied_at", "duration"]
    assert format_table(rows, headers) == tabulate(rows, headers=headers, disable_numparse=True)
