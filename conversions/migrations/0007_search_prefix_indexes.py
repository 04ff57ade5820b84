"""Indexes for the postback log's case-insensitive prefix search on transaction and click IDs
(trackdesk/prefix.py: lower(column), with text_pattern_ops on PostgreSQL)."""

from django.db import migrations

import trackdesk.prefix


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0006_ecb_import_schedule"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="click",
            index=trackdesk.prefix.PrefixIndex("aff_s1", name="click_aff_s1_prefix"),
        ),
        migrations.AddIndex(
            model_name="click",
            index=trackdesk.prefix.PrefixIndex("cid", name="click_cid_prefix"),
        ),
        migrations.AddIndex(
            model_name="conversion",
            index=trackdesk.prefix.PrefixIndex(
                "transaction_id", name="conversion_transaction_prefix"
            ),
        ),
    ]
