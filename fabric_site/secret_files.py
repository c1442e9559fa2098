"""A secret kept in a file of the data folder: generated once, readable by its owner only.

Processes starting together cannot end up with different secrets: the file appears
complete or not at all (written aside, then linked into place, which fails if another
process got there first), and no process ever overwrites it. A file others may read, or
one holding too short a secret, is refused with the command or step that fixes it.
"""

import os
import secrets
import stat
from pathlib import Path

FILE_MODE = 0o600


class SecretFileError(ValueError):
    """The file cannot be used as it is; the message says why and what to do."""


def secret_generate() -> str:
    """A new random secret: 64 URL-safe characters (384 bits)."""
    return secrets.token_urlsafe(48)


def secret_file_ensure(path: Path, *, holds: str, min_chars: int, when_short: str) -> str:
    """The secret in `path`, written there first if the file does not exist.

    `holds` names it in messages ("the site's secret key"); `when_short` ends the message
    for a secret under `min_chars` characters (what deleting the file would cost).
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _secret_create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretFileError(
            f"{path} holds {holds} but others may read it (mode {mode:o});"
            f" make it private with: chmod 600 {path}"
        )
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < min_chars:
        raise SecretFileError(
            f"{path} holds {holds} of {len(secret)} characters, fewer than {min_chars};"
            f" delete the file {when_short}"
        )
    return secret


def _secret_create(path: Path) -> None:
    """Write a new secret to `path` unless one is already there (never overwrites)."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secret_generate() + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(aside, path)
    except FileExistsError:
        pass  # another process wrote it first: use theirs
    finally:
        aside.unlink(missing_ok=True)
