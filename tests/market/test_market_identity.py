"""Every market has an identity of its own, which tells apart markets numbered alike."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from market.models import Market

BEFORE = [("market", "0004_outbox_event")]
AFTER = [("market", "0005_market_identity")]


@pytest.mark.django_db
def test_new_markets_have_identities_of_their_own():
    one = Market.objects.create(name="A", slug="a")
    two = Market.objects.create(name="B", slug="b")
    assert one.identity and two.identity and one.identity != two.identity


@pytest.mark.django_db(transaction=True)
def test_markets_made_before_identities_each_get_their_own():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("market", "Market")
    for slug in ("a", "b", "c"):
        old.objects.create(name=slug, slug=slug)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    identities = set(Market.objects.values_list("identity", flat=True))
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # as the other tests expect it
    assert len(identities) == 3 and None not in identities
