"""The "Affiliate managers" and "Support staff" groups (see postbacks/roles.py)."""

from django.db import migrations

from postbacks.roles import ROLES, sync_roles_in_migration


def create_roles(apps, schema_editor):
    sync_roles_in_migration(apps)


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
