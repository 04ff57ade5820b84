"""Resend: a delivery may be a new send of a finished one (same status change, same id header);
the once-only key holds for the originals only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0023_alerts"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="resend_of",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="resends",
                to="postbacks.delivery",
            ),
        ),
        migrations.AddField(
            model_name="delivery",
            name="original_uid",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.RemoveConstraint(
            model_name="delivery",
            name="delivery_once_per_status_change",
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_test", False), ("original_uid__isnull", True)),
                fields=("postback", "status_change"),
                name="delivery_once_per_status_change",
            ),
        ),
    ]
