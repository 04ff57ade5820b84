"""Affiliates' postback changes waiting for a manager (portal/moderation.py); managers get the
permission to approve them through a roles re-sync (postbacks/roles.py)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from postbacks.roles import sync_roles_in_migration


def resync_roles(apps, schema_editor):
    sync_roles_in_migration(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("postbacks", "0026_postback_audit"),
        ("affiliates", "0003_affiliate_manager"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PostbackProposal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("is_new", models.BooleanField(default=False, verbose_name="new postback")),
                ("values", models.JSONField(default=dict)),
                ("base", models.JSONField(blank=True, default=dict)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Waiting for approval"),
                            ("approved", "Approved"),
                            ("rejected", "Rejected"),
                            ("withdrawn", "Replaced or withdrawn"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                (
                    "reason",
                    models.TextField(
                        blank=True, help_text="Shown to the affiliate.", verbose_name="reason"
                    ),
                ),
                ("proposed_at", models.DateTimeField(auto_now_add=True)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "affiliate",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="postback_proposals",
                        to="affiliates.affiliate",
                    ),
                ),
                (
                    "decided_by",
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
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="proposals",
                        to="postbacks.postback",
                    ),
                ),
                (
                    "proposed_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "postback change to approve",
                "verbose_name_plural": "postback changes to approve",
                "ordering": ["-proposed_at", "-id"],
                "permissions": [
                    ("approve_postbackproposal", "Can approve or reject postback changes")
                ],
                "indexes": [
                    models.Index(fields=["state", "proposed_at"], name="portal_post_state_07aa59_idx")
                ],
            },
        ),
        migrations.RunPython(resync_roles, migrations.RunPython.noop),
    ]
