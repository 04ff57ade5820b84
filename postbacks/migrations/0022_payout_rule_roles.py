"""Re-sync the role groups: managers add and change payout rules, both roles view them
(postbacks/roles.py)."""

from django.db import migrations

from postbacks.roles import sync_roles_in_migration


def resync_roles(apps, schema_editor):
    sync_roles_in_migration(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0021_managers_manage_rates"),
        ("conversions", "0005_payout_rule"),
    ]

    # Going back leaves the groups as they are: the permissions go with the model.
    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
