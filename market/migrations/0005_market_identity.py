"""Every market gets an identity of its own, existing ones included.

A field added with a callable default gives every existing row the same value, so
the column is added empty, each market given its own UUID, then made unique.
"""

import uuid

from django.db import migrations, models


def identities_fill(apps, schema_editor):
    Market = apps.get_model("market", "Market")
    for market in Market.objects.filter(identity__isnull=True):
        market.identity = uuid.uuid4()
        market.save(update_fields=["identity"])


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0004_outbox_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="market",
            name="identity",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(identities_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="market",
            name="identity",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
