# Placeholder: filled by the change that owns it (kept empty if it needs no operations).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("affiliates", "0002_affiliate_click_field"),
    ]

    operations = []
