"""Re-sync the role groups: Affiliate managers add and change exchange rates, so a postback
waiting for a missing rate does not need an administrator; both roles see payout rules, and
managers add and change them (postbacks/roles.py)."""

from django.db import migrations

from postbacks.roles import sync_roles_in_migration


def resync_roles(apps, schema_editor):
    sync_roles_in_migration(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0020_delivery_waiting_for_rate"),
        # After the payout rule's table, so its permissions are there to give.
        ("conversions", "0005_payout_rule"),
    ]

    # Going back leaves the groups as they are (a later sync sets them).
    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
