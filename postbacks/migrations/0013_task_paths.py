"""The task functions moved to postbacks/delivery/tasks.py: point the schedules at them."""

from django.db import migrations

TASKS = ("sweep", "prune_log", "roll_up_stats")


def rename(apps, old: str, new: str) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    for task in TASKS:
        Schedule.objects.filter(func=f"{old}.{task}").update(func=f"{new}.{task}")


def forwards(apps, schema_editor):
    rename(apps, "postbacks.tasks", "postbacks.delivery.tasks")


def backwards(apps, schema_editor):
    rename(apps, "postbacks.delivery.tasks", "postbacks.tasks")


class Migration(migrations.Migration):
    dependencies = [("postbacks", "0012_endpoint_probing")]

    operations = [migrations.RunPython(forwards, backwards)]
