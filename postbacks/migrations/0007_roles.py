"""The "Affiliate managers" and "Support staff" groups (see postbacks/roles.py)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from postbacks.roles import ROLES, sync_roles


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; the groups need them now.
    for app_label in ("affiliates", "conversions", "postbacks"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0006_test_sends"),
        ("affiliates", "0001_initial"),
        ("conversions", "0002_seed_conversion_types"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
