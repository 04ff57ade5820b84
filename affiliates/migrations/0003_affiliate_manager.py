"""The affiliate's manager: the user who gets their postback alerts (postbacks/alerts.py)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("affiliates", "0002_affiliate_click_field"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="affiliate",
            name="manager",
            field=models.ForeignKey(
                blank=True,
                help_text="The affiliate's manager: gets an e-mail when one of their postbacks "
                "is paused or its endpoint keeps failing (as does the Affiliate managers group).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="managed_affiliates",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
