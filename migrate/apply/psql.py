"""Running a migration file through psql, for what only psql understands.

Files with backslash meta-commands (`\\set`, `\\i`, `\\gexec`, ...) or `COPY ... FROM stdin`
data need psql itself; MIGRATE_EXECUTOR=psql sends every file there, as the earlier script
did. psql runs `-X -v ON_ERROR_STOP=1`; a file without transaction control of its own runs
with `--single-transaction` and its history upsert as a last `-c`, so the change and its
record commit together. The password travels in PGPASSWORD, never on the command line;
the rest of the connection is a conninfo string without it. pg_dump's `\\restrict` lines
are blanked in a temporary copy (older psql clients do not know them), keeping line
numbers, and psql's error lines are mapped back to the real file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from migrate.errors import ValidationError
from migrate.files.statements import Script, blank_restrict_lines
from migrate.paths import display_path

ERROR_LINE = re.compile(r"^psql:(?P<file>.*?):(?P<line>\d+): (?:ERROR|FATAL):\s+(?:(?P<code>[0-9A-Z]{5}): )?"
                        r"(?P<message>.*)$", re.MULTILINE)
BARE_ERROR = re.compile(r"^(?:psql: )?(?:error: )?(?:ERROR|FATAL):\s+(?:(?P<code>[0-9A-Z]{5}): )?(?P<message>.*)$",
                        re.MULTILINE)
DETAIL_LINE = re.compile(r"^DETAIL:\s+(?P<detail>.*)$", re.MULTILINE)
CONTEXT_LINE = re.compile(r"^CONTEXT:\s+(?P<context>.*)$", re.MULTILINE)
NOTICE_LINE = re.compile(r"^psql:(?P<file>.*?):(?P<line>\d+): (?P<level>NOTICE|WARNING|INFO):\s+"
                         r"(?:[0-9A-Z]{5}: )?(?P<message>.*)$")


@dataclass
class PsqlError(Exception):
    """psql stopped on an error: where (when psql said) and what PostgreSQL reported."""

    path: Path | None
    line: int | None
    sqlstate: str
    message: str
    detail: str | None
    context: str | None = None


def find_psql(psql_path: str | None) -> str | None:
    """MIGRATE_PSQL when set, else `psql` on PATH."""
    if psql_path:
        return psql_path if Path(psql_path).is_file() and os.access(psql_path, os.X_OK) else None
    return shutil.which("psql")


def require_psql(psql_path: str | None, scripts: list[Script], root: Path) -> str | None:
    """The psql to use when some file needs it; refuses (exit 4) before anything runs if none."""
    needing = [script for script in scripts if script.needs_psql]
    if not needing:
        return None
    found = find_psql(psql_path)
    if found is None:
        first = needing[0]
        where = f"MIGRATE_PSQL={psql_path} is not an executable file" if psql_path else "psql is not on PATH"
        raise ValidationError(
            f"{display_path(first.file.path, root)}: needs psql ({first.needs_psql}) but {where}; install the "
            "PostgreSQL client (apt-get install postgresql-client) or set MIGRATE_PSQL, or rewrite the file "
            "as plain SQL; nothing was applied"
        )
    return found


def conninfo_and_env(params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and the environment carrying it as PGPASSWORD."""
    from psycopg2.extensions import make_dsn

    public = {key: value for key, value in params.items() if key != "password" and value not in (None, "")}
    environ = dict(os.environ, PGCLIENTENCODING="UTF8")
    if params.get("password"):
        environ["PGPASSWORD"] = str(params["password"])
    return make_dsn(**public), environ


def run_files(
    psql: str,
    params: Mapping[str, str],
    scripts: list[Script],
    *,
    single_transaction: bool,
    final_sql: str | None = None,
    first_sql: str | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> None:
    """Run the files in order in one psql session; raise PsqlError on the first error.

    first_sql (the tool's SETs and the fence) runs before the files, final_sql (the history
    upsert) after them, inside the single transaction when there is one. psql's stderr is read
    line by line as it writes it: notices go to `on_notice` as they arrive.
    """
    conninfo, environ = conninfo_and_env(params)
    with tempfile.TemporaryDirectory(prefix="migrate-psql-") as folder:
        originals: dict[str, Path] = {}
        argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", conninfo]
        if single_transaction:
            argv.append("--single-transaction")
        if first_sql:
            argv += ["-c", first_sql]
        for index, script in enumerate(scripts):
            path = _file_for_psql(script, Path(folder) / f"{index}")
            originals[str(path)] = script.file.path
            argv += ["-f", str(path)]
        if final_sql:
            argv += ["-c", final_sql]
        child = subprocess.Popen(argv, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                 preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        lines: list[str] = []
        assert child.stderr is not None
        for line in child.stderr:
            lines.append(line)
            notice = NOTICE_LINE.match(line)
            if notice and on_notice is not None:
                shown = originals.get(notice.group("file"))
                where = f"line {notice.group('line')}" if shown is None else f"{shown.name}:{notice.group('line')}"
                on_notice(f"{notice.group('level')}: {notice.group('message').strip()} ({where})")
        returncode = child.wait()
    if returncode == 0:
        return
    raise _parse_error("".join(lines), returncode, originals, params.get("password"))


def _file_for_psql(script: Script, folder: Path) -> Path:
    """The file itself (so `\\ir` finds its neighbours), or a copy without pg_dump's restrict
    lines or a BOM when it has them."""
    text = script.file.text
    blanked = blank_restrict_lines(text)
    try:
        has_bom = script.file.path.read_bytes().startswith(b"\xef\xbb\xbf")
    except OSError:
        has_bom = True
    if blanked == text and not has_bom:
        return script.file.path.resolve()
    copy = folder / script.file.path.name
    copy.parent.mkdir()
    copy.write_text(blanked, encoding="utf-8")
    return copy


def _parse_error(stderr: str, returncode: int, originals: dict[str, Path], password: str | None) -> PsqlError:
    text = stderr.replace(password, "***") if password else stderr

    def after(start: int, pattern: re.Pattern[str], group: str) -> str | None:
        """The DETAIL or CONTEXT line that belongs to the error (notices before it have their own)."""
        found = pattern.search(text, start)
        return found.group(group).strip() if found else None

    match = ERROR_LINE.search(text)
    if match:
        reported = match.group("file")
        path = originals.get(reported) or (Path(reported) if reported.startswith("/") else None)  # \\ir'd file
        return PsqlError(path, int(match.group("line")), match.group("code") or "", match.group("message").strip(),
                         after(match.end(), DETAIL_LINE, "detail"), after(match.end(), CONTEXT_LINE, "context"))
    bare = BARE_ERROR.search(text)
    if bare:
        return PsqlError(None, None, bare.group("code") or "", bare.group("message").strip(),
                         after(bare.end(), DETAIL_LINE, "detail"), after(bare.end(), CONTEXT_LINE, "context"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = lines[-1] if lines else f"psql exited with code {returncode}"
    return PsqlError(None, None, "", message, None)


def _die_with_parent() -> None:
    """Linux: psql gets SIGKILL when the runner dies, so a killed run leaves no psql committing behind it."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not glibc: psql then finishes on its own
        pass
