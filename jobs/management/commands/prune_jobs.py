import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.ops.retention import prune

UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text):
    """'7d', '12h' or '30m' as a timedelta."""
    match = re.fullmatch(r"(\d{1,6})([dhm])", text.strip())
    if not match:
        raise CommandError(f"--older-than {text!r}: write a number and d, h or m, e.g. 7d")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Delete finished jobs (and their files) older than a duration, and orphaned files."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", help="e.g. 7d, 12h, 30m; JOB_RETENTION_DAYS (default 7) when absent"
        )

    def handle(self, *args, **options):
        if options["older_than"]:
            older_than = duration(options["older_than"])
        elif settings.JOB_RETENTION_DAYS:
            older_than = timedelta(days=settings.JOB_RETENTION_DAYS)
        else:
            self.stdout.write("JOB_RETENTION_DAYS is 0: jobs are kept; pass --older-than to prune anyway")
            return
        counts = prune(older_than)
        self.stdout.write(
            f"deleted {counts['jobs']} job(s) and {counts['orphaned_folders']} orphaned folder(s)"
        )
