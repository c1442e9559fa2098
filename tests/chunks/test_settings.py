"""The chunk store's settings: defaults under FABRIC_DATA_DIR, each overridable."""

import json

from tests.subprocesses import embedded_environment, run_python

READ = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({
    "store": str(settings.CHUNK_STORE_DIR),
    "max": settings.CHUNK_MAX_BYTES,
    "grace": settings.CHUNK_GC_GRACE_SECONDS,
    "read_cache": settings.CHUNK_READ_CACHE_SECONDS,
}))
"""


def chunk_settings(tmp_path, **environment):
    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    env = {name: value for name, value in env.items() if not name.startswith("CHUNK_")}
    env.update(environment)
    result = run_python(READ, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_keep_chunks_under_the_data_dir(tmp_path):
    assert chunk_settings(tmp_path) == {
        "store": str(tmp_path / "chunks"),
        "max": 64 * 1024 * 1024,
        "grace": 3600,
        "read_cache": 2,
    }


def test_each_setting_follows_its_environment_variable(tmp_path):
    loaded = chunk_settings(
        tmp_path,
        CHUNK_STORE_DIR=str(tmp_path / "elsewhere"),
        CHUNK_MAX_BYTES="1024",
        CHUNK_GC_GRACE_SECONDS="60",
        CHUNK_READ_CACHE_SECONDS="0",
    )

    assert loaded == {
        "store": str(tmp_path / "elsewhere"),
        "max": 1024,
        "grace": 60,
        "read_cache": 0,
    }
