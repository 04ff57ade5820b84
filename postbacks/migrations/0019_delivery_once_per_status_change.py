"""The once-only key becomes (postback, status change), so a change back into a status sent
before fires again; and the partial index the claims' ordering test reads (open rows only)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0018_link_deliveries_to_status_changes"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="delivery",
            name="delivery_once_per_event",
        ),
        migrations.AddConstraint(
            model_name="delivery",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_test", False)),
                fields=("postback", "status_change"),
                name="delivery_once_per_status_change",
            ),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("state__in", ("pending", "retrying"))),
                fields=["conversion", "postback", "status_change"],
                name="delivery_open_per_conversion",
            ),
        ),
    ]
