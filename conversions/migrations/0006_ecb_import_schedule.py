"""The daily ECB rate import (conversions.tasks.import_ecb_rates; does nothing while
ECB_RATES_SOURCE is empty)."""

from django.db import migrations

NAME = "conversions: import ECB exchange rates"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "conversions.tasks.import_ecb_rates",
            "schedule_type": "D",
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0005_payout_rule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
