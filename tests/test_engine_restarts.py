"""Issue 12, "Server restarts": the server restarted at random moments under a run, then a run completes.

On a cluster of the test's own, runners keep applying a mixed set (transactional, slow,
CREATE INDEX CONCURRENTLY, the no-transaction marker, DO with COMMIT, psql files) while the test
restarts the server at random moments, at least 10 times with `pg_ctl restart -m immediate` (a
crash and recovery) and 10 times with `-m fast`. Then a completing run. What must hold: the
history matches the effects (exactly once for transactional files), no INVALID index under an
applied version, every execution of a non-transactional file logged, and no runner ever prints a
traceback. Bounded: about a minute.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path

import psycopg2
from engine_support import (
    MixedSet,
    finish_mixed_set,
    private_cluster,
    restart,
    spawn,
)

RESTARTS = {"immediate": 10, "fast": 10}


def test_server_restarts_at_random_moments_then_a_completing_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("MIGRATE_TEST_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    with private_cluster(tmp_path) as private:
        db, project = private.db, private.project
        mixed = MixedSet(project, db, psql=shutil.which("psql") is not None)
        mixed.add_copy()
        mixed.add_copy()
        stop = threading.Event()
        outcomes: list[tuple[int, str]] = []

        def keep_running() -> None:
            """One runner after another, as a restarting container would."""
            while not stop.is_set():
                runner = spawn(project, "migrate", env={"MAX_WAIT_TIME": "30"})
                _out, err = runner.communicate(timeout=120)
                outcomes.append((runner.returncode, err))
                try:
                    if not stop.is_set() and mixed.all_applied() and mixed.copies < 6:
                        mixed.add_copy()  # keep the runners busy until the restarts are over
                except psycopg2.Error:
                    pass  # the server is restarting
                time.sleep(0.05)

        worker = threading.Thread(target=keep_running, daemon=True)
        worker.start()
        modes = [mode for mode, count in RESTARTS.items() for _ in range(count)]
        rng.shuffle(modes)
        try:
            for mode in modes:
                time.sleep(rng.uniform(0.2, 1.5))
                restart(private.cluster, mode)
        finally:
            stop.set()
            db.execute("UPDATE public.knob SET seconds = 0")
            worker.join(timeout=120)
        assert not worker.is_alive(), f"seed {seed}: a runner did not finish"
        tracebacks = [err for _code, err in outcomes if "Traceback" in err]
        assert not tracebacks, f"seed {seed}: {tracebacks[0]}"
        finish_mixed_set(project, db, mixed, seed)

