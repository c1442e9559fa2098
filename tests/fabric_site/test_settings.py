"""Settings follow the environment, and fall back to the embedded default."""

import json
import os
import subprocess
import sys

import pytest

from tests.subprocesses import REPO_ROOT, embedded_environment, run_python

READ_SETTINGS = """
import json
import django
from django.conf import settings
django.setup()
from fabric_site import celery_app
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "database_name": str(settings.DATABASES["default"]["NAME"]),
    "channel_backend": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "channel_hosts": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "celery_broker": settings.CELERY_BROKER_URL,
    "celery_eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "celery_app_broker": celery_app.conf.broker_url,
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "secret_key": settings.SECRET_KEY,
}))
"""


def settings_under(tmp_path, **environment):
    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    env.update(environment)
    result = run_python(READ_SETTINGS, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_embedded_default_needs_no_service(tmp_path):
    loaded = settings_under(tmp_path)

    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["database_name"] == str(tmp_path / "fabric.sqlite3")
    assert loaded["channel_backend"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["celery_eager"] is True
    assert loaded["debug"] is False


def test_redis_url_moves_channel_layer_and_celery_to_redis(tmp_path):
    url = "redis://127.0.0.1:6379/3"
    loaded = settings_under(tmp_path, REDIS_URL=url)

    assert loaded["channel_backend"] == "fabric_site.redis_layer.FabricRedisChannelLayer"
    assert loaded["channel_hosts"] == [{"address": url, "socket_timeout": 30}]
    assert loaded["celery_broker"] == url
    assert loaded["celery_app_broker"] == url
    assert loaded["celery_eager"] is False


def test_database_url_selects_postgresql(tmp_path):
    loaded = settings_under(tmp_path, DATABASE_URL="postgresql://fabric@db.invalid:5432/fabric")

    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["database_name"] == "fabric"


def test_allowed_hosts_come_from_a_comma_separated_list(tmp_path):
    loaded = settings_under(tmp_path, ALLOWED_HOSTS="market.example, 10.0.0.5")

    assert loaded["allowed_hosts"] == ["market.example", "10.0.0.5"]


def test_debug_mode_is_an_explicit_opt_in(tmp_path):
    assert settings_under(tmp_path, FABRIC_DEBUG="1")["debug"] is True
    assert settings_under(tmp_path, FABRIC_DEBUG="0")["debug"] is False
    assert settings_under(tmp_path, FABRIC_DEBUG="")["debug"] is False


def test_a_debug_setting_that_is_neither_0_nor_1_is_refused(tmp_path):
    env = embedded_environment(
        tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings", FABRIC_DEBUG="yes"
    )
    result = run_python(READ_SETTINGS, env)

    assert result.returncode != 0
    assert "FABRIC_DEBUG is 1 (debug pages) or 0 (the default), not 'yes'" in result.stderr


def test_without_a_secret_key_one_is_generated_under_the_data_folder_and_kept(tmp_path):
    first = settings_under(tmp_path)
    key_file = tmp_path / "secret_key"

    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first["secret_key"] == key_file.read_text().strip()
    assert len(first["secret_key"]) >= 50
    assert settings_under(tmp_path)["secret_key"] == first["secret_key"]
    assert settings_under(tmp_path / "elsewhere")["secret_key"] != first["secret_key"]


def test_a_given_secret_key_is_used_and_nothing_is_written(tmp_path):
    loaded = settings_under(tmp_path, DJANGO_SECRET_KEY="s3cret-for-this-test")

    assert loaded["secret_key"] == "s3cret-for-this-test"
    assert not (tmp_path / "secret_key").exists()


SAFE_BY_DEFAULT = """
import django, sys
django.setup()
from django.test import Client
client = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
missing = client.get("/no-such-page/")
oversized = client.post(
    "/api/markets/1/join/", data=b"{" * (3 * 1024 * 1024), content_type="application/json"
)
failed = client.get("/")
outage = client.post("/api/markets/1/join/", data=b"{}", content_type="application/json")
answers = (("missing", missing), ("oversized", oversized), ("failed", failed), ("outage", outage))
for name, answer in answers:
    print(name, answer.status_code, answer.content.decode(errors="replace").replace(chr(10), " "))
"""


def test_with_nothing_set_error_pages_show_no_urls_nor_settings_and_errors_are_logged(tmp_path):
    # a database that refuses connections makes the landing page fail with a server error,
    # and the join answer that the market is not ready (fabric_site/readiness.py)
    database_url = "postgresql://fabric:hunter2-password@127.0.0.1:1/fabric"
    env = embedded_environment(
        tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings", DATABASE_URL=database_url
    )
    result = run_python(SAFE_BY_DEFAULT, env)

    assert result.returncode == 0, result.stderr
    answers = {line.split(" ", 2)[0]: line.split(" ", 2)[1:] for line in result.stdout.splitlines()}
    assert answers["missing"][0] == "404"
    assert answers["oversized"][0] == "400"
    assert answers["failed"][0] == "500"
    assert answers["outage"][0] == "503"
    assert '"error": "service_unavailable"' in answers["outage"][1]
    for _status, page in answers.values():
        assert "hunter2" not in page and "DATABASE_URL" not in page
        assert "urlpatterns" not in page.lower() and "api/markets/" not in page
    # the failure is not hidden: its traceback is on stderr
    assert "Internal Server Error: /\n" in result.stderr
    assert "OperationalError" in result.stderr
    assert "not ready: database does not answer" in result.stderr


MATRIX_THREADS = (
    "import os, numpy as np\n"
    "a, b = np.ones((300, 3), np.float32), np.ones((3, 5000), np.float32)\n"
    "for _ in range(50): a @ b\n"
    "print(len(os.listdir('/proc/self/task')))\n"
)


def blas_threads(prelude: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", prelude + MATRIX_THREADS],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS starts no threads anyway")
def test_the_market_s_processes_multiply_matrices_on_one_thread():
    assert blas_threads("import fabric_site\n") == 1
    # control: numpy loaded without the project's package first spreads over every core
    assert blas_threads("") > 1


def test_a_web_process_moves_what_it_loaded_out_of_the_collector_s_reach(tmp_path):
    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    done = run_python(
        "import gc\n"
        "before = gc.get_freeze_count()\n"
        "import fabric_site.asgi\n"
        "print(before, gc.get_freeze_count())\n",
        env,
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before == 0 and after > 10_000  # Django, the apps and numpy, frozen
