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
