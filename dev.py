#!/usr/bin/env python3
"""Developer entry point: the same commands on a laptop and in CI.

    python3 dev.py run [runmarket options]   serve the market at http://127.0.0.1:8000
    python3 dev.py test [pytest options]     lint, type-check and run the tests
    python3 dev.py lint                      ruff check, ruff format --check, mypy
    python3 dev.py bench                     run every bench/bench_*.py in turn

Each command creates .venv when it is missing and reinstalls the requirements
whenever their text changes. Standard library only, so any Python 3.11 runs it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
RUNTIME_REQUIREMENTS = ROOT / "requirements.txt"
TEST_REQUIREMENTS = ROOT / "requirements-test.txt"
PYTEST_NO_TESTS_COLLECTED = 5


class DevError(Exception):
    """A step that cannot go on; its message tells the developer what to do."""


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def requirements_digest(path: Path) -> str:
    """Hash of a requirements file and every file it includes with -r."""
    digest = hashlib.sha256()
    pending = [path]
    seen: set[Path] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        text = current.read_text(encoding="utf-8")
        digest.update(current.name.encode() + b"\0" + text.encode())
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
                pending.append(current.parent / parts[1])
    return digest.hexdigest()


def venv_create() -> None:
    print(f"dev.py: creating {VENV.name} with {sys.executable}", flush=True)
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
    if result.returncode != 0 or not venv_python().exists():
        raise DevError(
            f"could not create a virtual environment in {VENV}.\n"
            "Python's venv module (with ensurepip) is needed. On Debian or Ubuntu: "
            "apt-get install python3-venv; then delete the partial .venv folder and retry."
        )


def venv_ensure(requirements: Path) -> Path:
    """A virtual environment with `requirements` installed; returns its python."""
    if not venv_python().exists():
        venv_create()
    stamp = VENV / f".installed-{requirements.name}.sha256"
    wanted = requirements_digest(requirements)
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return venv_python()
    print(f"dev.py: installing {requirements.name} into {VENV.name}", flush=True)
    install = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check"]
    if subprocess.run([*install, "--quiet", "-r", str(requirements)], cwd=ROOT).returncode != 0:
        raise DevError(
            f"pip could not install {requirements.name}; see the output above. "
            f"If {VENV.name} itself is broken, delete it and run this command again."
        )
    stamp.write_text(wanted + "\n")
    return venv_python()


def run_step(name: str, argv: Sequence[str]) -> bool:
    """Run one check; True when it passed."""
    print(f"\n== {name}: {' '.join(argv)}", flush=True)
    return subprocess.run(list(argv), cwd=ROOT).returncode == 0


def manage(python: Path, *args: str) -> list[str]:
    return [str(python), str(ROOT / "manage.py"), *args]


def has_typed_core() -> bool:
    """Whether zones/core holds any module beyond its __init__."""
    core = ROOT / "zones" / "core"
    return any(path.name != "__init__.py" for path in core.rglob("*.py"))


def lint_steps(python: Path) -> list[tuple[str, list[str]]]:
    steps = [
        ("ruff check", [str(python), "-m", "ruff", "check", "."]),
        ("ruff format", [str(python), "-m", "ruff", "format", "--check", "."]),
    ]
    if has_typed_core():
        steps.append(("mypy", [str(python), "-m", "mypy"]))  # pyproject.toml names the files
    return steps


def command_run(args: Sequence[str]) -> int:
    python = venv_ensure(RUNTIME_REQUIREMENTS)
    if subprocess.run(manage(python, "migrate", "--noinput"), cwd=ROOT).returncode != 0:
        raise DevError("manage.py migrate failed; see the output above.")
    argv = manage(python, "runmarket", *args)
    if os.name == "posix":
        # Replace this process so that Ctrl+C and SIGTERM reach the server directly.
        os.chdir(ROOT)
        os.execv(argv[0], argv)
    return subprocess.run(argv, cwd=ROOT).returncode


def command_lint(args: Sequence[str]) -> int:
    python = venv_ensure(TEST_REQUIREMENTS)
    failed = [name for name, argv in lint_steps(python) if not run_step(name, argv)]
    if failed:
        print(f"\ndev.py lint: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def command_test(args: Sequence[str]) -> int:
    python = venv_ensure(TEST_REQUIREMENTS)
    failed = [name for name, argv in lint_steps(python) if not run_step(name, argv)]
    pytest_code = subprocess.run([str(python), "-m", "pytest", *args], cwd=ROOT).returncode
    if pytest_code == PYTEST_NO_TESTS_COLLECTED:
        failed.append("pytest (no tests were collected, which counts as a failure)")
    elif pytest_code != 0:
        failed.append(f"pytest (exit code {pytest_code})")
    if failed:
        print(f"\ndev.py test: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def command_bench(args: Sequence[str]) -> int:
    python = venv_ensure(RUNTIME_REQUIREMENTS)
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    if not scripts:
        raise DevError("no bench/bench_*.py scripts to run.")
    failed = [s.name for s in scripts if not run_step(s.name, [str(python), str(s), *args])]
    if failed:
        print(f"\ndev.py bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "run": command_run,
    "test": command_test,
    "lint": command_lint,
    "bench": command_bench,
}


def main(argv: Sequence[str]) -> int:
    # dev.py runs under whatever python3 is on the PATH, before any venv exists.
    if sys.version_info < (3, 11):  # noqa: UP036
        print("dev.py: Fabric Market needs Python 3.11 or newer.", file=sys.stderr)
        return 1
    if len(argv) < 1 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except DevError as error:
        print(f"dev.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
