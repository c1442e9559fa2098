"""zones.core stays pure: it imports no web framework, service client or project app.

Two checks: every import statement in the source (including relative ones that
climb out of the package), and what a fresh interpreter has loaded after
importing each module, which also catches imports made at run time.
"""

import ast
import json
from pathlib import Path

import pytest

from tests.subprocesses import REPO_ROOT, embedded_environment, run_python

CORE_PACKAGE = "zones.core"
CORE_DIR = REPO_ROOT / "zones" / "core"

FORBIDDEN_PACKAGES = frozenset(
    {
        "django",
        "channels",
        "channels_redis",
        "celery",
        "kombu",
        "rest_framework",
        "guardian",
        "redis",
        "daphne",
        "uvicorn",
        "fabric_site",
        "chunks",
        "market",
        "operator_ui",
    }
)


def module_name(path: Path) -> str:
    """Dotted name of a source file under the repository root."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_forbidden(module: str) -> bool:
    """Whether importing `module` would tie the core to the platform around it."""
    top = module.split(".")[0]
    if top == "zones":
        return module != CORE_PACKAGE and not module.startswith(CORE_PACKAGE + ".")
    return top in FORBIDDEN_PACKAGES


def resolve_relative(module: str | None, level: int, package: str) -> str:
    """Absolute name of `from <level dots><module> import ...` inside `package`."""
    base = package.split(".")
    if level > len(base):
        return "<beyond the top-level package>"
    anchor = base[: len(base) - level + 1]
    return ".".join(anchor + ([module] if module else []))


def forbidden_imports(source: str, *, package: str = CORE_PACKAGE) -> list[str]:
    """Forbidden modules imported by `source`, a module of `package`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                resolve_relative(node.module, node.level, package)
                if node.level
                else node.module or ""
            )
            # `from zones import core` imports zones.core, not zones' other modules.
            targets = (
                [f"{base}.{alias.name}" for alias in node.names] if base == "zones" else [base]
            )
        else:
            continue
        found += [target for target in targets if is_forbidden(target)]
    return found


def core_sources() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@pytest.mark.parametrize("path", core_sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_core_source_imports_nothing_forbidden(path):
    source = path.read_text(encoding="utf-8")

    assert forbidden_imports(source, package=package_of(path)) == []


@pytest.mark.parametrize("path", core_sources(), ids=lambda p: module_name(p))
def test_importing_a_core_module_loads_nothing_forbidden(path, tmp_path):
    name = module_name(path)
    env = embedded_environment(tmp_path)
    code = f"import importlib, json, sys; importlib.import_module({name!r}); print(json.dumps(sorted(sys.modules)))"

    result = run_python(code, env)

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    # The parent package `zones` is loaded on the way in; its __init__ imports nothing.
    assert [m for m in loaded if m != "zones" and is_forbidden(m)] == []


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import django\n", ["django"]),
        ("from django.db import models\n", ["django.db"]),
        ("import numpy as np, channels.layers\n", ["channels.layers"]),
        ("from market.models import Booth\n", ["market.models"]),
        ("from zones import runtime\n", ["zones.runtime"]),
        ("from .. import serve\n", ["zones.serve"]),
        ("from ..runtime import run_embedded_zones\n", ["zones.runtime"]),
        ("def later():\n    import celery\n", ["celery"]),
    ],
)
def test_checker_flags_a_planted_forbidden_import(source, flagged):
    assert forbidden_imports(source, package=CORE_PACKAGE) == flagged


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\n",
        "from . import hilbert\n",
        "from .constants import ZONE_CAPACITY\n",
        "from zones.core.constants import CODE_SPACE\n",
        "from zones import core\n",
    ],
)
def test_checker_lets_numpy_and_the_core_itself_through(source):
    assert forbidden_imports(source, package=CORE_PACKAGE) == []


def test_subprocess_check_sees_a_runtime_import_of_django(tmp_path):
    env = embedded_environment(tmp_path)
    code = "import importlib, json, sys; importlib.import_module('django.db'); print(json.dumps(sorted(sys.modules)))"

    loaded = json.loads(run_python(code, env).stdout)

    assert "django.db" in loaded
    assert any(is_forbidden(m) for m in loaded)
