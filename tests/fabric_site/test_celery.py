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


GARBAGE_THROUGH_WORKER = """
import os, datetime
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from fabric_site import celery_app
celery_app.conf.task_default_queue = "fabric-test-" + os.urandom(4).hex()
from chunks.models import Chunk
from chunks.storage import chunk_store
from chunks.tasks import chunk_collect_garbage
import blake3

data = b"left behind" * 100
digest = blake3.blake3(data).hexdigest()
path = chunk_store().path_for(digest)
path.parent.mkdir(parents=True, exist_ok=True)
path.write_bytes(data)
old = timezone.now() - datetime.timedelta(days=1)
Chunk.objects.create(hash=digest, size=len(data), created_at=old, touched_at=old)

import celery.contrib.testing.tasks
from celery.contrib.testing.worker import start_worker

with start_worker(celery_app, pool="solo", perform_ping_check=True, shutdown_timeout=10):
    result = chunk_collect_garbage.delay()
    print(type(result).__name__, result.get(timeout=30), path.exists(), Chunk.objects.count())
"""


def test_chunk_garbage_collection_runs_on_a_worker_through_redis(tmp_path, redis_url):
    env = embedded_environment(
        tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings", REDIS_URL=redis_url
    )
    result = run_python(GARBAGE_THROUGH_WORKER, env, timeout=120)

    assert result.returncode == 0, result.stderr
    kind, rest = result.stdout.split(" ", 1)
    assert kind == "AsyncResult"
    assert rest.strip().endswith("False 0"), rest  # the file and its row are gone
