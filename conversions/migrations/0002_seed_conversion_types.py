"""Seed Trackdesk's default conversion types and the common extras."""

from django.db import migrations

DEFAULT_TYPES = [
    ("sale", "Sale"),
    ("lead", "Lead"),
    ("free-trial", "Free trial"),
    ("registration", "Registration"),
    ("deposit", "Deposit"),
]


def seed(apps, schema_editor):
    ConversionType = apps.get_model("conversions", "ConversionType")
    for code, name in DEFAULT_TYPES:
        ConversionType.objects.get_or_create(code=code, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("conversions", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
