"""Delete finished deliveries and their attempts older than the log retention, in batches."""

from django.core.management.base import BaseCommand, CommandError

from postbacks.delivery import retention


class Command(BaseCommand):
    help = (
        "Delete finished (success/failed) deliveries and their attempts older than "
        "POSTBACK_LOG_RETENTION_DAYS, in short batches. Pending and retrying ones are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, help="Retention in days (default: POSTBACK_LOG_RETENTION_DAYS)."
        )
        parser.add_argument("--batch-size", type=int, default=1000, help="Ids per transaction.")
        parser.add_argument("--dry-run", action="store_true", help="Count only; delete nothing.")

    def handle(self, *args, days, batch_size, dry_run, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if days is not None and days < 0:
            raise CommandError("--days must be 0 (keep forever) or more.")
        older_than = retention.cutoff(days)
        if older_than is None:
            self.stdout.write("Retention is off (0 days): nothing deleted.")
            return
        result = retention.prune(older_than, batch_size=batch_size, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.deliveries} deliveries and {result.attempts} attempts "
            f"finished before {older_than:%Y-%m-%d %H:%M} UTC."
        )
