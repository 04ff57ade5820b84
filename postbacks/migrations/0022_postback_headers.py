from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0021_managers_manage_rates"),
    ]

    operations = [
        migrations.AddField(
            model_name="postback",
            name="headers",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Extra request headers, e.g. X-Api-Key; values may use placeholders.",
            ),
        ),
    ]
