from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("affiliates", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="affiliate",
            name="click_field",
            field=models.CharField(
                choices=[
                    ("affS1", "affS1"),
                    ("affS2", "affS2"),
                    ("affS3", "affS3"),
                    ("affS4", "affS4"),
                    ("affS5", "affS5"),
                ],
                default="affS1",
                editable=False,
                help_text="The affS field their tracking links carry the click ID in: the one "
                "their postback sends back as the click ID. Set when a postback is saved.",
                max_length=5,
            ),
        ),
    ]
