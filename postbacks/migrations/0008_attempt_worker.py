"""Which node and process made each attempt (the attempt log shows work spread over nodes)."""

from django.db import migrations, models

import postbacks.models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0007_roles"),
    ]

    operations = [
        # Existing attempts stay blank rather than naming whoever ran the migration.
        migrations.AddField(
            model_name="deliveryattempt",
            name="worker",
            field=models.CharField(blank=True, default="", editable=False, max_length=100),
        ),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="worker",
            field=models.CharField(
                blank=True,
                default=postbacks.models.current_worker,
                editable=False,
                max_length=100,
            ),
        ),
    ]
