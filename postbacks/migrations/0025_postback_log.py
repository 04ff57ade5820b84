"""One name for the delivery list everywhere: the postback log."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0024_delivery_resend"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="delivery",
            options={
                "ordering": ["-created"],
                "permissions": [("retry_delivery", "Can retry a delivery")],
                "verbose_name": "delivery",
                "verbose_name_plural": "postback log",
            },
        ),
    ]
