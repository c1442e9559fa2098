"""The engine is pure Python: importing any of its modules loads no Django."""

import json

import pytest

from tests.subprocesses import REPO_ROOT, embedded_environment, run_python

DJANGO_MODULES = frozenset({"models", "store", "services", "selectors", "live"})
PURE_MODULES = sorted(
    f"market.rebac.{path.stem}" if path.stem != "__init__" else "market.rebac"
    for path in (REPO_ROOT / "market" / "rebac").glob("*.py")
    if path.stem not in DJANGO_MODULES
)


def django_loaded_by(module, tmp_path):
    """Django modules a fresh interpreter has loaded after importing `module`."""
    code = (
        "import importlib, json, sys; "
        f"importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    )
    result = run_python(code, embedded_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    return [name for name in json.loads(result.stdout) if name.split(".")[0] == "django"]


@pytest.mark.parametrize("module", PURE_MODULES)
def test_importing_an_engine_module_loads_no_django(module, tmp_path):
    assert django_loaded_by(module, tmp_path) == []


def test_the_engine_modules_are_all_covered():
    assert {"market.rebac", "market.rebac.engine", "market.rebac.resolution"} <= set(PURE_MODULES)


def test_control_the_check_sees_django_when_a_module_imports_it(tmp_path):
    assert django_loaded_by("django.db", tmp_path) != []
