"""Re-sync the role groups: both may now view Endpoint health (postbacks/roles.py)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from postbacks.roles import sync_roles


def resync_roles(apps, schema_editor):
    # As in 0007_roles: permissions are normally created after all migrations ran.
    for app_label in ("affiliates", "conversions", "postbacks"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [("postbacks", "0010_rollup_schedule")]

    # Going back leaves the groups as they are: an extra view permission is harmless.
    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
