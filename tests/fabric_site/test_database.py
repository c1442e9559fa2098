"""With DATABASE_URL the records live in PostgreSQL: migrations apply and the ORM writes."""

import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from tests.subprocesses import embedded_environment, run_manage, run_python

CREATE_MARKET_AND_BOOTH = """
import django
django.setup()
from django.db import connection
from market.models import Booth, Market

market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
Booth.objects.create(market=market, name="Looms", colour="#aa3300", zone_index=0)
booth = Booth.objects.get(market__slug="weavers-row")
with connection.cursor() as cursor:
    cursor.execute("select current_schema()")
    schema = cursor.fetchone()[0]
print(connection.vendor, schema, booth.name, booth.colour, market.width_x_m)
"""


@pytest.fixture
def postgres_schema_url(postgres_url):
    """The test database URL, confined to a fresh schema dropped afterwards."""
    schema = f"fabric_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'create schema "{schema}"')
    parts = urlsplit(postgres_url)
    option = "options=" + quote(f"-c search_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    try:
        yield schema, urlunsplit(parts._replace(query=query))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'drop schema "{schema}" cascade')


def test_migrate_then_orm_writes_to_postgresql(tmp_path, postgres_schema_url):
    schema, url = postgres_schema_url
    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    env["DATABASE_URL"] = url

    migrate = run_manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying market.0001_initial... OK" in migrate.stdout

    created = run_python(CREATE_MARKET_AND_BOOTH, env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.split() == ["postgresql", schema, "Looms", "#aa3300", "128.0"]
    assert not (tmp_path / "fabric.sqlite3").exists()


WRITE_MANY = """
import django, sys
django.setup()
from django.db import connection, transaction
from market.models import Market

with connection.cursor() as cursor:
    cursor.execute("pragma journal_mode")
    print(cursor.fetchone()[0])
for i in range(150):
    with transaction.atomic():  # read, then write: the upgrade that used to fail
        count = Market.objects.count()
        Market.objects.create(name=f"m{sys.argv[1]}-{i}-{count}", slug=f"m{sys.argv[1]}-{i}")
print("done")
"""


def test_the_embedded_database_takes_writes_from_several_processes_at_once(tmp_path):
    """Web processes, the outbox relay and commands share the SQLite file: a transaction
    that reads then writes waits for the lock instead of failing 'database is locked'."""
    import subprocess
    import sys

    from tests.subprocesses import REPO_ROOT

    env = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITE_MANY, str(n)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outcomes = [writer.communicate(timeout=120) for writer in writers]
    for (out, err), writer in zip(outcomes, writers, strict=True):
        assert writer.returncode == 0, err[-2000:]
        assert out.split() == ["wal", "done"]
