"""Deliveries point at the status change they announce (the new once-only key, see 0019)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0001_initial"),
        ("postbacks", "0016_endpoint_opened_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="status_change",
            field=models.ForeignKey(
                blank=True,
                help_text=(
                    "The change into `status` this delivery announces; blank for a test send."
                ),
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="conversions.conversionstatuschange",
            ),
        ),
    ]
