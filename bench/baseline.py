"""zones/core as of an earlier commit, to measure a change against in the same run.

A bench takes the baseline's zones/core out of git into a temporary directory and
runs its measurement in fresh interpreters, baseline and current alternately, each
importing zones.core from its own tree: both see the same machine at the same time.
"""

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def core_tree(
    commit: str, into: Path, paths: tuple[str, ...] = ("zones/__init__.py", "zones/core")
) -> Path:
    """zones/__init__.py and zones/core of `commit` (or other `paths`), written under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, *paths],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def child_figures(script: str, root: Path, *args: str) -> Any:
    """The JSON a bench `script` prints when run as `script --child <root> args...`."""
    out = subprocess.run(
        [sys.executable, script, "--child", str(root), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # so the working directory's zones cannot be imported
    ).stdout
    return json.loads(out)


def imported_from(module: Any, root: str) -> None:
    """Stop unless `module` was imported from the tree under `root`."""
    if not Path(module.__file__).resolve().is_relative_to(Path(root).resolve()):
        raise SystemExit(f"{module.__name__} came from {module.__file__}, not from {root}")


def alternating_runs(
    commit: str,
    runs: int,
    figures: Callable[[Path, int], Any],
    paths: tuple[str, ...] = ("zones/__init__.py", "zones/core"),
) -> dict[str, list[Any]]:
    """`figures(root, run)` for the baseline tree of `commit` and the current one, `runs`
    times each, the order alternating from one run to the next so drifting load on a shared
    machine hits both."""
    out: dict[str, list[Any]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        roots = {"baseline": core_tree(commit, Path(tmp), paths), "current": REPO}
        for run in range(runs):
            order = ["baseline", "current"] if run % 2 == 0 else ["current", "baseline"]
            for name in order:
                out[name].append(figures(roots[name], run))
    return out
