# Placeholder: filled by the change that owns it (kept empty if it needs no operations).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0006_ecb_import_schedule"),
    ]

    operations = []
