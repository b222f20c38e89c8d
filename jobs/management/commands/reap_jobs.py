from django.core.management.base import BaseCommand

from jobs.ops.reaper import reap


class Command(BaseCommand):
    help = "Requeue (or fail, at JOB_MAX_ATTEMPTS) jobs whose worker or message is gone."

    def handle(self, *args, **options):
        counts = reap()
        self.stdout.write(", ".join(f"{name} {count}" for name, count in counts.items()))
