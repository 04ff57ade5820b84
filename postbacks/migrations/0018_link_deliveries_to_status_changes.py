"""Link each existing delivery to the status change it announced, so 0019's key holds for old
rows too. Nothing is enqueued or re-sent: only the new column is written.

The change is the conversion's latest change into the delivery's status made at or before the
delivery was created; failing that (clocks, imported rows), its earliest change into that
status. A delivery whose conversion has no such change keeps a blank link: it is not sent
again, and it neither waits for nor holds back another delivery. The old key allowed one
delivery per (postback, conversion, status), so no two deliveries of a postback get the same
change. Each migration runs in its own transaction, which PostgreSQL needs between writing rows
and altering the table's constraints (0019).
"""

from django.db import migrations
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce


def link(apps, schema_editor):
    Delivery = apps.get_model("postbacks", "Delivery")
    Change = apps.get_model("conversions", "ConversionStatusChange")
    same_event = Change.objects.filter(
        conversion=OuterRef("conversion"), to_status=OuterRef("status")
    )
    latest_before = same_event.filter(created__lte=OuterRef("created")).order_by("-created", "-id")
    earliest = same_event.order_by("created", "id")
    Delivery.objects.filter(is_test=False, status_change__isnull=True).update(
        status_change=Coalesce(
            Subquery(latest_before.values("pk")[:1]), Subquery(earliest.values("pk")[:1])
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0001_initial"),
        ("postbacks", "0017_delivery_status_change"),
    ]

    operations = [migrations.RunPython(link, migrations.RunPython.noop)]
