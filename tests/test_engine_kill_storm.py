"""Issue 12, "Kill storm": runners SIGKILLed at random moments, then a run that completes.

On a cluster of the test's own: at least 50 runners are started one after another over a mixed
set (transactional, slow, CREATE INDEX CONCURRENTLY, the no-transaction marker, DO with COMMIT,
psql files) and each is SIGKILLed at a random moment. Then a completing run. What must hold:
every transactional migration ran exactly once (each increments a counter in its own
transaction), the history matches the effects, no INVALID index sits under an applied version,
and every execution of a non-transactional file left an attempt row (they are at-least-once,
and an interrupted one must be visible). Bounded: about a minute.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

from engine_support import (
    MixedSet,
    finish_mixed_set,
    kill,
    private_cluster,
    spawn,
    until,
)

KILLS = 50
STORM_SECONDS = 70  # the storm stops (and the test fails) rather than run longer than this


def test_kill_storm_then_a_completing_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("MIGRATE_TEST_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    with private_cluster(tmp_path) as private:
        db, project = private.db, private.project
        mixed = MixedSet(project, db, psql=shutil.which("psql") is not None)
        mixed.add_copy()
        started = time.monotonic()
        kills = 0
        while kills < KILLS and time.monotonic() - started < STORM_SECONDS:
            if mixed.all_applied() and mixed.copies < 6:
                mixed.add_copy()  # keep the runners busy: a kill should land mid-migration, not on a no-op
            runner = spawn(project, "migrate")
            time.sleep(rng.uniform(0.05, 1.2))
            if runner.poll() is None:
                kill(runner)
                kills += 1
            else:
                runner.communicate()
        assert kills >= KILLS, f"seed {seed}: only {kills} kills in {STORM_SECONDS} s"
        # the killed runners' sessions end (dead-client check); then the set completes quickly
        until(lambda: not db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND backend_type = 'client backend' AND state = 'active' "
                                   "AND pid <> pg_backend_pid()"),
              timeout=15, what="the killed runners' statements to end")
        db.execute("UPDATE public.knob SET seconds = 0")
        finish_mixed_set(project, db, mixed, seed)
