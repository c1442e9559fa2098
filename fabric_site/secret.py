"""The site's secret key when none is given: generated once, kept in the data folder.

A fresh clone must serve safely with nothing set, so the key cannot live in the code.
The first process to need it writes a random key to `<FABRIC_DATA_DIR>/secret_key`,
readable by its owner only; every later process (the zone workers, a restarted server)
reads the same file, so join tickets and sessions outlive restarts. Processes starting
together cannot end up with different keys (fabric_site/secret_files.py).

Hosts that do not share a data folder must share the key instead: DJANGO_SECRET_KEY.
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from fabric_site.secret_files import SecretFileError, secret_file_ensure, secret_generate

SECRET_KEY_FILE = "secret_key"
SECRET_KEY_MIN_CHARS = 50


def secret_key_generate() -> str:
    """A new random key: 64 URL-safe characters (384 bits)."""
    return secret_generate()


def secret_key_in(data_dir: Path) -> str:
    """The site's secret key kept in `data_dir`, generated on first use."""
    try:
        return secret_file_ensure(
            data_dir / SECRET_KEY_FILE,
            holds="the site's secret key",
            min_chars=SECRET_KEY_MIN_CHARS,
            when_short="to have a new key generated (signed-in sessions and join tickets then end)",
        )
    except SecretFileError as error:
        raise ImproperlyConfigured(str(error)) from None
