import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from postbacks.roles import sync_roles_in_migration


def resync_roles(apps, schema_editor):
    """Give "Affiliate managers" portal.invite_affiliateuser (listed in postbacks/roles.py)."""
    sync_roles_in_migration(apps)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("affiliates", "0003_affiliate_manager"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("postbacks", "0023_alerts"),  # the roles exist
    ]

    operations = [
        migrations.CreateModel(
            name="AffiliateUser",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("invited", models.DateTimeField(auto_now_add=True)),
                (
                    "affiliate",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="portal_users",
                        to="affiliates.affiliate",
                    ),
                ),
                (
                    "invited_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="affiliate_user",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "portal user",
                "permissions": [
                    ("invite_affiliateuser", "Can invite affiliate users to the portal")
                ],
            },
        ),
        migrations.RunPython(resync_roles, migrations.RunPython.noop),
    ]
