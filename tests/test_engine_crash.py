"""Issue 12, "Crash": the server stops dead mid-run; whatever was said to be applied must still be.

On a cluster of the test's own, `pg_ctl stop -m immediate` (no checkpoint, no flush) at a random
moment of a run, then start again. Every version the run printed (`[i/N] ...` lines, read as they
stream) or returned (`--json`: the document's "applied" list) must still be recorded applied, with
its effect; nothing recorded may be missing its effect. Then a run completes the set.

The cluster's WAL writer is slowed (`wal_writer_delay = 10s`, its maximum), as on a busy server:
then only a commit that waited for its own flush is sure to survive, which is the promise.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from engine_support import (
    COUNTER_DDL,
    Stream,
    applied_versions,
    count_sql,
    counter,
    crash,
    kill,
    printed_versions,
    private_cluster,
    spawn,
    until,
)

FILES = 200


@pytest.mark.parametrize("output", ["text", "json"])
def test_every_version_printed_or_returned_as_applied_survives_a_crash(tmp_path: Path, output: str) -> None:
    seed = int(os.environ.get("MIGRATE_TEST_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    with private_cluster(tmp_path) as private:
        db, project = private.db, private.project
        private.alter_system(wal_writer_delay="10s")
        db.execute(COUNTER_DDL)
        for number in range(1, FILES + 1):
            version = f"{number:03d}"
            project.write("lanconnect", f"{version}_m.sql", f"CREATE TABLE IF NOT EXISTS public.t_{version} (id int);\n"
                          + count_sql(version))
        runner = Stream(spawn(project, "migrate", *(["--json"] if output == "json" else [])))
        try:
            if output == "text":
                moment = rng.randint(10, FILES // 2)
                until(lambda: len(runner.applied_lines()) >= moment, timeout=60,
                      what=f"{moment} versions printed as applied")
            else:
                moment = rng.randint(10, FILES // 2)
                until(lambda: len(applied_versions(db)) >= moment or runner.process.poll() is not None, timeout=60,
                      what=f"{moment} versions committed")
            crash(private.cluster)
            runner.wait(timeout=60)
        finally:
            kill(runner.process)
        if output == "text":
            said = printed_versions(runner.out)
        else:
            document = json.loads("\n".join(runner.out))
            said = {item["version"] for item in document["applied"]}
        assert said, f"seed {seed}: the run said nothing was applied before the crash"
        private.cluster.start()
        recorded = applied_versions(db)
        runs = counter(db)
        lost = sorted(said - recorded)
        assert not lost, f"seed {seed}: said to be applied, then lost in the crash: {lost}"
        assert all(runs.get(version) == 1 for version in recorded), f"seed {seed}: history does not match effects"
        assert set(runs) == recorded, f"seed {seed}: effects without history, or history without effects"
        again = project.run("migrate")
        assert again.code == 0, again.err
        assert counter(db) == {f"{n:03d}": 1 for n in range(1, FILES + 1)}
