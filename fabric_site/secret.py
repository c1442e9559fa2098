"""The site's secret key when none is given: generated once, kept in the data folder.

A fresh clone must serve safely with nothing set, so the key cannot live in the code.
The first process to need it writes a random key to `<FABRIC_DATA_DIR>/secret_key`,
readable by its owner only; every later process (the zone workers, a restarted server)
reads the same file, so join tickets and sessions outlive restarts. Processes starting
together cannot end up with different keys: the file appears complete or not at all
(written aside, then linked into place, which fails if another process got there first).

Hosts that do not share a data folder must share the key instead: DJANGO_SECRET_KEY.
"""

import os
import secrets
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_FILE = "secret_key"
SECRET_KEY_MIN_CHARS = 50
KEY_FILE_MODE = 0o600


def secret_key_generate() -> str:
    """A new random key: 64 URL-safe characters (384 bits)."""
    return secrets.token_urlsafe(48)


def _key_read(path: Path) -> str:
    """The key in `path`, or ImproperlyConfigured saying what is wrong with the file."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ImproperlyConfigured(
            f"{path} holds the site's secret key but others may read it (mode {mode:o}); "
            f"make it private with: chmod 600 {path}"
        )
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < SECRET_KEY_MIN_CHARS:
        raise ImproperlyConfigured(
            f"{path} holds a secret key of {len(key)} characters, fewer than "
            f"{SECRET_KEY_MIN_CHARS}; delete the file to have a new key generated "
            "(signed-in sessions and join tickets then end)"
        )
    return key


def _key_create(path: Path) -> None:
    """Write a new key to `path` unless a key is already there (never overwrites)."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secret_key_generate() + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(aside, path)
    except FileExistsError:
        pass  # another process wrote the key first: use theirs
    finally:
        aside.unlink(missing_ok=True)


def secret_key_in(data_dir: Path) -> str:
    """The site's secret key kept in `data_dir`, generated on first use."""
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _key_create(path)
    return _key_read(path)
