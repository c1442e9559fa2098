"""The host's shared secret: from FABRIC_HOST_SECRET, or generated once into the data folder.

The control API's callers prove themselves with it, and transfer tokens are signed with
it. Given in FABRIC_HOST_SECRET it must be at least 32 characters; otherwise runhost
keeps a random one in `<FABRIC_DATA_DIR>/host.secret`, readable by its owner only, and
reads the same file on every later start (the operator's curl reads it too).
"""

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from host.control import SECRET_MIN_CHARS

SECRET_VARIABLE = "FABRIC_HOST_SECRET"
SECRET_FILE = "host.secret"
SECRET_FILE_MODE = 0o600


class HostSecretError(ValueError):
    """The secret given, or the file holding it, cannot be used; the message says why."""


def host_secret_load(*, env: Mapping[str, str], data_dir: Path) -> tuple[str, Path | None]:
    """The host's secret and the file it is kept in (None when it came from the environment)."""
    given = env.get(SECRET_VARIABLE, "")
    if given:
        if len(given) < SECRET_MIN_CHARS:
            raise HostSecretError(
                f"{SECRET_VARIABLE} holds {len(given)} characters; it needs at least"
                f" {SECRET_MIN_CHARS} (e.g. python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))')"
            )
        return given, None
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _secret_create(path)
    return _secret_read(path), path


def _secret_create(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    except FileExistsError:
        return  # written meanwhile by another start: use that one
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secrets.token_urlsafe(48) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _secret_read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HostSecretError(
            f"{path} holds the host's secret but others may read it (mode {mode:o});"
            f" make it private with: chmod 600 {path}"
        )
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < SECRET_MIN_CHARS:
        raise HostSecretError(
            f"{path} holds a secret of {len(secret)} characters, fewer than {SECRET_MIN_CHARS};"
            " delete the file to have a new one generated"
        )
    return secret
