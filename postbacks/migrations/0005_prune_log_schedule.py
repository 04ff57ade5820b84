"""Log retention: once a day, prune finished deliveries older than POSTBACK_LOG_RETENTION_DAYS."""

from django.db import migrations

NAME = "postbacks: prune the delivery log"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": "postbacks.tasks.prune_log", "schedule_type": "D", "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("postbacks", "0004_postback_signing")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
