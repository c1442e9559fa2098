"""The Celery app runs tasks inline when embedded and through Redis when distributed."""

from tests.subprocesses import embedded_environment, run_python

MULTIPLY_TASK = """
import os
import django
django.setup()
from fabric_site import celery_app

# A queue of this run's own, so that no other worker on the same Redis takes the task.
celery_app.conf.task_default_queue = "fabric-test-" + os.urandom(4).hex()

@celery_app.task(name="tests.multiply")
def multiply(a, b):
    return a * b
"""

EAGER_ROUND_TRIP = (
    MULTIPLY_TASK
    + """
import threading
result = multiply.delay(6, 7)
print(type(result).__name__, result.get(timeout=5), threading.active_count())
"""
)

WORKER_ROUND_TRIP = (
    MULTIPLY_TASK
    + """
import celery.contrib.testing.tasks  # registers celery.ping, which start_worker waits for
from celery.contrib.testing.worker import start_worker

with start_worker(celery_app, pool="solo", perform_ping_check=True, shutdown_timeout=10):
    result = multiply.delay(6, 7)
    print(type(result).__name__, result.get(timeout=30))
"""
)


def test_embedded_default_runs_tasks_inline(tmp_path):
    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    result = run_python(EAGER_ROUND_TRIP, env)

    assert result.returncode == 0, result.stderr
    kind, value, threads = result.stdout.split()
    assert (kind, value) == ("EagerResult", "42")
    assert threads == "1"  # no worker, no broker connection thread


def test_worker_runs_task_through_redis_and_result_comes_back(tmp_path, redis_url):
    env = embedded_environment(
        tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings", REDIS_URL=redis_url
    )
    result = run_python(WORKER_ROUND_TRIP, env, timeout=90)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["AsyncResult", "42"]
