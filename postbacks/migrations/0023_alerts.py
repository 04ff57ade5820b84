"""Alerts (postbacks/alerts.py): the Alert table, the every-minute check that raises and e-mails
them, and the roles re-synced (everyone views alerts; Affiliate managers acknowledge them)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from postbacks.roles import sync_roles_in_migration

SCHEDULE = "postbacks: alerts"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE,
        defaults={
            "func": "postbacks.delivery.tasks.check_alerts",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE).delete()


def resync_roles(apps, schema_editor):
    sync_roles_in_migration(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0022_postback_headers"),
        ("affiliates", "0003_affiliate_manager"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Alert",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("paused", "Postback paused"),
                            ("failing", "Endpoint keeps failing"),
                        ],
                        max_length=10,
                    ),
                ),
                (
                    "subject",
                    models.CharField(
                        help_text="What the alert is about: postback:<id> or endpoint:<host:port>.",
                        max_length=320,
                    ),
                ),
                ("endpoint", models.CharField(blank=True, max_length=300)),
                ("summary", models.TextField()),
                ("last_error", models.TextField(blank=True)),
                (
                    "created",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "mailed_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="e-mailed"),
                ),
                ("mailed_to", models.TextField(blank=True, verbose_name="e-mailed to")),
                ("mail_error", models.TextField(blank=True, verbose_name="e-mail error")),
                ("acknowledged_at", models.DateTimeField(blank=True, null=True)),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "postback",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="postbacks.postback",
                    ),
                ),
            ],
            options={
                "ordering": ["-created"],
                "permissions": [("acknowledge_alert", "Can acknowledge an alert")],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("acknowledged_at__isnull", True)),
                        fields=("subject",),
                        name="alert_one_open_per_subject",
                    )
                ],
            },
        ),
        migrations.RunPython(create_schedule, remove_schedule),
        migrations.RunPython(resync_roles, migrations.RunPython.noop),
    ]
