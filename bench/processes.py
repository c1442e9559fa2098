"""What the benchmarks that start servers share: free ports and manage.py calls."""

import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_LINES = 30


class BenchError(Exception):
    """Something the bench cannot go on without; the message says what and why."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> str:
    """Run manage.py with `env`; its stdout, or BenchError with the last lines it printed."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        said = (result.stdout + result.stderr).rstrip().splitlines()[-LOG_TAIL_LINES:]
        raise BenchError(f"manage.py {args[0]} failed; its last lines:\n" + "\n".join(said))
    return result.stdout
