"""Re-sync the role groups: both may now view Endpoint health (postbacks/roles.py)."""

from django.db import migrations

from postbacks.roles import sync_roles_in_migration


def resync_roles(apps, schema_editor):
    sync_roles_in_migration(apps)


class Migration(migrations.Migration):
    dependencies = [("postbacks", "0010_rollup_schedule")]

    # Going back leaves the groups as they are: an extra view permission is harmless.
    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
