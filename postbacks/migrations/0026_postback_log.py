# Placeholder: filled by the change that owns it (kept empty if it needs no operations).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0025_performance"),
    ]

    operations = []
