"""The "Conversion API" role (postbacks/roles.py), now that the API enforces model permissions,
and the service users that already hold a token put in it, so their clients keep recording
conversions. A token used for configuration needs "Affiliate managers" as well (docs/api.md).
"""

from django.conf import settings
from django.db import migrations

from postbacks.roles import SERVICE, sync_roles_in_migration


def add_service_role(apps, schema_editor):
    sync_roles_in_migration(apps)
    Group = apps.get_model("auth", "Group")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    # Service users as the token admin makes them: no staff or superuser flag, no role yet.
    # Staff users with a token keep the role they have.
    service_users = User.objects.filter(
        auth_token__isnull=False, is_staff=False, is_superuser=False, groups__isnull=True
    )
    Group.objects.get(name=SERVICE).user_set.add(*service_users)


def remove_service_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SERVICE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0014_affiliate_click_field"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(add_service_role, remove_service_role)]
