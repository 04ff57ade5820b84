"""The dashboard roll-up: every 5 minutes, add the hours that are over to DeliveryStat."""

from django.db import migrations

NAME = "postbacks: roll up dashboard statistics"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "postbacks.tasks.roll_up_stats",
            "schedule_type": "I",
            "minutes": 5,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("postbacks", "0009_dashboard_rollup")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
