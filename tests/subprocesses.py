"""Running project code in a fresh Python process, away from this test session's settings."""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Variables that move the settings away from the embedded default.
SETTINGS_VARIABLES = (
    "REDIS_URL",
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "FABRIC_DEBUG",
    "ALLOWED_HOSTS",
)


def embedded_environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without service settings, plus `overrides`.

    Subprocesses started with it load the embedded default unless an override
    says otherwise, whatever the developer's shell has set.
    """
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env["FABRIC_DATA_DIR"] = str(data_dir)
    env.update(overrides)
    return env


def run_python(
    code: str, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `code` with this interpreter in a fresh process at the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_manage(
    *args: str, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `manage.py <args>` in a fresh process at the repository root."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
