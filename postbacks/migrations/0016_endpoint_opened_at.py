"""When an endpoint's breaker opened: a failed probe backs off for a quarter of the time since."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0015_api_roles"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpointhealth",
            name="opened_at",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "When the breaker opened; a failed probe backs off for longer the longer ago."
                ),
                null=True,
                verbose_name="backed off since",
            ),
        ),
    ]
