"""The audit trail of postback changes (postbacks/audit.py): who, when, from where, what."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0025_postback_log"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PostbackAudit",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("actor", models.CharField(blank=True, max_length=150)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("admin", "Admin"),
                            ("api", "API"),
                            ("portal", "Affiliate portal"),
                            ("approval", "Approved change"),
                            ("assistant", "Assistant"),
                        ],
                        max_length=10,
                    ),
                ),
                (
                    "created",
                    models.BooleanField(default=False, help_text="The postback was created."),
                ),
                ("changes", models.JSONField(blank=True, default=list)),
                ("note", models.CharField(blank=True, max_length=300)),
                (
                    "postback",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="audit_log",
                        to="postbacks.postback",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "postback change",
                "ordering": ["-at", "-id"],
                "indexes": [
                    models.Index(fields=["postback", "-at"], name="postbacks_p_postbac_8f5603_idx")
                ],
            },
        ),
    ]
