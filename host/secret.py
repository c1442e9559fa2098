"""The host's shared secret: from FABRIC_HOST_SECRET, or generated once into the data folder.

The control API's callers prove themselves with it, and transfer tokens are signed with
it. Given in FABRIC_HOST_SECRET it must be at least 32 characters; otherwise runhost
keeps a random one in `<FABRIC_DATA_DIR>/host.secret`, readable by its owner only, and
reads the same file on every later start (the operator's curl reads it too).
"""

from collections.abc import Mapping
from pathlib import Path

from fabric_site.secret_files import SecretFileError, secret_file_ensure
from host.control import SECRET_MIN_CHARS

SECRET_VARIABLE = "FABRIC_HOST_SECRET"
SECRET_FILE = "host.secret"


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
    try:
        secret = secret_file_ensure(
            data_dir / SECRET_FILE,
            holds="the host's secret",
            min_chars=SECRET_MIN_CHARS,
            when_short="to have a new one generated",
        )
    except SecretFileError as error:
        raise HostSecretError(str(error)) from None
    return secret, data_dir / SECRET_FILE
