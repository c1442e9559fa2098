"""A revoke committed by one process is seen by another process's tuple index within the bound.

Two real processes share one database (the embedded SQLite file, or a PostgreSQL schema):
a reader that keeps answering checks from its index, and writers that grant and revoke.
"""

import subprocess
import sys
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage, run_python

READER = """
import sys, time
import django
django.setup()
from django.conf import settings
from market.rebac.live import live_index
from market.rebac.selectors import rebac_check

for line in sys.stdin:
    command, *arguments = line.split()
    if command == "check":
        answer = rebac_check(object=arguments[0], relation=arguments[1], user=arguments[2])
        index = live_index("default", settings.REBAC_INDEX_POLL_SECONDS)
        print(answer, len(index), index.reloads, flush=True)
    elif command == "sleep":
        time.sleep(float(arguments[0]))
        print("slept", flush=True)
"""

WRITE = """
import sys, django
django.setup()
from market.rebac.services import rebac_tuple_delete, rebac_tuple_write
action, object, relation, user = sys.argv[1:]
if action == "grant":
    rebac_tuple_write(object=object, relation=relation, user=user)
else:
    assert rebac_tuple_delete(object=object, relation=relation, user=user)
print("committed")
"""

GRANT = ("namespace:7", "reader", "user:1")

EVERY_KIND_OF_WRITE = """
import django
django.setup()
from django.db import transaction
from market.rebac.models import RelationTuple, RelationTupleChange
from market.rebac.services import rebac_tuple_delete, rebac_tuple_write, rebac_tuples_write
from market.rebac.store import as_rows

grant = {"object": "namespace:7", "relation": "reader", "user": "user:1"}
rebac_tuple_write(**grant)
rebac_tuples_write(tuples=[grant, {**grant, "user": "user:2"}, {**grant, "user": "user:3"}])
RelationTuple.objects.bulk_create(as_rows([{**grant, "user": "user:4"}]))
RelationTuple.objects.filter(subject_id="3").update(subject_id="5")
try:
    with transaction.atomic():
        rebac_tuple_write(**{**grant, "user": "user:6"})
        raise RuntimeError
except RuntimeError:
    pass
rebac_tuple_delete(**grant)
RelationTuple.objects.filter(subject_id="2").delete()
epochs = set(RelationTupleChange.objects.values_list("epoch", flat=True))
assert len(epochs) == 1, epochs
for change in RelationTupleChange.objects.order_by("revision"):
    print(change.revision, change.op, change.subject_id)
"""


class Reader:
    """A process answering checks from its own tuple index, one line at a time."""

    def __init__(self, env):
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> list[str]:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise AssertionError(self.process.stderr.read())
        return answer.split()

    def check(self, object: str, relation: str, user: str) -> tuple[bool, int, int]:
        answer, size, reloads = self.ask(f"check {object} {relation} {user}")
        return answer == "True", int(size), int(reloads)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def write(env, action: str, object: str, relation: str, user: str) -> None:
    code = WRITE.replace("sys.argv[1:]", repr([action, object, relation, user]))
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "committed"


@pytest.fixture
def sqlite_env(tmp_path):
    return embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")


@pytest.fixture
def postgresql_env(tmp_path, postgres_url):
    """The embedded settings, with the records in a fresh PostgreSQL schema."""
    schema = f"fabric_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'create schema "{schema}"')
    parts = urlsplit(postgres_url)
    option = "options=" + quote(f"-c search_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    env["DATABASE_URL"] = urlunsplit(parts._replace(query=query))
    try:
        yield env
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'drop schema "{schema}" cascade')


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request):
    env = request.getfixturevalue(f"{request.param}_env")
    migrate = run_manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    return env


def test_a_revoke_in_one_process_is_seen_by_the_next_check_of_another(env):
    write(env, "grant", "namespace:8", "reader", "user:2")  # the log's first change
    reader = Reader(env)
    try:
        assert reader.check(*GRANT) == (False, 1, 1)  # the index is loaded, once
        write(env, "grant", *GRANT)
        assert reader.check(*GRANT) == (True, 2, 1)
        write(env, "revoke", *GRANT)
        # The default bound is zero: each check asks the log first.
        assert reader.check(*GRANT) == (False, 1, 1)
        assert reader.check("namespace:8", "can_read", "user:2") == (True, 1, 1)
    finally:
        reader.close()


def test_with_a_poll_interval_a_revoke_is_seen_once_the_interval_has_passed(env):
    write(env, "grant", *GRANT)
    reader = Reader({**env, "REBAC_INDEX_POLL_SECONDS": "0.5"})
    try:
        assert reader.check(*GRANT)[0]
        write(env, "revoke", *GRANT)
        reader.ask("sleep 0.5")
        assert reader.check(*GRANT) == (False, 0, 1)
    finally:
        reader.close()


def test_every_kind_of_tuple_write_is_logged_in_commit_order_with_dense_revisions(env):
    result = run_python(EVERY_KIND_OF_WRITE, env)

    assert result.returncode == 0, result.stderr
    # Writes (the first tuple kept, not written twice), an update as a deletion then a
    # write, nothing of the rolled-back write, then two deletions.
    assert result.stdout.split("\n")[:-1] == [
        "1 w 1",
        "2 w 2",
        "3 w 3",
        "4 w 4",
        "5 d 3",
        "6 w 5",
        "7 d 1",
        "8 d 2",
    ]


def test_a_poll_interval_that_is_not_a_number_stops_the_process(sqlite_env):
    result = run_python(
        "import django; django.setup()", {**sqlite_env, "REBAC_INDEX_POLL_SECONDS": "soon"}
    )

    assert result.returncode != 0
    assert "REBAC_INDEX_POLL_SECONDS must be a number of seconds" in result.stderr
