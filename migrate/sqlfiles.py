"""Finding migration files on disk: the naming rule, numeric order, shared versions.

A migration file is `<digits>[_-]<description>.sql`. Its version is the digit prefix as
written (`004`), ordered by numeric value (`0002` before `00010`). Files of one track that
share a number form one version, applied in file-name order and recorded once; their
checksum covers every file, so a file added later under an applied number shows as changed.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import NamedTuple

from migrate.errors import ConfigError, ValidationError
from migrate.paths import display_path
from migrate.tracks import Track

NAME_RE = re.compile(r"^(\d+)[_-](.+)\.sql$")
IGNORED_NAMES = {"README.md", ".gitkeep", ".keep"}
CHECKSUM_ALGORITHM = "sha256"
BOM = b"\xef\xbb\xbf"


class MigrationFile(NamedTuple):
    """One `.sql` file: where it is, what it says, and the hash of its normalised bytes."""

    track: str
    version: str
    number: int
    description: str
    path: Path
    text: str
    checksum: str

    @property
    def name(self) -> str:
        return self.path.name


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
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def checksum_of(data: bytes) -> str:
    return f"{CHECKSUM_ALGORITHM}:{hashlib.sha256(normalise(data)).hexdigest()}"


def is_ignored(path: Path) -> bool:
    name = path.name
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
    with os.scandir(directory) as entries:  # scandir: the file type comes with the listing, no stat per file
        listed = sorted((entry.name, entry.is_dir()) for entry in entries)
    for name, is_directory in listed:
        path = directory / name
        if is_directory or is_ignored(path):
            continue
        match = NAME_RE.match(path.name)
        if not match:
            bad.append(path)
            continue
        files.append(_read_file(track.name, path, match, root))
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


def _read_file(track: str, path: Path, match: re.Match[str], root: Path) -> MigrationFile:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValidationError(
            f"{display_path(path, root)}: cannot read the file ({error.strerror}); check its permissions"
        ) from None
    body = data[len(BOM):] if data.startswith(BOM) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        column = error.start - (body.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValidationError(
            f"{display_path(path, root)}:{line}:{column}: the file is not UTF-8 (byte 0x{body[error.start]:02x}); "
            "re-save it as UTF-8"
        ) from None
    if not text.strip():
        raise ValidationError(
            f"{display_path(path, root)}:1:1: the migration file is empty; write its SQL or delete it"
        )
    return MigrationFile(
        track=track,
        version=match.group(1),
        number=int(match.group(1)),
        description=match.group(2),
        path=path,
        text=text.replace("\r\n", "\n").replace("\r", "\n"),
        checksum=checksum_of(data),
    )
