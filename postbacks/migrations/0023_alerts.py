# Placeholder: filled by the change that owns it (kept empty if it needs no operations).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0022_postback_headers"),
        ("affiliates", "0003_affiliate_manager"),
    ]

    operations = []
