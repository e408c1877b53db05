"""Finding migration files on disk: the naming rule, numeric order, shared versions.

A migration file is `<digits>[_-]<description>.sql`. Its version is the digit prefix as
written (`004`), ordered by numeric value (`0002` before `00010`). Files of one track that
share a number form one version, applied in file-name order and recorded once; their
checksum covers every file, so a file added later under an applied number is never silently
skipped (plan.py calls it `added`).

Only regular files inside the project are read: a directory, FIFO, device, symlink loop or
link leaving the project named like a migration is refused (one line each, all of them at
once) before anything connects, and so is a file larger than MAX_FILE_BYTES. A FIFO would
otherwise block the run forever while it holds the run lock, and /dev/zero exhaust memory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Callable, NamedTuple

from migrate.errors import ConfigError, ValidationError
from migrate.paths import display_path
from migrate.tracks import Track

NAME_RE = re.compile(r"^(\d+)[_-](.+)\.sql$")
IGNORED_NAMES = {"README.md", ".gitkeep", ".keep"}
CHECKSUM_ALGORITHM = "sha256"
BOM = b"\xef\xbb\xbf"
# A migration file larger than this is refused before it is read: it is read, decoded and parsed whole.
MAX_FILE_BYTES = 64 * 1024 * 1024
NOT_A_FILE_ADVICE = "only regular files inside the project can be migrations; move it out of the track folder"


class FileRefused(ValueError):
    """Why a path named like a migration is not read (not a regular file, too large); never holds its text."""


class FilesRefused(ValidationError):
    """Every entry of the track folders refused as FileRefused, one line each (exit 4)."""

    def __init__(self, lines: list[str]) -> None:
        more = f" ({len(lines) - 1} more above)" if len(lines) > 1 else ""
        super().__init__(lines[-1] + more)
        self.lines = lines
        self.earlier = tuple(lines[:-1])


class MigrationFile(NamedTuple):
    """One `.sql` file: where it is, what it says, and the hash of its normalised bytes.

    `text` is the file as written, only a UTF-8 BOM removed: CRLF line endings stay, because psql
    sends a file's own bytes and a multi-line string literal keeps its CR there. Lines and columns
    count `\n`. Only `checksum` normalises (CRLF -> LF, no BOM), so re-saving a file with other
    line endings is not a change.

    Its folder and name are kept apart and `path` joins them on use: a no-op run reads every
    file but needs no Path of any (1000 Path joins cost ~7 ms of its start-up).
    """

    track: str
    version: str
    number: int
    description: str
    directory: Path
    name: str
    text: str
    checksum: str

    @property
    def path(self) -> Path:
        return self.directory / self.name


class MigrationVersion(NamedTuple):
    """All files of one track sharing one version number; recorded as one history row."""

    track: str
    version: str
    number: int
    files: tuple[MigrationFile, ...]

    @property
    def checksum(self) -> str:
        if len(self.files) == 1:
            return self.files[0].checksum
        digest = hashlib.sha256()
        for migration_file in self.files:
            digest.update(migration_file.checksum.encode() + b"\0")
        return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"

    @property
    def filenames(self) -> str:
        return ", ".join(f.name for f in self.files)

    @property
    def description(self) -> str:
        return self.files[0].description


def normalise(data: bytes) -> bytes:
    """The bytes a checksum covers: no UTF-8 BOM, LF line endings."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    if b"\r" not in data:  # a search for one byte is memchr: the two replaces scanned 16 MB in 14 ms (issue 16)
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def checksum_of(data: bytes) -> str:
    return f"{CHECKSUM_ALGORITHM}:{hashlib.sha256(normalise(data)).hexdigest()}"


def is_ignored(path: Path) -> bool:
    return is_ignored_name(path.name)


def is_ignored_name(name: str) -> bool:
    return name in IGNORED_NAMES or name.lower().endswith(".down.sql") or not name.lower().endswith(".sql")


def find_migration_versions(track: Track, root: Path) -> list[MigrationVersion]:
    """Every version of `track` in numeric order; bad names and unreadable files raise."""
    directory = track.directory
    if not directory.exists():
        return []
    if not directory.is_dir():
        raise ConfigError(f"{display_path(directory, root)}: a track folder is expected here, found a file")
    bad: list[Path] = []
    files: list[MigrationFile] = []
    refused: list[str] = []
    with os.scandir(directory) as entries:  # scandir: the file type comes with the listing, no stat per file
        listed = sorted((entry.name, entry.path, _is_file(entry), entry.is_symlink()) for entry in entries)
    for name, location, is_file, is_link in listed:
        if is_ignored_name(name):
            continue
        try:
            if not is_file or is_link:  # rare: what it is, and where a link leads, cost a stat or two
                _check_entry(location, is_file, root)
            match = NAME_RE.match(name)
            if not match:
                bad.append(directory / name)
                continue
            files.append(_read_file(track.name, directory, name, location, match, root))
        except FileRefused as reason:
            refused.append(f"{display_path(directory / name, root)}: {reason}")
    if refused:
        raise FilesRefused(refused)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValidationError(
            f"{display_path(bad[0], root)}: not a migration file name{more}: expected "
            "<digits>_<description>.sql such as 004_add_user_preferences.sql; rename it, "
            "or end it in .down.sql to have it ignored"
        )
    return _group(files)


def _group(files: list[MigrationFile]) -> list[MigrationVersion]:
    by_number: dict[int, list[MigrationFile]] = {}
    for migration_file in files:
        by_number.setdefault(migration_file.number, []).append(migration_file)
    versions = []
    for number in sorted(by_number):
        group = sorted(by_number[number], key=lambda f: f.name)
        versions.append(MigrationVersion(group[0].track, group[0].version, number, tuple(group)))
    return versions


def refused_entries(directory: Path, root: Path) -> list[str]:
    """One line per entry of `directory` that is named like a SQL file but is no regular file inside the
    project (what migrate refuses): lint and new refuse the same folder the same way."""
    refused = []
    with os.scandir(directory) as entries:
        listed = sorted((entry.name, entry.path, _is_file(entry), entry.is_symlink()) for entry in entries)
    for name, location, is_file, is_link in listed:
        if is_ignored_name(name) or (is_file and not is_link):
            continue
        try:
            _check_entry(location, is_file, root)
        except FileRefused as reason:
            refused.append(f"{display_path(directory / name, root)}: {reason}")
    return refused


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a link to one (from the listing's file type); False for a link that loops."""
    try:
        return entry.is_file()
    except OSError:  # ELOOP: _check_entry says what it is
        return False


def _check_entry(location: str, is_file: bool, root: Path) -> None:
    """Raise FileRefused unless `location` is a regular file, or a link to one inside the project."""
    try:
        info = os.stat(location)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise FileRefused(f"is a symbolic link that loops; {NOT_A_FILE_ADVICE}") from None
        if error.errno == errno.ENOENT:
            raise FileRefused(f"is a symbolic link to nothing ({os.readlink(location)}); "
                              f"{NOT_A_FILE_ADVICE}") from None
        raise FileRefused(f"cannot be read ({error.strerror}); check its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        link = f"a symbolic link to {os.path.realpath(location)}, " if os.path.islink(location) else ""
        raise FileRefused(f"is {link}{_kind(info.st_mode)}, not a regular file; {NOT_A_FILE_ADVICE}")
    real = Path(os.path.realpath(location))
    if not real.is_relative_to(root.resolve()):
        raise FileRefused(f"is a symbolic link to {real}, outside the project; copy the file into the project "
                          "(a link may point inside it)")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes through os.open/os.read: half the cost of Path.read_bytes, which a
    no-op run pays for every migration file (1000 files: ~4 ms instead of ~10 ms).

    Opened without blocking and checked on the open descriptor (no race with a swapped file):
    FileRefused for anything but a regular file of at most MAX_FILE_BYTES.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"is {_kind(info.st_mode)}, not a regular file; {NOT_A_FILE_ADVICE}")
        if info.st_size > MAX_FILE_BYTES:
            raise FileRefused(
                f"is {info.st_size / 1048576:.0f} MB, larger than the {MAX_FILE_BYTES // 1048576} MB a migration "
                "file may be; split it into smaller migrations, or load bulk data from a file psql reads (\\copy)"
            )
        # one read when it returns as many bytes as fstat said and not one more: then that was the whole file
        first = os.read(descriptor, info.st_size + 1)
        if len(first) == info.st_size:
            return first
        chunks = [first]
        while chunk := os.read(descriptor, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _read_file(track: str, directory: Path, name: str, location: str, match: re.Match[str],
               root: Path) -> MigrationFile:
    """Read, check and hash one file; `location` is its path as scandir gave it."""
    try:
        data = read_bytes(location)
    except OSError as error:
        raise ValidationError(
            f"{display_path(directory / name, root)}: cannot read the file ({error.strerror}); check its permissions"
        ) from None
    # its path as shown is built only for a message: Path arithmetic for every file was a third of a no-op's
    # reading of 1000 files (issue 16)
    text = decode_text(data, lambda: display_path(directory / name, root))
    if not text or text.isspace():  # as `not text.strip()`, without copying the text
        raise ValidationError(
            f"{display_path(directory / name, root)}:1:1: the migration file is empty; write its SQL or delete it"
        )
    return MigrationFile(track, match.group(1), int(match.group(1)), match.group(2), directory, name,
                         text, checksum_of(data))


def decode_text(data: bytes, where: str | Callable[[], str]) -> str:
    """A migration file's text as written: UTF-8 without its BOM, line endings kept (see MigrationFile).

    The one reader of SQL files (lint reads named files with it too); a byte that is not UTF-8
    raises ValidationError with its line and column.
    """
    body = data[len(BOM):] if data.startswith(BOM) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        where = where() if callable(where) else where
        line = body.count(b"\n", 0, error.start) + 1
        column = error.start - (body.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValidationError(
            f"{where}:{line}:{column}: the file is not UTF-8 (byte 0x{body[error.start]:02x}); re-save it as UTF-8"
        ) from None
